package replay

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/fcaudit/fcaudit/store"
)

// countingSender counts the attempts of a real sender.
type countingSender struct {
	Sender
	n   atomic.Int64
	err func(n int64) error // if set, answers attempt n instead of Sender
}

func (c *countingSender) Send(ctx context.Context, ev *store.RecordedEvent) error {
	n := c.n.Add(1)
	if c.err != nil {
		if err := c.err(n); err != nil {
			return err
		}
		return nil
	}
	return c.Sender.Send(ctx, ev)
}

// closedURL is a loopback URL nothing listens on (connection refused).
func closedURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/webhooks/stripe"
}

// TestUnreachableTargetFailsFast: a target that refuses connections from
// the start stops the run after a short probe with ErrTargetUnreachable,
// instead of retrying every account MaxRetries times; nothing is marked
// failed and the checkpoint keeps every event pending.
func TestUnreachableTargetFailsFast(t *testing.T) {
	for _, target := range []string{closedURL(t), "http://fcaudit-no-such-host.invalid/webhooks"} {
		st, _ := openStore(t)
		seed(t, st, 30, 2)
		s := &countingSender{Sender: &HTTPSender{URL: target, Secret: "whsec_x", RunID: "r"}}
		cp := filepath.Join(t.TempDir(), "cp.json")
		res, err := Deliver(context.Background(), st, Selection{}, s,
			Options{Clock: newFakeClock(), Jitter: noJitter, Concurrency: 4, Checkpoint: cp, TargetKey: target, TargetLabel: target})
		if !errors.Is(err, ErrTargetUnreachable) || !strings.Contains(err.Error(), target) {
			t.Fatalf("%s: err %v, want ErrTargetUnreachable naming the target", target, err)
		}
		// At most every worker's probe; before: every event of every
		// account, 6 attempts each.
		if n := s.n.Load(); n > int64(4*DefaultUnreachableProbes) {
			t.Errorf("%s: %d attempts, want at most %d", target, n, 4*DefaultUnreachableProbes)
		}
		if res.Failed != 0 || res.Replayed != 0 || res.Skipped != 0 || res.Interrupted {
			t.Errorf("%s: result %+v: want nothing failed, skipped or replayed, not 'interrupted'", target, res)
		}
		loaded, lerr := LoadCheckpoint(cp)
		if lerr != nil || loaded == nil || loaded.LowCount != 0 {
			t.Errorf("%s: checkpoint %+v %v: want every event pending", target, loaded, lerr)
		}
	}
}

// TestUnreachableAfterReachedRetries: once the target has answered, a
// refused connection is a transient failure retried as before (a receiver
// restarting mid-run), not the end of the run.
func TestUnreachableAfterReachedRetries(t *testing.T) {
	st, _ := openStore(t)
	seed(t, st, 1, 3)
	refused := &SendError{Retryable: true, Unreachable: true, Err: errors.New("connection refused")}
	s := &countingSender{err: func(n int64) error {
		if n == 1 || n >= 5 {
			return nil // the first event goes through, then 3 refusals
		}
		return refused
	}}
	res, err := Deliver(context.Background(), st, Selection{}, s, Options{Clock: newFakeClock(), Jitter: noJitter, Concurrency: 1})
	if err != nil || res.Replayed != 3 || res.Retries != 3 {
		t.Fatalf("result %+v, err %v: want 3 replayed after 3 retries", res, err)
	}
}
