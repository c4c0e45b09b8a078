package projections

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/fcaudit/fcaudit/internal/jsonscan"
)

// decodeAccount reads data.object of a Stripe event body. encoding/json
// (decodeAccountJSON) defines the result; scanAccount, a single pass that
// validates the whole body and copies out only the fields of accountObject
// (driven by its json tags, scanStructOf), gives the same result more cheaply for ordinary bodies and
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

// scanStruct is how the scanner reads one JSON object into a struct:
// built by scanStructOf from the struct's json tags, so that accountObject
// (and Refresh) are the one definition of what is read from data.object.
type scanStruct struct {
	fields []scanField
	names  []string // fields' JSON names, for isFieldLike
}

// scanField is one field: its JSON name, where it is in the struct, and
// how to read it.
type scanField struct {
	name   string
	offset uintptr
	kind   scanKind
	elem   reflect.Type // kindStructPtr: the struct pointed to
	nested *scanStruct  // kindStructPtr: its fields
}

type scanKind uint8

const (
	kindString    scanKind = iota // string
	kindInt64                     // int64
	kindBoolPtr                   // *bool (null stays distinguishable)
	kindStructPtr                 // *T for a struct T of these kinds
)

var accountScan = scanStructOf(reflect.TypeFor[accountObject]())

// scanStructOf builds t's scanStruct. It panics for a field of a kind the
// scanner does not read (a programming error, caught by any decode test).
func scanStructOf(t reflect.Type) *scanStruct {
	ss := new(scanStruct)
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "" || name == "-" || !sf.IsExported() {
			panic(fmt.Sprintf("projections: %s.%s needs a json name for the scanner", t, sf.Name))
		}
		f := scanField{name: name, offset: sf.Offset}
		switch ft := sf.Type; {
		case ft.Kind() == reflect.String:
			f.kind = kindString
		case ft.Kind() == reflect.Int64:
			f.kind = kindInt64
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Bool:
			f.kind = kindBoolPtr
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct:
			f.kind, f.elem, f.nested = kindStructPtr, ft.Elem(), scanStructOf(ft.Elem())
		default:
			panic(fmt.Sprintf("projections: the scanner cannot read %s.%s (%s)", t, sf.Name, ft))
		}
		ss.fields = append(ss.fields, f)
		ss.names = append(ss.names, name)
	}
	if len(ss.fields) > 32 {
		panic(fmt.Sprintf("projections: %s has more fields than the scanner's seen set", t))
	}
	return ss
}

func (s *scanner) account(obj *accountObject) bool {
	return s.fields(3, accountScan, unsafe.Pointer(obj))
}

// fields reads an object at depth d into the struct at p described by ss.
func (s *scanner) fields(d int, ss *scanStruct, p unsafe.Pointer) bool {
	var seen uint32
	return s.object(d, func(key []byte) (bool, bool) {
		i := -1
		for j := range ss.fields {
			if string(key) == ss.fields[j].name {
				i = j
				break
			}
		}
		if i < 0 {
			return false, !isFieldLike(key, ss.names...)
		}
		if seen&(1<<i) != 0 {
			return true, false
		}
		seen |= 1 << i
		f := &ss.fields[i]
		dst := unsafe.Add(p, f.offset)
		switch f.kind {
		case kindString:
			return true, s.optString((*string)(dst))
		case kindInt64:
			return true, s.optInt((*int64)(dst))
		case kindBoolPtr:
			return true, s.optBool((**bool)(dst))
		default:
			return true, s.structPtr(d+1, f, (*unsafe.Pointer)(dst))
		}
	})
}

// structPtr reads null (leaving *dst nil, as it is in a new struct: a
// repeated field defers) or an object into a new f.elem at *dst.
func (s *scanner) structPtr(d int, f *scanField, dst *unsafe.Pointer) bool {
	if s.Peek() == 'n' {
		return s.Literal("null") == nil
	}
	v := reflect.New(f.elem).UnsafePointer()
	*dst = v
	return s.fields(d, f.nested, v)
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
