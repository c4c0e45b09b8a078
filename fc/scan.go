package fc

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/fcaudit/fcaudit/internal/jsonscan"
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

// envelopeScanner validates a JSON document in one pass and decodes the
// envelope fields on the way, skipping (but validating) every other value
// without allocating. It accepts exactly what json.Unmarshal into the
// envelope struct accepts, and decodes the same values (FuzzParseEnvelope
// checks it against encoding/json). The input must be valid UTF-8.
type envelopeScanner struct {
	jsonscan.Scanner
	f envelopeFields
}

type typeErr struct{ field, value string }

func (e *typeErr) Error() string {
	if e.field == "" {
		return fmt.Sprintf("body is a JSON %s, not an object", e.value)
	}
	return fmt.Sprintf("field %s is a JSON %s, not the expected type", e.field, e.value)
}

func (s *envelopeScanner) scan() (envelopeFields, error) {
	var err error
	switch c := s.Peek(); c {
	case '{':
		err = s.object(fieldsTop, 1)
	case 0:
		err = s.Fail("empty body")
	default:
		// Anything else is invalid, or valid but not an object; either
		// way not an event. Validate first so the message says which.
		if err = s.Skip(1); err == nil {
			err = &typeErr{value: jsonKind(c)}
			if c == 'n' { // null decodes to an empty envelope
				err = nil
			}
		}
	}
	if err == nil && !s.AtEnd() {
		err = s.Fail("data after the top-level value")
	}
	return s.f, err
}

// Which struct an object is decoded into.
type fieldSet int

const (
	fieldsTop fieldSet = iota
	fieldsData
	fieldsObject
)

// object reads an object (at s.B[s.I]) whose members go to set.
func (s *envelopeScanner) object(set fieldSet, depth int) error {
	more, err := s.BeginObject(depth)
	for more && err == nil {
		var key []byte
		var escaped bool
		if key, escaped, err = s.Key(); err != nil {
			break
		}
		if escaped {
			var k string
			if k, err = unescape(key, s.I); err != nil {
				break
			}
			key = []byte(k)
		}
		if err = s.member(set, key, depth+1); err != nil {
			break
		}
		more, err = s.NextMember()
	}
	return err
}

// unescape decodes a string (RawString's raw contents) that has escapes
// (rare in Stripe's envelopes) with encoding/json itself, so surrogate
// handling and the like match exactly.
func unescape(raw []byte, off int) (string, error) {
	v, err := jsonscan.Unescape(raw)
	if err != nil {
		return "", &jsonscan.SyntaxError{Offset: off, Msg: "bad string"}
	}
	return v, nil
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
			switch s.B[s.I] {
			case 'n':
				if err := s.Literal("null"); err != nil {
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
			switch s.B[s.I] {
			case 'n':
				if err := s.Literal("null"); err != nil {
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
	return s.Skip(depth)
}

// mismatch validates a value of the wrong type for field and reports it.
func (s *envelopeScanner) mismatch(field string, depth int) error {
	c := s.B[s.I]
	if err := s.Skip(depth); err != nil {
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
	switch s.B[s.I] {
	case '"':
		off := s.I
		raw, escaped, err := s.RawString()
		if err != nil || !escaped {
			return string(raw), false, err
		}
		v, err := unescape(raw, off)
		return v, false, err
	case 'n':
		return "", true, s.Literal("null")
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
	switch s.B[s.I] {
	case 't':
		*dst = true
		return s.Literal("true")
	case 'f':
		*dst = false
		return s.Literal("false")
	case 'n':
		return s.Literal("null")
	}
	return s.mismatch(field, depth)
}

func (s *envelopeScanner) created(depth int) error {
	switch c := s.B[s.I]; {
	case c == 'n':
		s.f.hasCreated, s.f.created = false, 0
		return s.Literal("null")
	case c == '-' || ('0' <= c && c <= '9'):
		num, err := s.Number()
		if err != nil {
			return err
		}
		n, err := strconv.ParseInt(string(num), 10, 64)
		if err != nil {
			return &typeErr{field: "created", value: "number " + string(num)}
		}
		s.f.created, s.f.hasCreated = n, true
		return nil
	}
	return s.mismatch("created", depth)
}
