package translog

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"

	"github.com/fcaudit/fcaudit/store"
)

// LeafVersion is the "v" member of every leaf; a future layout gets a new
// value so old leaves keep their meaning.
const LeafVersion = 1

// receivedAtLayout writes ReceivedAt as backends store it: UTC, microseconds.
const receivedAtLayout = "2006-01-02T15:04:05.000000Z"

// LeafData returns the bytes hashed as e's leaf: a JSON object with exactly
// these members, in this order, no whitespace:
//
//	{"v":1,"id":…,"stream":…,"received_at":…,"source":…,"body_sha256":…,
//	 "provenance":null|{"signature_header":…,"signed_at":…,
//	 "secret_fingerprint":…,"verified_at":…,"note":…},"revision":…}
//
// Strings are encoded as Go's encoding/json encodes them; received_at is UTC
// with exactly six fractional digits; body_sha256 is lower-case hex;
// verified_at is RFC 3339 with nanoseconds as needed (time.RFC3339Nano, UTC).
// The body hash commits to everything Stripe sent (type, created, livemode,
// account, …); the rest commits to what fcaudit recorded about it, so
// switching an event's source or provenance changes its leaf. The revision
// comes last because the writer learns it last (StartLeaf).
//
// e must be the event as the backend stores it (ReceivedAt truncated to
// microseconds, Provenance as decoded from storage), so that the leaf
// computed in the append path equals the one recomputed from a read.
func LeafData(e *store.RecordedEvent) []byte {
	return appendRevision(appendLeafPrefix(make([]byte, 0, leafCap(e)), e), e.Revision)
}

func leafCap(e *store.RecordedEvent) int {
	n := 200 + len(e.ID) + len(e.Stream) + len(e.Source)
	if p := e.Provenance; p != nil {
		n += 160 + len(p.SignatureHeader) + len(p.SecretFingerprint) + len(p.Note)
	}
	return n
}

// LeafHashOf returns LeafHash(LeafData(e)) without keeping the leaf data.
func LeafHashOf(e *store.RecordedEvent) [32]byte {
	b := append(make([]byte, 0, 1+leafCap(e)), 0)
	return sha256.Sum256(appendRevision(appendLeafPrefix(b, e), e.Revision))
}

// PartialLeaf is a leaf computed up to the revision: an appender starts it
// (StartLeaf) before the writer, which alone knows the revision, finishes
// it, so the formatting runs outside the serial writer.
type PartialLeaf struct{ b []byte }

// maxRevisionSuffix bounds `,"revision":N}`.
const maxRevisionSuffix = len(`,"revision":}`) + 20

// StartLeaf formats 0x00 and the leaf data of e, to be stored in stream
// with body hash body, up to its revision.
func StartLeaf(e *store.Event, stream string, body [32]byte) PartialLeaf {
	rec := store.RecordedEvent{Event: *e, Stream: stream, BodySHA256: body}
	b := make([]byte, 0, 1+leafCap(&rec)+maxRevisionSuffix)
	return PartialLeaf{b: appendLeafPrefix(append(b, 0), &rec)}
}

// Finish returns the leaf hash for the given revision. Call it once.
func (p PartialLeaf) Finish(revision uint64) [32]byte {
	return sha256.Sum256(appendRevision(p.b, revision))
}

func appendRevision(b []byte, rev uint64) []byte {
	b = append(b, `,"revision":`...)
	b = strconv.AppendUint(b, rev, 10)
	return append(b, '}')
}

