package jsonscan

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// MaxDepth is encoding/json's nesting limit: a document with objects and
// arrays nested deeper is invalid JSON to it, and so to Skip.
const MaxDepth = 10000

// SyntaxError reports input that is not valid JSON (or not what the caller
// asked for) and where.
type SyntaxError struct {
	// Offset is the byte offset in Scanner.B where reading stopped.
	Offset int
	// Msg says what was wrong ("bad number", "want ':'", …).
	Msg string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d (%s)", e.Offset, e.Msg)
}

// Scanner reads the JSON text B from offset I. The zero value with B set
// reads B from its start. Methods that read a value expect I at the value
// or at blanks before it; on error I is left where reading stopped.
type Scanner struct {
	B []byte
	I int
}

// Fail returns a *SyntaxError at the current offset.
func (s *Scanner) Fail(msg string) error { return &SyntaxError{Offset: s.I, Msg: msg} }

// Space steps over blanks (space, tab, newline, carriage return).
func (s *Scanner) Space() {
	for s.I < len(s.B) {
		switch s.B[s.I] {
		case ' ', '\t', '\n', '\r':
			s.I++
		default:
			return
		}
	}
}

// Peek steps over blanks and returns the next byte without consuming it, or
// 0 at the end of the input (a NUL byte in the input is invalid JSON
// anyway, so callers may treat both alike).
func (s *Scanner) Peek() byte {
	s.Space()
	if s.I < len(s.B) {
		return s.B[s.I]
	}
	return 0
}

// AtEnd steps over blanks and reports whether the input ends there.
func (s *Scanner) AtEnd() bool {
	s.Space()
	return s.I == len(s.B)
}

// Literal steps over lit (true, false or null) at the current offset.
func (s *Scanner) Literal(lit string) error {
	if !bytes.HasPrefix(s.B[s.I:], []byte(lit)) {
		return s.Fail("bad literal")
	}
	s.I += len(lit)
	return nil
}

// Number steps over a JSON number at the current offset and returns its
// text.
func (s *Scanner) Number() ([]byte, error) {
	b, start := s.B, s.I
	i := start
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
		s.I = i
		return nil, s.Fail("bad number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			s.I = i
			return nil, s.Fail("bad number")
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
			s.I = i
			return nil, s.Fail("bad number")
		}
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	}
	s.I = i
	return b[start:i], nil
}

// RawString steps over a string at the current offset and returns its
// contents between the quotes, escapes unprocessed (a sub-slice of B), and
// whether it has any. Escapes are validated; bytes that are not valid UTF-8
// are passed through.
func (s *Scanner) RawString() (raw []byte, escaped bool, err error) {
	b := s.B
	if s.I >= len(b) || b[s.I] != '"' {
		return nil, false, s.Fail("want a string")
	}
	start := s.I + 1
	i := start
	for {
		// Fast path: plain bytes.
		for i < len(b) && b[i] != '"' && b[i] != '\\' && b[i] >= 0x20 {
			i++
		}
		if i >= len(b) {
			s.I = i
			return nil, false, s.Fail("unterminated string")
		}
		switch c := b[i]; {
		case c == '"':
			s.I = i + 1
			return b[start:i], escaped, nil
		case c < 0x20:
			s.I = i
			return nil, false, s.Fail("control character in string")
		}
		// A backslash.
		escaped = true
		if i+1 >= len(b) {
			s.I = i
			return nil, false, s.Fail("unterminated string")
		}
		switch b[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
				s.I = i
				return nil, false, s.Fail("bad \\u escape")
			}
			i += 6
		default:
			s.I = i
			return nil, false, s.Fail("bad escape")
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// Unescape decodes the raw contents of a string that RawString reported
// as escaped, exactly as json.Unmarshal decodes it into a string (lone
// surrogates and invalid UTF-8 become U+FFFD). It allocates; raw must have
// been validated by RawString, else the result is an error.
func Unescape(raw []byte) (string, error) {
	quoted := make([]byte, 0, len(raw)+2)
	quoted = append(append(append(quoted, '"'), raw...), '"')
	var v string
	if err := json.Unmarshal(quoted, &v); err != nil {
		return "", fmt.Errorf("unescape string: %w", err)
	}
	return v, nil
}

// BeginObject steps over the '{' of an object at nesting depth depth (1
// for a top-level object) and reports whether it has members; if not, it
// steps over the '}' too. Read each member with Key, then its value, then
// NextMember.
func (s *Scanner) BeginObject(depth int) (members bool, err error) {
	if s.Peek() != '{' {
		return false, s.Fail("want '{'")
	}
	if depth > MaxDepth {
		return false, s.Fail("exceeded max depth")
	}
	s.I++
	if s.Peek() == '}' {
		s.I++
		return false, nil
	}
	return true, nil
}

// Key reads an object member's name and the ':' after it, and checks that
// a value follows. It returns the name as RawString does; the scanner is
// left at the value.
func (s *Scanner) Key() (raw []byte, escaped bool, err error) {
	if s.Peek() != '"' {
		return nil, false, s.Fail("want a string key")
	}
	if raw, escaped, err = s.RawString(); err != nil {
		return nil, false, err
	}
	if s.Peek() != ':' {
		return nil, false, s.Fail("want ':'")
	}
	s.I++
	if s.Peek() == 0 {
		return nil, false, s.Fail("unexpected end")
	}
	return raw, escaped, nil
}

// NextMember reads what follows a member's value: ',' (another member
// follows: more is true) or the object's closing '}'.
func (s *Scanner) NextMember() (more bool, err error) {
	switch s.Peek() {
	case ',':
		s.I++
		return true, nil
	case '}':
		s.I++
		return false, nil
	}
	return false, s.Fail("want ',' or '}'")
}

// Skip validates and steps over one value, which is at nesting depth depth
// if it is an object or array (1 for a top-level value).
func (s *Scanner) Skip(depth int) error {
	switch c := s.Peek(); c {
	case '{':
		more, err := s.BeginObject(depth)
		for more && err == nil {
			if _, _, err = s.Key(); err != nil {
				break
			}
			if err = s.Skip(depth + 1); err != nil {
				break
			}
			more, err = s.NextMember()
		}
		return err
	case '[':
		if depth > MaxDepth {
			return s.Fail("exceeded max depth")
		}
		s.I++
		if s.Peek() == ']' {
			s.I++
			return nil
		}
		for {
			if s.Peek() == 0 {
				return s.Fail("unexpected end")
			}
			if err := s.Skip(depth + 1); err != nil {
				return err
			}
			switch s.Peek() {
			case ',':
				s.I++
			case ']':
				s.I++
				return nil
			default:
				return s.Fail("want ',' or ']'")
			}
		}
	case '"':
		_, _, err := s.RawString()
		return err
	case 't':
		return s.Literal("true")
	case 'f':
		return s.Literal("false")
	case 'n':
		return s.Literal("null")
	case 0:
		return s.Fail("unexpected end")
	default:
		if c == '-' || ('0' <= c && c <= '9') {
			_, err := s.Number()
			return err
		}
		return s.Fail("unexpected character")
	}
}
