package projections

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
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

// maxScanDepth: deeper bodies go to encoding/json (which allows 10,000).
const maxScanDepth = 200

// scanner walks a JSON document. Every method reports false for input it
// does not accept: invalid JSON, or valid JSON whose decoding by
// encoding/json it does not reproduce (escaped or case-folded names of
// fields it reads, repeated fields, type mismatches, numbers that are not
// plain integers); the caller then uses encoding/json.
type scanner struct {
	b []byte
	i int
}

// scanAccount returns data.object as encoding/json would decode it, or
// false when it defers to encoding/json.
func scanAccount(body []byte) (*accountObject, bool) {
	s := scanner{b: body}
	var obj *accountObject
	var seenData bool
	ok := s.object(0, func(key []byte) (bool, bool) {
		if string(key) != "data" {
			return false, !isFieldLike(key, "data")
		}
		if seenData {
			return true, false
		}
		seenData = true
		return true, s.object(1, func(key []byte) (bool, bool) {
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
	s.space()
	return obj, s.i == len(s.b)
}

// account fields, in the order of their bit in account's seen set.
var accountFields = [...]string{"id", "status", "livemode", "institution_name", "last4", "category", "subcategory",
	"display_name", "balance_refresh", "ownership_refresh", "transaction_refresh"}

func (s *scanner) account(obj *accountObject) bool {
	var seen uint32
	return s.object(2, func(key []byte) (bool, bool) {
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
	s.space()
	if s.literal("null") {
		return true
	}
	r := new(Refresh)
	*dst = r
	var seenStatus, seenAt bool
	return s.object(3, func(key []byte) (bool, bool) {
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

// object reads an object at nesting depth d. For each member it calls
// member with the raw name, positioned before the value: member reports
// whether it read the value (else the value is skipped) and whether to go
// on. A value that is null or not an object makes object report false.
func (s *scanner) object(d int, member func(key []byte) (read, ok bool)) bool {
	s.space()
	if !s.byte('{') {
		return false
	}
	s.space()
	if s.byte('}') {
		return true
	}
	for {
		s.space()
		key, ok := s.rawString()
		if !ok {
			return false
		}
		s.space()
		if !s.byte(':') {
			return false
		}
		read, ok := member(key)
		if !ok {
			return false
		}
		if !read && !s.skip(d+1) {
			return false
		}
		s.space()
		if s.byte('}') {
			return true
		}
		if !s.byte(',') {
			return false
		}
	}
}

// skip validates and skips any value at depth d.
func (s *scanner) skip(d int) bool {
	if d > maxScanDepth {
		return false
	}
	s.space()
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, ok := s.rawString()
		return ok
	case c == '{':
		return s.object(d, func([]byte) (bool, bool) { return false, true })
	case c == '[':
		s.i++
		s.space()
		if s.byte(']') {
			return true
		}
		for {
			if !s.skip(d + 1) {
				return false
			}
			s.space()
			if s.byte(']') {
				return true
			}
			if !s.byte(',') {
				return false
			}
		}
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		_, ok := s.number()
		return ok
	}
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) byte(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// rawString validates a string and returns its bytes between the quotes,
// escapes not decoded.
func (s *scanner) rawString() ([]byte, bool) {
	if !s.byte('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		if c >= 0x20 && c != '"' && c != '\\' {
			s.i++
			continue
		}
		switch {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c < 0x20:
			return nil, false
		case c == '\\':
			if s.i+1 >= len(s.b) {
				return nil, false
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) {
					return nil, false
				}
				for _, h := range s.b[s.i+2 : s.i+6] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return nil, false
					}
				}
				s.i += 6
			default:
				return nil, false
			}
		default:
			s.i++
		}
	}
	return nil, false
}

// number validates a JSON number and returns its text.
func (s *scanner) number() ([]byte, bool) {
	start := s.i
	s.byte('-')
	switch {
	case s.byte('0'):
	case s.digits() == 0:
		return nil, false
	}
	if s.byte('.') && s.digits() == 0 {
		return nil, false
	}
	if s.byte('e') || s.byte('E') {
		if !s.byte('+') {
			s.byte('-')
		}
		if s.digits() == 0 {
			return nil, false
		}
	}
	return s.b[start:s.i], true
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

// optString reads a string into dst (null leaves it as is, as
// encoding/json does). Escapes and invalid UTF-8, which encoding/json
// rewrites, make it defer.
func (s *scanner) optString(dst *string) bool {
	s.space()
	if s.literal("null") {
		return true
	}
	raw, ok := s.rawString()
	if !ok {
		return false
	}
	for _, c := range raw {
		if c == '\\' {
			return false
		}
		if c >= utf8.RuneSelf {
			if !utf8.Valid(raw) {
				return false
			}
			break
		}
	}
	*dst = string(raw)
	return true
}

func (s *scanner) optBool(dst **bool) bool {
	s.space()
	switch {
	case s.literal("null"):
		*dst = nil
	case s.literal("true"):
		v := true
		*dst = &v
	case s.literal("false"):
		v := false
		*dst = &v
	default:
		return false
	}
	return true
}

// optInt reads an integer; a fraction or exponent (which encoding/json
// refuses for an int64 field) or an overflow makes it defer.
func (s *scanner) optInt(dst *int64) bool {
	s.space()
	if s.literal("null") {
		return true
	}
	num, ok := s.number()
	if !ok {
		return false
	}
	v, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil {
		return false
	}
	*dst = v
	return true
}
