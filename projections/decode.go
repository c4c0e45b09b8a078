package projections

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/fcaudit/fcaudit/internal/jsonscan"
)

// decodeAccount reads data.object of a Stripe event body. encoding/json
// (decodeAccountJSON) defines the result; scanAccount, a single pass that
// validates the whole body and copies out only the ten fields the read
// model keeps, gives the same result ~5× cheaper for ordinary bodies and
// defers to encoding/json whenever it is not sure (FuzzDecodeAccount
// checks both agree).
func decodeAccount(body []byte) (*accountObject, error) {
	if obj, ok := scanAccount(body); ok {
		return obj, nil
	}
	return decodeAccountJSON(body)
}

func decodeAccountJSON(body []byte) (*accountObject, error) {
	var b eventBody
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, err
	}
	if b.Data.Object == nil {
		return nil, fmt.Errorf("no data.object")
	}
	return b.Data.Object, nil
}

// scanner walks a JSON document with jsonscan, which validates what it
// skips as encoding/json does (nesting limit included). Every method
// reports false for input it does not accept: invalid JSON, or valid JSON
// whose decoding by encoding/json it does not reproduce (escaped or
// case-folded names of fields it reads, repeated fields, type mismatches,
// numbers that are not plain integers); the caller then uses
// encoding/json.
type scanner struct{ jsonscan.Scanner }

// scanAccount returns data.object as encoding/json would decode it, or
// false when it defers to encoding/json.
func scanAccount(body []byte) (*accountObject, bool) {
	s := scanner{jsonscan.Scanner{B: body}}
	var obj *accountObject
	var seenData bool
	ok := s.object(1, func(key []byte) (bool, bool) {
		if string(key) != "data" {
			return false, !isFieldLike(key, "data")
		}
		if seenData {
			return true, false
		}
		seenData = true
		return true, s.object(2, func(key []byte) (bool, bool) {
			if string(key) != "object" {
				return false, !isFieldLike(key, "object")
			}
			if obj != nil {
				return true, false
			}
			obj = new(accountObject)
			return true, s.account(obj)
		})
	})
	if !ok || obj == nil {
		return nil, false
	}
	return obj, s.AtEnd()
}

// account fields, in the order of their bit in account's seen set.
var accountFields = [...]string{"id", "status", "livemode", "institution_name", "last4", "category", "subcategory",
	"display_name", "balance_refresh", "ownership_refresh", "transaction_refresh"}

func (s *scanner) account(obj *accountObject) bool {
	var seen uint32
	return s.object(3, func(key []byte) (bool, bool) {
		f := -1
		for i, name := range accountFields {
			if string(key) == name {
				f = i
				break
			}
		}
		if f < 0 {
			return false, !isFieldLike(key, accountFields[:]...)
		}
		if seen&(1<<f) != 0 {
			return true, false
		}
		seen |= 1 << f
		switch accountFields[f] {
		case "id":
			return true, s.optString(&obj.ID)
		case "status":
			return true, s.optString(&obj.Status)
		case "livemode":
			return true, s.optBool(&obj.Livemode)
		case "institution_name":
			return true, s.optString(&obj.InstitutionName)
		case "last4":
			return true, s.optString(&obj.Last4)
		case "category":
			return true, s.optString(&obj.Category)
		case "subcategory":
			return true, s.optString(&obj.Subcategory)
		case "display_name":
			return true, s.optString(&obj.DisplayName)
		case "balance_refresh":
			return true, s.refresh(&obj.BalanceRefresh)
		case "ownership_refresh":
			return true, s.refresh(&obj.OwnershipRefresh)
		default: // transaction_refresh
			return true, s.refresh(&obj.TransactionRefresh)
		}
	})
}

func (s *scanner) refresh(dst **Refresh) bool {
	if s.Peek() == 'n' {
		return s.Literal("null") == nil
	}
	r := new(Refresh)
	*dst = r
	var seenStatus, seenAt bool
	return s.object(4, func(key []byte) (bool, bool) {
		switch string(key) {
		case "status":
			if seenStatus {
				return true, false
			}
			seenStatus = true
			return true, s.optString(&r.Status)
		case "last_attempted_at":
			if seenAt {
				return true, false
			}
			seenAt = true
			return true, s.optInt(&r.LastAttemptedAt)
		}
		return false, !isFieldLike(key, "status", "last_attempted_at")
	})
}

// isFieldLike reports whether encoding/json might match key to one of
// names although it is not one of them exactly: an escape or a non-ASCII
// byte (both could spell or case-fold to a name), or an ASCII case
// variant. The scanner then defers.
func isFieldLike(key []byte, names ...string) bool {
	for _, c := range key {
		if c == '\\' || c >= utf8.RuneSelf {
			return true
		}
	}
	for _, n := range names {
		if len(key) == len(n) && equalFoldASCII(key, n) {
			return true
		}
	}
	return false
}

func equalFoldASCII(a []byte, b string) bool {
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// object reads an object at nesting depth d (1 at the top level). For
// each member it calls member with the raw name, positioned at the value:
// member reports whether it read the value (else the value is skipped) and
// whether to go on. A value that is null or not an object makes object
// report false.
func (s *scanner) object(d int, member func(key []byte) (read, ok bool)) bool {
	more, err := s.BeginObject(d)
	for more && err == nil {
		var key []byte
		if key, _, err = s.Key(); err != nil {
			return false
		}
		read, ok := member(key)
		if !ok || !read && s.Skip(d+1) != nil {
			return false
		}
		more, err = s.NextMember()
	}
	return err == nil
}

// optString reads a string into dst (null leaves it as is, as
// encoding/json does). Escapes and invalid UTF-8, which encoding/json
// rewrites, make it defer.
func (s *scanner) optString(dst *string) bool {
	if s.Peek() == 'n' {
		return s.Literal("null") == nil
	}
	raw, escaped, err := s.RawString()
	if err != nil || escaped || !utf8.Valid(raw) {
		return false
	}
	*dst = string(raw)
	return true
}

func (s *scanner) optBool(dst **bool) bool {
	switch c := s.Peek(); c {
	case 'n':
		if s.Literal("null") != nil {
			return false
		}
		*dst = nil
	case 't', 'f':
		lit := "false"
		if c == 't' {
			lit = "true"
		}
		if s.Literal(lit) != nil {
			return false
		}
		v := c == 't'
		*dst = &v
	default:
		return false
	}
	return true
}

// optInt reads an integer; a fraction or exponent (which encoding/json
// refuses for an int64 field) or an overflow makes it defer.
func (s *scanner) optInt(dst *int64) bool {
	if s.Peek() == 'n' {
		return s.Literal("null") == nil
	}
	num, err := s.Number()
	if err != nil {
		return false
	}
	v, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil {
		return false
	}
	*dst = v
	return true
}
