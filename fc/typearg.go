package fc

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnknownType is returned by ParseTypes for a type argument that names no
// event type fcaudit can hold.
var ErrUnknownType = errors.New("unknown event type")

// ParseTypes reads event-type arguments as users write them, the same way
// for every command flag and query parameter (replay --type, the API's
// type=): each argument may be a comma-separated list; each item is
//
//   - a known FC account event type, in full or by its short name
//     ("created" for financial_connections.account.created);
//   - a short-name glob ("refreshed_*"), '*' matching any run of
//     characters (dots included), or a full glob
//     ("financial_connections.account.refreshed_*", "*.deactivated");
//   - any other Stripe event type or glob ("customer.created",
//     "financial_connections.session.*"): fcaudit stores every verified
//     event, not only FC account events.
//
// An item under AccountEventPrefix (short names always are) must match at
// least one known type: a typo ("creatd", "financial_connections.account.foo")
// is ErrUnknownType, not a filter that silently selects nothing. So is an
// item that cannot be a Stripe event type at all (upper case, spaces, no
// dot). Empty items are skipped. The result holds full types and globs in
// the order given, without repeats; nil when there are none.
func ParseTypes(args []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, arg := range args {
		for item := range strings.SplitSeq(arg, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			typ, err := parseType(item)
			if err != nil {
				return nil, err
			}
			if !seen[typ] {
				seen[typ] = true
				out = append(out, typ)
			}
		}
	}
	return out, nil
}

func parseType(item string) (string, error) {
	if t, ok := Lookup(item); ok {
		return t, nil
	}
	if !validTypeChars(item) {
		return "", fmt.Errorf("%w %q: Stripe event types are lower case letters, digits, '_' and '.' ('*' as a wildcard)", ErrUnknownType, item)
	}
	full := item
	if !strings.Contains(item, ".") && item != "*" {
		full = AccountEventPrefix + item // a short name or short-name glob
	}
	if matchesKnown(full) {
		return full, nil
	}
	if strings.HasPrefix(full, AccountEventPrefix) || !strings.Contains(full, ".") {
		return "", fmt.Errorf("%w %q: matches no Financial Connections account event type (%s; short names such as %q and globs such as %q work too)",
			ErrUnknownType, item, strings.Join(types[:], ", "), ShortName(TypeCreated), "refreshed_*")
	}
	// Another Stripe object's events (stored in stripe-… streams).
	return full, nil
}

// validTypeChars reports whether s can be a Stripe event type or a glob of
// one.
func validTypeChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '*') {
			return false
		}
	}
	return true
}

// matchesKnown reports whether pattern matches one of the known types.
func matchesKnown(pattern string) bool {
	for _, t := range types {
		if matchGlob(pattern, t) {
			return true
		}
	}
	return false
}

// matchGlob is store.MatchType's rule ('*' matches any run of characters,
// '.' included); fc cannot import store.
func matchGlob(pattern, s string) bool {
	star := strings.IndexByte(pattern, '*')
	if star < 0 {
		return pattern == s
	}
	if !strings.HasPrefix(s, pattern[:star]) {
		return false
	}
	rest, s := pattern[star+1:], s[star:]
	for i := 0; i <= len(s); i++ {
		if matchGlob(rest, s[i:]) {
			return true
		}
	}
	return false
}
