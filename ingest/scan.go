package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// envelopeFields is what envelopeScanner decodes. The has* flags mirror the
// pointers encoding/json would decode into (nil = absent or null).
type envelopeFields struct {
	id, object, typ, apiVersion, account string
	created                              int64
	livemode                             bool
	hasID, hasCreated                    bool
	hasData, hasObj                      bool
	objID, objType                       string
}

// maxDepth is encoding/json's nesting limit: deeper bodies are invalid JSON.
const maxDepth = 10000

// errDepth is reported for bodies nested deeper than maxDepth.
var errDepth = errors.New("exceeded max depth")

// envelopeScanner validates a JSON document in one pass and decodes the
// envelope fields on the way, skipping (but validating) every other value
// without allocating. It accepts exactly what json.Unmarshal into the
// envelope struct accepts, and decodes the same values (FuzzParseEnvelope
// checks it against encoding/json). The input must be valid UTF-8.
type envelopeScanner struct {
	b []byte
	i int
	f envelopeFields
}

type syntaxErr struct {
	off int
	msg string
}

func (e *syntaxErr) Error() string {
	if e.msg != "" {
		return fmt.Sprintf("invalid JSON at byte %d (%s)", e.off, e.msg)
	}
	return fmt.Sprintf("invalid JSON at byte %d", e.off)
}

type typeErr struct{ field, value string }

func (e *typeErr) Error() string {
	if e.field == "" {
		return fmt.Sprintf("body is a JSON %s, not an object", e.value)
	}
	return fmt.Sprintf("field %s is a JSON %s, not the expected type", e.field, e.value)
}

func (s *envelopeScanner) fail(msg string) error { return &syntaxErr{off: s.i, msg: msg} }

func (s *envelopeScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next non-blank byte (0 at the end, which callers treat
// like a NUL byte: invalid either way).
func (s *envelopeScanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *envelopeScanner) scan() (envelopeFields, error) {
	var err error
	switch c := s.peek(); c {
	case '{':
		err = s.object(fieldsTop, 1)
	case 0:
		err = s.fail("empty body")
	default:
		// Anything else is invalid, or valid but not an object; either
		// way not an event. Validate first so the message says which.
		if err = s.skip(1); err == nil {
			err = &typeErr{value: jsonKind(c)}
			if c == 'n' { // null decodes to an empty envelope
				err = nil
			}
		}
	}
	if s.ws(); err == nil && s.i < len(s.b) {
		err = s.fail("data after the top-level value")
	}
	return s.f, err
}

// Which struct an object is decoded into.
type fieldSet int

const (
	fieldsTop fieldSet = iota
	fieldsData
	fieldsObject
	fieldsNone // skipped
)

// object reads an object (s.b[s.i] == '{') whose members go to set.
func (s *envelopeScanner) object(set fieldSet, depth int) error {
	if depth > maxDepth {
		return s.fail(errDepth.Error())
	}
	s.i++ // '{'
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		if s.peek() != '"' {
			return s.fail("want a string key")
		}
		key, err := s.str()
		if err != nil {
			return err
		}
		if s.peek() != ':' {
			return s.fail("want ':'")
		}
		s.i++
		if s.peek() == 0 {
			return s.fail("unexpected end")
		}
		if err := s.member(set, key, depth+1); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.fail("want ',' or '}'")
		}
	}
}

// is reports whether key names field the way encoding/json matches struct
// fields: exactly, else under Unicode simple case folding.
func is(key []byte, field string) bool {
	return string(key) == field || bytes.EqualFold(key, []byte(field))
}

// member reads the value of key in an object decoded into set; a container
// value would be at nesting depth depth.
func (s *envelopeScanner) member(set fieldSet, key []byte, depth int) error {
	f := &s.f
	switch set {
	case fieldsTop:
		switch {
		case is(key, "id"):
			v, null, err := s.strField("id", depth)
			f.id, f.hasID = v, !null
			return err
		case is(key, "object"):
			return s.strInto(&f.object, "object", depth)
		case is(key, "type"):
			return s.strInto(&f.typ, "type", depth)
		case is(key, "api_version"):
			return s.strInto(&f.apiVersion, "api_version", depth)
		case is(key, "account"):
			return s.strInto(&f.account, "account", depth)
		case is(key, "livemode"):
			return s.boolInto(&f.livemode, "livemode", depth)
		case is(key, "created"):
			return s.created(depth)
		case is(key, "data"):
			switch s.b[s.i] {
			case 'n':
				if err := s.literal("null"); err != nil {
					return err
				}
				f.hasData, f.hasObj, f.objID, f.objType = false, false, "", ""
				return nil
			case '{':
				if !f.hasData { // a new struct; a repeated "data" decodes into the same one
					f.hasData, f.hasObj, f.objID, f.objType = true, false, "", ""
				}
				return s.object(fieldsData, depth)
			}
			return s.mismatch("data", depth)
		}
	case fieldsData:
		if is(key, "object") {
			switch s.b[s.i] {
			case 'n':
				if err := s.literal("null"); err != nil {
					return err
				}
				f.hasObj, f.objID, f.objType = false, "", ""
				return nil
			case '{':
				if !f.hasObj {
					f.hasObj, f.objID, f.objType = true, "", ""
				}
				return s.object(fieldsObject, depth)
			}
			return s.mismatch("data.object", depth)
		}
	case fieldsObject:
		switch {
		case is(key, "id"):
			return s.strInto(&f.objID, "data.object.id", depth)
		case is(key, "object"):
			return s.strInto(&f.objType, "data.object.object", depth)
		}
	}
	return s.skip(depth)
}

