package audit

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/fcaudit/fcaudit/ingest"
)

// fastEnvelope extracts the fields of ingest.Envelope from a Stripe event
// body without encoding/json, which costs several times a body's SHA-256
// and would make verify far slower than a plain scan.
//
// It is a fast path only: it reads the top-level object (and data.object)
// and skips every other value by matching brackets and quotes, and gives up
// (ok false) on anything unusual — an escape in a key or in a value it
// needs, a key repeated or matching one of ours only case-insensitively
// (encoding/json would take it), a value of an unexpected JSON type, a
// missing field. The caller then falls back to ingest.ParseEnvelope, the
// authority. When ok is true the envelope equals what ParseEnvelope returns
// for any valid JSON body (FuzzFastEnvelope checks this). It does not
// validate the JSON of the values it skips: the body's integrity is what
// body_sha256 and the chain prove.
func fastEnvelope(b []byte) (env ingest.Envelope, ok bool) {
	if !utf8.Valid(b) {
		return env, false
	}
	const (
		fID = 1 << iota
		fObject
		fType
		fCreated
		fLivemode
		fAPIVersion
		fAccount
		fData
	)
	var seen int
	i, ok := openObject(b, 0)
	for ok {
		var key []byte
		var more bool
		key, i, more, ok = nextKey(b, i)
		if !ok || !more {
			break
		}
		var bit int
		switch string(key) {
		case "id":
			bit = fID
			env.ID, i, ok = plainString(b, i)
		case "object":
			bit = fObject
			env.Object, i, ok = plainString(b, i)
		case "type":
			bit = fType
			env.Type, i, ok = plainString(b, i)
		case "created":
			bit = fCreated
			env.Created, i, ok = integer(b, i)
		case "livemode":
			bit = fLivemode
			env.Livemode, i, ok = boolean(b, i)
		case "api_version":
			bit = fAPIVersion
			env.APIVersion, i, ok = plainString(b, i)
		case "account":
			bit = fAccount
			if bytes.HasPrefix(b[i:], []byte("null")) {
				i += 4
			} else {
				env.ConnectAccount, i, ok = plainString(b, i)
			}
		case "data":
			bit = fData
			i, ok = dataObject(b, i, &env)
		default:
			if foldsToOurs(key) {
				return env, false
			}
			i, ok = skipValue(b, i)
		}
		if seen&bit != 0 {
			return env, false // a repeated key: encoding/json's merge rules apply
		}
		seen |= bit
	}
	// account may be absent; everything else ParseEnvelope requires is
	// left to it to report.
	const required = fID | fObject | fType | fCreated | fData
	if !ok || seen&required != required || env.Object != "event" || env.ID == "" || env.Type == "" || env.Created <= 0 {
		return env, false
	}
	if strings.HasPrefix(env.Type, ingest.AccountEventPrefix) && env.ObjectID == "" {
		return env, false
	}
	return env, true
}

var ourKeys = []string{"id", "object", "type", "created", "livemode", "api_version", "account", "data"}

// foldsToOurs reports whether key would be matched by encoding/json to one
// of the envelope's fields (case-insensitively) without being it exactly.
func foldsToOurs(key []byte) bool {
	for _, k := range ourKeys {
		if len(key) == len(k) && strings.EqualFold(string(key), k) {
			return true
		}
	}
	return false
}

// dataObject reads data: {"object": {"id": …, "object": …, …}, …}.
func dataObject(b []byte, i int, env *ingest.Envelope) (int, bool) {
	i, ok := openObject(b, i)
	found := false
	for ok {
		var key []byte
		var more bool
		key, i, more, ok = nextKey(b, i)
		if !ok || !more {
			break
		}
		switch {
		case string(key) == "object":
			if found {
				return i, false
			}
			found = true
			i, ok = accountObject(b, i, env)
		case strings.EqualFold(string(key), "object"):
			return i, false
		default:
			i, ok = skipValue(b, i)
		}
	}
	return i, ok && found
}

