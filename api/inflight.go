package api

import (
	"errors"
	"sync"
)

// DefaultMaxInflightBytes bounds the bytes of webhook bodies being read or
// held before their signature is checked and they are stored.
const DefaultMaxInflightBytes = 64 << 20

// errBusy answers 503 server_busy: the body budget is spent.
var errBusy = errors.New("too many webhook bodies are being received at once; nothing was read or stored, retry later")

// byteBudget bounds the bytes of request bodies in flight. A webhook
// reserves its Content-Length (or the largest accepted body when the length
// is not declared) before reading a byte, and releases it when it is
// answered; a request that does not fit is refused unread, so memory stays
// bounded however many clients send at once.
type byteBudget struct {
	mu    sync.Mutex
	limit int64
	used  int64
	busy  int64
}

// reserve takes n bytes of the budget, or reports false when they do not
// fit. A request larger than the whole budget is still admitted when
// nothing else is in flight, so a budget below the body limit cannot refuse
// a legitimate webhook forever.
func (b *byteBudget) reserve(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.limit && b.used > 0 {
		b.busy++
		return false
	}
	b.used += n
	return true
}

func (b *byteBudget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

func (b *byteBudget) stats() (used, busy int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, b.busy
}