// mismatch validates a value of the wrong type for field and reports it.
func (s *envelopeScanner) mismatch(field string, depth int) error {
	c := s.b[s.i]
	if err := s.skip(depth); err != nil {
		return err
	}
	return &typeErr{field: field, value: jsonKind(c)}
}

func jsonKind(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// strField reads a string or null value of field.
func (s *envelopeScanner) strField(field string, depth int) (v string, null bool, err error) {
	switch s.b[s.i] {
	case '"':
		b, err := s.str()
		return string(b), false, err
	case 'n':
		return "", true, s.literal("null")
	}
	return "", false, s.mismatch(field, depth)
}

// strInto reads a string into *dst; null leaves *dst as it is (as
// encoding/json does for a non-pointer field).
func (s *envelopeScanner) strInto(dst *string, field string, depth int) error {
	v, null, err := s.strField(field, depth)
	if err == nil && !null {
		*dst = v
	}
	return err
}

func (s *envelopeScanner) boolInto(dst *bool, field string, depth int) error {
	switch s.b[s.i] {
	case 't':
		*dst = true
		return s.literal("true")
	case 'f':
		*dst = false
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	return s.mismatch(field, depth)
}

func (s *envelopeScanner) created(depth int) error {
	switch c := s.b[s.i]; {
	case c == 'n':
		s.f.hasCreated, s.f.created = false, 0
		return s.literal("null")
	case c == '-' || ('0' <= c && c <= '9'):
		start := s.i
		if err := s.number(); err != nil {
			return err
		}
		n, err := strconv.ParseInt(string(s.b[start:s.i]), 10, 64)
		if err != nil {
			return &typeErr{field: "created", value: "number " + string(s.b[start:s.i])}
		}
		s.f.created, s.f.hasCreated = n, true
		return nil
	}
	return s.mismatch("created", depth)
}

func (s *envelopeScanner) literal(lit string) error {
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		return s.fail("bad literal")
	}
	s.i += len(lit)
	return nil
}

// skip validates and steps over one value, which would be at nesting depth
// depth if it is an object or array.
func (s *envelopeScanner) skip(depth int) error {
	switch c := s.b[s.i]; c {
	case '{':
		return s.object(fieldsNone, depth)
	case '[':
		if depth > maxDepth {
			return s.fail(errDepth.Error())
		}
		s.i++
		if s.peek() == ']' {
			s.i++
			return nil
		}
		for {
			if s.peek() == 0 {
				return s.fail("unexpected end")
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			switch s.peek() {
			case ',':
				s.i++
			case ']':
				s.i++
				return nil
			default:
				return s.fail("want ',' or ']'")
			}
		}
	case '"':
		_, _, err := s.strRaw()
		return err
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		if c == '-' || ('0' <= c && c <= '9') {
			return s.number()
		}
		return s.fail("unexpected character")
	}
}

// number steps over a JSON number.
func (s *envelopeScanner) number() error {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		s.i = i
		return s.fail("bad number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			s.i = i
			return s.fail("bad number")
		}
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			s.i = i
			return s.fail("bad number")
		}
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	}
	s.i = i
	return nil
}

// strRaw steps over a string (s.b[s.i] == '"') and returns its raw
// contents, escapes unprocessed, and whether it has any.
func (s *envelopeScanner) strRaw() (raw []byte, escaped bool, err error) {
	b := s.b
	start := s.i + 1
	i := start
	for {
		// Fast path: plain bytes (valid UTF-8 is checked up front).
		for i < len(b) && b[i] != '"' && b[i] != '\\' && b[i] >= 0x20 {
			i++
		}
		if i >= len(b) {
			s.i = i
			return nil, false, s.fail("unterminated string")
		}
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return b[start:i], escaped, nil
		case c < 0x20:
			s.i = i
			return nil, false, s.fail("control character in string")
		}
		// A backslash.
		escaped = true
		if i+1 >= len(b) {
			s.i = i
			return nil, false, s.fail("unterminated string")
		}
		switch b[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
				s.i = i
				return nil, false, s.fail("bad \\u escape")
			}
			i += 6
		default:
			s.i = i
			return nil, false, s.fail("bad escape")
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// str reads a string and returns its decoded value. Strings with escapes
// (rare in Stripe's envelopes) are decoded by encoding/json itself, so
// surrogate handling and the like match exactly.
func (s *envelopeScanner) str() ([]byte, error) {
	start := s.i
	raw, escaped, err := s.strRaw()
	if err != nil || !escaped {
		return raw, err
	}
	var v string
	if err := json.Unmarshal(s.b[start:s.i], &v); err != nil {
		return nil, &syntaxErr{off: start, msg: "bad string"}
	}
	return []byte(v), nil
}
