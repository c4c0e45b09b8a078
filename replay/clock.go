package replay

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// Clock is the time source of a run; tests inject a fake one so backoff and
// rate limiting are checked without waiting.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx ends (returning ctx's error).
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fullJitter returns a uniformly random duration in [0, d] (AWS's "full
// jitter": spreads retries of many workers so they don't arrive together).
func fullJitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// limiter spaces events evenly at rate per second (a token bucket holding one
// token): each caller reserves the next free slot, then sleeps until it.
type limiter struct {
	clock    Clock
	interval time.Duration
	mu       sync.Mutex
	next     time.Time
}

// newLimiter returns nil (no limit) for rate <= 0.
func newLimiter(rate float64, c Clock) *limiter {
	if rate <= 0 {
		return nil
	}
	return &limiter{clock: c, interval: time.Duration(float64(time.Second) / rate)}
}

// wait blocks until the caller may send one request.
func (l *limiter) wait(ctx context.Context) error {
	if l == nil {
		return ctx.Err()
	}
	l.mu.Lock()
	now := l.clock.Now()
	at := l.next
	if at.Before(now) {
		at = now
	}
	l.next = at.Add(l.interval)
	l.mu.Unlock()
	return l.clock.Sleep(ctx, at.Sub(now))
}
