package store

import (
	"crypto/sha256"
	"time"
)

// ReceivedAtLayout is the canonical text form of ReceivedAt used by the hash
// chain and the API: UTC, always six fractional digits.
const ReceivedAtLayout = "2006-01-02T15:04:05.000000Z"

// FormatReceivedAt renders t in ReceivedAtLayout (UTC, microseconds).
func FormatReceivedAt(t time.Time) string { return t.UTC().Format(ReceivedAtLayout) }

// ChainSeed is the chain value "before revision 0" of a stream:
// SHA-256 of the stream name.
func ChainSeed(stream string) [32]byte { return sha256.Sum256([]byte(stream)) }

// ChainHash computes a stream's chain value after an event:
//
//	SHA-256(prev ‖ bodySHA256 ‖ id ‖ 0x00 ‖ FormatReceivedAt(receivedAt))
//
// where prev is the previous event's chain value (ChainSeed for revision 0).
// The NUL byte keeps the variable-length id unambiguous. Any change to a body,
// id, receipt time, or to the order or presence of earlier events changes
// every later value.
func ChainHash(prev, bodySHA256 [32]byte, id string, receivedAt time.Time) [32]byte {
	h := sha256.New()
	h.Write(prev[:])
	h.Write(bodySHA256[:])
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write([]byte(FormatReceivedAt(receivedAt)))
	var out [32]byte
	h.Sum(out[:0])
	return out
}