// appendLeafPrefix appends the leaf data up to (without) the revision.
func appendLeafPrefix(b []byte, e *store.RecordedEvent) []byte {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, LeafVersion, 10)
	b = append(b, `,"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"stream":`...)
	b = appendString(b, e.Stream)
	b = append(b, `,"received_at":"`...)
	b = appendMicros(b, e.ReceivedAt.UTC())
	b = append(b, `","source":`...)
	b = appendString(b, e.Source)
	b = append(b, `,"body_sha256":"`...)
	b = hex.AppendEncode(b, e.BodySHA256[:])
	b = append(b, `","provenance":`...)
	if p := e.Provenance; p == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"signature_header":`...)
		b = appendString(b, p.SignatureHeader)
		b = append(b, `,"signed_at":`...)
		b = strconv.AppendInt(b, p.SignedAt, 10)
		b = append(b, `,"secret_fingerprint":`...)
		b = appendString(b, p.SecretFingerprint)
		b = append(b, `,"verified_at":"`...)
		b = appendRFC3339Nano(b, p.VerifiedAt.UTC())
		b = append(b, `","note":`...)
		b = appendString(b, p.Note)
		b = append(b, '}')
	}
	return b
}

// appendMicros is t.AppendFormat(b, receivedAtLayout) for a UTC time,
// without the layout interpreter (it runs once per appended event).
func appendMicros(b []byte, t time.Time) []byte {
	if y := t.Year(); y < 0 || y > 9999 {
		return t.AppendFormat(b, receivedAtLayout)
	}
	b = appendDateTime(b, t)
	b = append(b, '.')
	b = appendDigits(b, t.Nanosecond()/1000, 6)
	return append(b, 'Z')
}

// appendRFC3339Nano is t.AppendFormat(b, time.RFC3339Nano) for a UTC time:
// the fraction without trailing zeros, none when zero.
func appendRFC3339Nano(b []byte, t time.Time) []byte {
	if y := t.Year(); y < 0 || y > 9999 {
		return t.AppendFormat(b, time.RFC3339Nano)
	}
	b = appendDateTime(b, t)
	if ns := t.Nanosecond(); ns != 0 {
		digits := 9
		for ns%10 == 0 {
			ns /= 10
			digits--
		}
		b = append(b, '.')
		b = appendDigits(b, ns, digits)
	}
	return append(b, 'Z')
}

func appendDateTime(b []byte, t time.Time) []byte {
	y, mo, d := t.Date()
	h, mi, sec := t.Clock()
	b = appendDigits(b, y, 4)
	b = append(b, '-')
	b = appendDigits(b, int(mo), 2)
	b = append(b, '-')
	b = appendDigits(b, d, 2)
	b = append(b, 'T')
	b = appendDigits(b, h, 2)
	b = append(b, ':')
	b = appendDigits(b, mi, 2)
	b = append(b, ':')
	return appendDigits(b, sec, 2)
}

// appendDigits appends v (>= 0) zero-padded to n digits.
func appendDigits(b []byte, v, n int) []byte {
	var buf [9]byte
	for i := n - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, buf[:n]...)
}

func appendString(b []byte, s string) []byte {
	if isPlain(s) {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// isPlain reports whether encoding/json writes s unchanged between quotes.
func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// Leaf is the decoded form of LeafData, for checking a proof's leaf against
// an event one holds.
type Leaf struct {
	V          int               `json:"v"`
	ID         string            `json:"id"`
	Stream     string            `json:"stream"`
	Revision   uint64            `json:"revision"`
	ReceivedAt string            `json:"received_at"`
	Source     string            `json:"source"`
	BodySHA256 string            `json:"body_sha256"`
	Provenance *store.Provenance `json:"provenance"`
}

// ParseLeaf decodes leaf data.
func ParseLeaf(data []byte) (Leaf, error) {
	var l Leaf
	err := json.Unmarshal(data, &l)
	return l, err
}

// LeafHash is the RFC 6962 leaf hash SHA-256(0x00 ‖ data).
func LeafHash(data []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(data)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// NodeHash is the RFC 6962 interior node hash SHA-256(0x01 ‖ left ‖ right).
func NodeHash(left, right []byte) []byte {
	var buf [65]byte
	buf[0] = 1
	copy(buf[1:33], left)
	copy(buf[33:], right)
	s := sha256.Sum256(buf[:])
	return s[:]
}
