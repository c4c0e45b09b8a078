package jsonscan

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// skipAll is how a caller validates a whole document: one value, then
// nothing but blanks.
func skipAll(b []byte) error {
	s := Scanner{B: b}
	if err := s.Skip(1); err != nil {
		return err
	}
	if !s.AtEnd() {
		return s.Fail("data after the value")
	}
	return nil
}

func TestNumber(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string // the number read; "" for an error
		off  int    // where an error stops
	}{
		{"0", "0", 0}, {"-0", "-0", 0}, {"7", "7", 0}, {"1234567890", "1234567890", 0},
		{"-12.5e+3", "-12.5e+3", 0}, {"1E9", "1E9", 0}, {"0.001e-2", "0.001e-2", 0},
		{"01", "0", 0}, // the number ends at the second digit: invalid later, as data after it
		{"12,", "12", 0}, {"1]", "1", 0}, {"99999999999999999999", "99999999999999999999", 0},
		{"-", "", 1}, {"+1", "", 0}, {".5", "", 0}, {"1.", "", 2}, {"1.e3", "", 2},
		{"1e", "", 2}, {"1e+", "", 3}, {"-a", "", 1}, {"", "", 0}, {"x", "", 0},
	} {
		s := Scanner{B: []byte(c.in)}
		got, err := s.Number()
		if c.want == "" {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset != c.off || se.Msg != "bad number" {
				t.Errorf("Number(%q) = %q, %v; want bad number at %d", c.in, got, err, c.off)
			}
			continue
		}
		if err != nil || string(got) != c.want || s.I != len(c.want) {
			t.Errorf("Number(%q) = %q, %v, at %d; want %q", c.in, got, err, s.I, c.want)
		}
	}
}

