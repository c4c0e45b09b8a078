package projections

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unsafe"
)

// appendState appends a row's state column: storedState{s, s.unreadable}
// exactly as encoding/json writes it (TestAppendStateMatchesMarshal), but
// without reflection at run time: the live projection writes one per
// account and batch. The encoder is built once from storedState's type
// (encStructOf), so the json tags of AccountStatus, Refresh, EventRef and
// rank are the one definition of the stored state: decodeState reads it
// back with encoding/json, and the API shows the same fields.
func appendState(b []byte, s *AccountStatus) []byte {
	st := storedState{AccountStatus: s, Unreadable: s.unreadable}
	return stateEnc.append(b, unsafe.Pointer(&st))
}

var stateEnc = encStructOf(reflect.TypeFor[storedState]())

// encStruct writes one struct as encoding/json does, for the field kinds
// the read model uses.
type encStruct struct{ fields []encField }

type encField struct {
	key       string // `"name":`
	offset    uintptr
	kind      encKind
	omitEmpty bool
	nested    *encStruct // encPtrStruct, encStruct, encEmbedded, encSlice: the element's fields
}

type encKind uint8

const (
	encString encKind = iota
	encBool
	encInt64
	encUint64
	encPtrStruct   // *T: null or T's object
	encStructKind  // T inline as an object
	encEmbedded    // an embedded *T: T's fields promoted into this object
	encMapInt64    // map[string]int64: keys sorted, null when nil
	encSliceStruct // []rank: null when nil
)

// encStructOf builds t's encoder. It panics for a field kind it does not
// write (a programming error, caught by TestAppendStateMatchesMarshal).
func encStructOf(t reflect.Type) *encStruct {
	es := new(encStruct)
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if sf.Anonymous && sf.Type.Kind() == reflect.Pointer && tag == "" {
			es.fields = append(es.fields, encField{offset: sf.Offset, kind: encEmbedded, nested: encStructOf(sf.Type.Elem())})
			continue
		}
		if !sf.IsExported() || name == "-" {
			continue // as encoding/json: unexported fields are not written
		}
		if name == "" {
			panic(fmt.Sprintf("projections: %s.%s needs a json name for the state encoder", t, sf.Name))
		}
		f := encField{key: strconv.Quote(name) + ":", offset: sf.Offset, omitEmpty: opts == "omitempty"}
		switch ft := sf.Type; {
		case ft.Kind() == reflect.String:
			f.kind = encString
		case ft.Kind() == reflect.Bool:
			f.kind = encBool
		case ft.Kind() == reflect.Int64:
			f.kind = encInt64
		case ft.Kind() == reflect.Uint64:
			f.kind = encUint64
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct:
			f.kind, f.nested = encPtrStruct, encStructOf(ft.Elem())
		case ft.Kind() == reflect.Struct:
			f.kind, f.nested = encStructKind, encStructOf(ft)
		case ft.Kind() == reflect.Map && ft.Key().Kind() == reflect.String && ft.Elem().Kind() == reflect.Int64:
			f.kind = encMapInt64
		case ft.Kind() == reflect.Slice && ft.Elem() == reflect.TypeFor[rank]():
			f.kind, f.nested = encSliceStruct, encStructOf(ft.Elem())
		default:
			panic(fmt.Sprintf("projections: the state encoder cannot write %s.%s (%s)", t, sf.Name, ft))
		}
		if f.omitEmpty && f.kind != encInt64 && f.kind != encSliceStruct {
			panic(fmt.Sprintf("projections: the state encoder has no omitempty for %s.%s", t, sf.Name))
		}
		es.fields = append(es.fields, f)
	}
	return es
}

// append writes the struct at p as a JSON object.
func (es *encStruct) append(b []byte, p unsafe.Pointer) []byte {
	b = append(b, '{')
	b, _ = es.appendFields(b, p, true)
	return append(b, '}')
}

// appendFields writes the struct's members; first says no member has been
// written to this object yet, and the result whether that is still so.
func (es *encStruct) appendFields(b []byte, p unsafe.Pointer, first bool) ([]byte, bool) {
	for i := range es.fields {
		f := &es.fields[i]
		v := unsafe.Add(p, f.offset)
		if f.kind == encEmbedded {
			if q := *(*unsafe.Pointer)(v); q != nil {
				b, first = f.nested.appendFields(b, q, first)
			}
			continue
		}
		if f.omitEmpty && (f.kind == encInt64 && *(*int64)(v) == 0 || f.kind == encSliceStruct && len(*(*[]rank)(v)) == 0) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, f.key...)
		switch f.kind {
		case encString:
			b = appendString(b, *(*string)(v))
		case encBool:
			b = strconv.AppendBool(b, *(*bool)(v))
		case encInt64:
			b = strconv.AppendInt(b, *(*int64)(v), 10)
		case encUint64:
			b = strconv.AppendUint(b, *(*uint64)(v), 10)
		case encPtrStruct:
			if q := *(*unsafe.Pointer)(v); q != nil {
				b = f.nested.append(b, q)
			} else {
				b = append(b, "null"...)
			}
		case encStructKind:
			b = f.nested.append(b, v)
		case encMapInt64:
			b = appendTimes(b, *(*map[string]int64)(v))
		case encSliceStruct:
			b = appendRanks(b, f.nested, *(*[]rank)(v))
		}
	}
	return b, first
}

// appendRanks writes the one slice kind the state has.
func appendRanks(b []byte, es *encStruct, rs []rank) []byte {
	if rs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i := range rs {
		if i > 0 {
			b = append(b, ',')
		}
		b = es.append(b, unsafe.Pointer(&rs[i]))
	}
	return append(b, ']')
}

func appendTimes(b []byte, m map[string]int64) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	var arr [8]string
	keys := arr[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = strconv.AppendInt(b, m[k], 10)
	}
	return append(b, '}')
}

// appendString quotes s as encoding/json does: printable ASCII other than
// the characters it escapes is copied; anything else goes through it.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			q, err := json.Marshal(s)
			if err != nil { // cannot happen for a string
				panic(err)
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