func accountObject(b []byte, i int, env *ingest.Envelope) (int, bool) {
	i, ok := openObject(b, i)
	var seenID, seenObj bool
	for ok {
		var key []byte
		var more bool
		key, i, more, ok = nextKey(b, i)
		if !ok || !more {
			break
		}
		switch string(key) {
		case "id":
			if seenID {
				return i, false
			}
			seenID = true
			env.ObjectID, i, ok = plainString(b, i)
		case "object":
			if seenObj {
				return i, false
			}
			seenObj = true
			env.ObjectType, i, ok = plainString(b, i)
		default:
			if strings.EqualFold(string(key), "id") || strings.EqualFold(string(key), "object") {
				return i, false
			}
			i, ok = skipValue(b, i)
		}
	}
	return i, ok
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// openObject expects '{' at b[i] (after space) and returns the index after it.
func openObject(b []byte, i int) (int, bool) {
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != '{' {
		return i, false
	}
	return i + 1, true
}

// nextKey reads `[,] "key" :` of an object whose '{' or previous value ends
// before i. more is false at the closing '}'.
func nextKey(b []byte, i int) (key []byte, next int, more, ok bool) {
	i = skipSpace(b, i)
	if i >= len(b) {
		return nil, i, false, false
	}
	switch b[i] {
	case '}':
		return nil, i + 1, false, true
	case ',':
		i = skipSpace(b, i+1)
	}
	if i >= len(b) || b[i] != '"' {
		return nil, i, false, false
	}
	end := bytes.IndexByte(b[i+1:], '"')
	if end < 0 {
		return nil, i, false, false
	}
	key = b[i+1 : i+1+end]
	if bytes.IndexByte(key, '\\') >= 0 {
		return nil, i, false, false
	}
	i = skipSpace(b, i+2+end)
	if i >= len(b) || b[i] != ':' {
		return nil, i, false, false
	}
	return key, skipSpace(b, i+1), true, true
}

// plainString reads a JSON string without escapes.
func plainString(b []byte, i int) (string, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return "", i, false
	}
	end := bytes.IndexByte(b[i+1:], '"')
	if end < 0 {
		return "", i, false
	}
	s := b[i+1 : i+1+end]
	if bytes.IndexByte(s, '\\') >= 0 {
		return "", i, false
	}
	for _, c := range s {
		if c < 0x20 {
			return "", i, false // a control character: invalid JSON
		}
	}
	return string(s), i + 2 + end, true
}

// integer reads a JSON number that is a plain decimal integer.
func integer(b []byte, i int) (int64, int, bool) {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	if j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E') {
		return 0, i, false
	}
	n, err := strconv.ParseInt(string(b[i:j]), 10, 64)
	if err != nil || (j-i > 1 && b[i] == '0') || (j-i > 2 && b[i] == '-' && b[i+1] == '0') {
		return 0, i, false
	}
	return n, j, true
}

func boolean(b []byte, i int) (bool, int, bool) {
	switch {
	case bytes.HasPrefix(b[i:], []byte("true")):
		return true, i + 4, true
	case bytes.HasPrefix(b[i:], []byte("false")):
		return false, i + 5, true
	}
	return false, i, false
}

// skipValue skips one JSON value starting at b[i].
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				var ok bool
				if i, ok = skipString(b, i); !ok {
					return i, false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, true
				}
			}
			i++
		}
		return i, false
	default:
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\n' && b[i] != '\t' && b[i] != '\r' {
			i++
		}
		return i, true
	}
}

// skipString skips a JSON string starting at the quote b[i].
func skipString(b []byte, i int) (int, bool) {
	i++
	for {
		end := bytes.IndexByte(b[i:], '"')
		if end < 0 {
			return len(b), false
		}
		j := i + end
		// The quote is escaped when an odd number of backslashes precede it.
		n := 0
		for k := j - 1; k >= i && b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return j + 1, true
		}
		i = j + 1
	}
}