func TestRawStringAndUnescape(t *testing.T) {
	for _, c := range []struct {
		in      string
		raw     string // "" with msg set: an error
		escaped bool
		msg     string
		off     int
	}{
		{in: `""`, raw: ""},
		{in: `"abc" tail`, raw: "abc"},
		{in: `"héllo ✓"`, raw: "héllo ✓"},
		{in: "\"a\xffb\"", raw: "a\xffb"}, // invalid UTF-8 is passed through, as encoding/json's scanner does
		{in: `"a\"b"`, raw: `a\"b`, escaped: true},
		{in: `"\\\/\b\f\n\r\t"`, raw: `\\\/\b\f\n\r\t`, escaped: true},
		{in: `"\u00e9\uD83D\uDE00"`, raw: `\u00e9\uD83D\uDE00`, escaped: true},
		{in: `"\ud800x"`, raw: `\ud800x`, escaped: true}, // a lone surrogate is valid JSON
		{in: `"abc`, msg: "unterminated string", off: 4},
		{in: `"`, msg: "unterminated string", off: 1},
		{in: `"ab\`, msg: "unterminated string", off: 3},
		{in: `"\x"`, msg: "bad escape", off: 1},
		{in: `"\'"`, msg: "bad escape", off: 1},
		{in: `"\u12"`, msg: "bad \\u escape", off: 1},
		{in: `"\u12G4"`, msg: "bad \\u escape", off: 1},
		{in: `"\u123`, msg: "bad \\u escape", off: 1},
		{in: "\"a\tb\"", msg: "control character in string", off: 2},
		{in: "\"a\x00\"", msg: "control character in string", off: 2},
		{in: "\"\x1f\"", msg: "control character in string", off: 1},
		{in: "\"\x7f\x20\"", raw: "\x7f "},
		{in: `abc`, msg: "want a string", off: 0},
		{in: ``, msg: "want a string", off: 0},
	} {
		s := Scanner{B: []byte(c.in)}
		raw, escaped, err := s.RawString()
		if c.msg != "" {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Msg != c.msg || se.Offset != c.off {
				t.Errorf("RawString(%q) = %q, %v; want %q at %d", c.in, raw, err, c.msg, c.off)
			}
			continue
		}
		if err != nil || string(raw) != c.raw || escaped != c.escaped {
			t.Errorf("RawString(%q) = %q, %v, %v; want %q, %v", c.in, raw, escaped, err, c.raw, c.escaped)
			continue
		}
		if end := strings.LastIndexByte(c.in, '"') + 1; s.I != end {
			t.Errorf("RawString(%q) stopped at %d, want %d", c.in, s.I, end)
		}
		var want string
		if err := json.Unmarshal([]byte(c.in[:s.I]), &want); err != nil {
			t.Fatalf("encoding/json refuses %q: %v", c.in[:s.I], err)
		}
		got := string(raw)
		if escaped {
			if got, err = Unescape(raw); err != nil {
				t.Errorf("Unescape(%q): %v", raw, err)
			}
		}
		if got != want && utf8.ValidString(c.raw) { // encoding/json rewrites invalid UTF-8, RawString does not
			t.Errorf("decoded %q = %q, encoding/json gives %q", c.in, got, want)
		}
	}
}

func TestUnescapeRejectsUnvalidated(t *testing.T) {
	if _, err := Unescape([]byte(`\x`)); err == nil {
		t.Error(`Unescape("\x") succeeded`)
	}
}

func TestLiteral(t *testing.T) {
	for _, c := range []struct {
		in, lit string
		ok      bool
	}{
		{"true", "true", true}, {"false,", "false", true}, {"null}", "null", true},
		{"tru", "true", false}, {"nul", "null", false}, {"fals", "false", false},
		{"True", "true", false}, {"", "null", false}, {"nulL", "null", false},
	} {
		s := Scanner{B: []byte(c.in)}
		err := s.Literal(c.lit)
		if (err == nil) != c.ok {
			t.Errorf("Literal(%q) on %q: %v", c.lit, c.in, err)
		}
		if want := map[bool]int{true: len(c.lit), false: 0}[c.ok]; s.I != want {
			t.Errorf("Literal(%q) on %q stopped at %d, want %d", c.lit, c.in, s.I, want)
		}
	}
}

func TestSkip(t *testing.T) {
	nest := func(open, inner, close string, n int) string {
		return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
	}
	for _, c := range []struct {
		name, in string
		msg      string // "" when valid
	}{
		{"number", " -1.5e3 ", ""},
		{"string", `"a\u00e9"`, ""},
		{"literals", `[true,false,null]`, ""},
		{"object", `{"a":{"b":[1,{"c":"d"}]},"e":[]}`, ""},
		{"blanks", " \t\n\r{ \"a\" : [ 1 , 2 ] } \n", ""},
		{"invalid UTF-8 in a string", "[\"\xff\xfe\"]", ""},
		{"empty", ``, "unexpected end"},
		{"blank", `  `, "unexpected end"},
		{"truncated object", `{"a":1`, "want ',' or '}'"},
		{"truncated key", `{"a`, "unterminated string"},
		{"truncated after colon", `{"a":`, "unexpected end"},
		{"truncated array", `[1,`, "unexpected end"},
		{"truncated literal", `[tru`, "bad literal"},
		{"truncated number", `-`, "bad number"},
		{"trailing comma in object", `{"a":1,}`, "want a string key"},
		{"trailing comma in array", `[1,]`, "unexpected character"},
		{"missing colon", `{"a" 1}`, "want ':'"},
		{"non-string key", `{1:2}`, "want a string key"},
		{"missing comma", `[1 2]`, "want ',' or ']'"},
		{"bad escape", `["\q"]`, "bad escape"},
		{"control character", "\"\n\"", "control character in string"},
		{"leading zero", `01`, "data after the value"},
		{"two values", `1 2`, "data after the value"},
		{"NUL byte", "\x00", "unexpected end"},
		{"bare word", `nope`, "bad literal"},
		{"unexpected character", `@`, "unexpected character"},
		{"arrays at the limit", nest("[", "", "]", MaxDepth), ""},
		{"arrays past the limit", nest("[", "", "]", MaxDepth+1), "exceeded max depth"},
		{"objects at the limit", nest(`{"a":`, "{}", "}", MaxDepth-1), ""},
		{"objects past the limit", nest(`{"a":`, "{}", "}", MaxDepth), "exceeded max depth"},
		{"scalar below the limit", nest("[", "1", "]", MaxDepth), ""},
	} {
		err := skipAll([]byte(c.in))
		var se *SyntaxError
		switch {
		case c.msg == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.msg != "" && (!errors.As(err, &se) || se.Msg != c.msg):
			t.Errorf("%s: error %v, want %q", c.name, err, c.msg)
		}
		if valid := json.Valid([]byte(c.in)); valid != (err == nil) {
			t.Errorf("%s: json.Valid = %v, Skip: %v", c.name, valid, err)
		}
	}
}

func TestObjectMembers(t *testing.T) {
	in := ` { "a" : 1 , "b\"" : [2] , "c":{} } `
	s := Scanner{B: []byte(in)}
	var keys []string
	var escapes []bool
	more, err := s.BeginObject(1)
	for more && err == nil {
		var key []byte
		var escaped bool
		if key, escaped, err = s.Key(); err != nil {
			break
		}
		keys, escapes = append(keys, string(key)), append(escapes, escaped)
		if err = s.Skip(2); err != nil {
			break
		}
		more, err = s.NextMember()
	}
	if err != nil || !s.AtEnd() {
		t.Fatalf("reading %q: %v, stopped at %d", in, err, s.I)
	}
	if got := strings.Join(keys, " "); got != `a b\" c` || escapes[0] || !escapes[1] || escapes[2] {
		t.Errorf("keys %q (escaped %v)", got, escapes)
	}

	for _, c := range []struct{ in, msg string }{
		{`[]`, "want '{'"},
		{``, "want '{'"},
		{`{`, "want a string key"},
	} {
		s := Scanner{B: []byte(c.in)}
		more, err := s.BeginObject(1)
		if err == nil && more {
			_, _, err = s.Key()
		}
		if se := (*SyntaxError)(nil); !errors.As(err, &se) || se.Msg != c.msg {
			t.Errorf("object %q: %v, want %q", c.in, err, c.msg)
		}
	}
	s = Scanner{B: []byte(`{}`)}
	if more, err := s.BeginObject(MaxDepth + 1); err == nil || more {
		t.Errorf("BeginObject past MaxDepth: %v, %v", more, err)
	}
	s = Scanner{B: []byte(`{} `)}
	if more, err := s.BeginObject(1); err != nil || more || !s.AtEnd() {
		t.Errorf("empty object: members %v, %v, at end %v", more, err, s.AtEnd())
	}
}

func TestSyntaxErrorMessage(t *testing.T) {
	s := Scanner{B: []byte(`[1 2]`)}
	err := s.Skip(1)
	if want := "invalid JSON at byte 3 (want ',' or ']')"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

// FuzzSkip checks that Skip accepts exactly the single values json.Valid
// accepts, and that a valid string decodes (RawString, then Unescape when
// escaped) to what json.Unmarshal gives:
//
//	go test -run '^$' -fuzz FuzzSkip -fuzztime 60s ./jsonscan
func FuzzSkip(f *testing.F) {
	for _, s := range []string{
		`{"id":"evt_1","data":{"object":{"id":"fca_1","status":"active","balance_refresh":null}}}`,
		`[1,-0.5e+7,true,false,null,"\"\\\/\b\f\n\r\t\uABCD",{}]`, `"\ud83d\ude00\ud800"`, `"a` + "\xff" + `"`,
		`{"a":1,}`, `[1,]`, `01`, `1.`, `-`, `"\x"`, `"\u12"`, `tru`, ``, ` `, `{"a"}`, `[[[[]]]]`,
		strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := skipAll(b)
		if valid := json.Valid(b); valid != (err == nil) {
			t.Fatalf("%q: json.Valid = %v, Skip: %v", b, valid, err)
		}
		s := Scanner{B: b}
		if s.Peek() != '"' {
			return
		}
		raw, escaped, err := s.RawString()
		if err != nil || !s.AtEnd() {
			return
		}
		var want string
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("%q: RawString accepts it, json.Unmarshal says %v", b, err)
		}
		if !escaped {
			// Invalid UTF-8 is passed through; encoding/json rewrites it.
			if utf8.Valid(raw) && string(raw) != want {
				t.Fatalf("%q: RawString = %q, json.Unmarshal gives %q", b, raw, want)
			}
			return
		}
		got, err := Unescape(raw)
		if err != nil || got != want {
			t.Fatalf("%q: Unescape = %q, %v; json.Unmarshal gives %q", b, got, err, want)
		}
	})
}
