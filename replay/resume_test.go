package replay

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// A canary (--limit 5) then the rest: --limit says how
// much, not what, so a checkpoint continues with a larger limit or none;
// another selection or target is still refused.
func TestCheckpointContinuesWithAnotherLimit(t *testing.T) {
	st, _ := openStore(t)
	stored := seed(t, st, 3, 6)
	cpPath := filepath.Join(t.TempDir(), "canary.checkpoint")
	rc := newReceiver(t)
	opts := Options{Concurrency: 2, Checkpoint: cpPath, TargetKey: rc.srv.URL}
	sel := Selection{Types: []string{"financial_connections.account.*"}}

	canary := sel
	canary.Limit = 5
	res, err := Deliver(context.Background(), st, canary, sender(rc, "canary"), opts)
	if err != nil || res.Replayed != 5 {
		t.Fatalf("canary: %+v, %v", res, err)
	}
	more := sel
	more.Limit = 8
	res, err = Deliver(context.Background(), st, more, sender(rc, "more"), opts)
	if err != nil || res.Replayed != 3 || res.AlreadyDone != 5 {
		t.Fatalf("--limit 8 after --limit 5: %+v, %v; want 3 more", res, err)
	}
	res, err = Deliver(context.Background(), st, sel, sender(rc, "rest"), opts)
	if err != nil || res.Replayed != len(stored)-8 || res.AlreadyDone != 8 {
		t.Fatalf("no limit after --limit 8: %+v, %v; want the other %d", res, err, len(stored)-8)
	}
	seen := map[string]int{}
	for _, d := range rc.deliveries() {
		seen[d.id]++
	}
	for _, ev := range stored {
		if seen[ev.ID] != 1 {
			t.Fatalf("%s delivered %d times across the runs, want 1", ev.ID, seen[ev.ID])
		}
	}
	// Still tied to the selection and the target.
	other := sel
	other.Accounts = []string{"fca_seed0001"}
	if _, err := Deliver(context.Background(), st, other, sender(rc, "x"), opts); !errors.Is(err, ErrCheckpointMismatch) {
		t.Errorf("another selection: %v, want ErrCheckpointMismatch", err)
	}
	o2 := opts
	o2.TargetKey = rc.srv.URL + "/other"
	if _, err := Deliver(context.Background(), st, sel, sender(rc, "x"), o2); !errors.Is(err, ErrCheckpointMismatch) {
		t.Errorf("another target: %v, want ErrCheckpointMismatch", err)
	}
}

// An interrupted run said "509 events not sent" with
// ~58,000 unsent: only the read-ahead was counted. Every selected event is
// now accounted for: replayed + failed + skipped + not sent = selected.
func TestInterruptedRunCountsEveryUnsentEvent(t *testing.T) {
	st, _ := openStore(t)
	stored := seed(t, st, 25, 100) // 2,500 events: pages of 1,000, read-ahead 128
	rc := newReceiver(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var n atomic.Int64
	rc.respond = func(_ int, _ string, _ http.ResponseWriter) bool {
		if n.Add(1) == 20 {
			cancel()
		}
		return false
	}
	res, err := Deliver(ctx, st, Selection{}, sender(rc, "r"), Options{Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	sum := res.Replayed + res.Failed + res.Skipped + res.NotAttempted
	if !res.Interrupted || sum != len(stored) || res.NotAttempted < len(stored)-200 || res.NotAttemptedAtLeast {
		t.Fatalf("interrupted run %+v: replayed+failed+skipped+not sent = %d, want every one of %d selected", res, sum, len(stored))
	}
	out := RunOutcome{Record: RunRecord{Status: StatusInterrupted}, Result: res}
	if msg := out.ExitMessage(); !strings.Contains(msg, "interrupted: ") || res.NotAttempted < 2000 {
		t.Errorf("message %q", msg)
	}

	// With a limit and a checkpoint from an earlier run, only the rest of
	// the limit that was not delivered before counts.
	cpPath := filepath.Join(t.TempDir(), "cp")
	rc2 := newReceiver(t)
	if _, err := Deliver(context.Background(), st, Selection{Limit: 10}, sender(rc2, "a"), Options{Checkpoint: cpPath, TargetKey: "t"}); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	var m atomic.Int64
	rc2.respond = func(_ int, _ string, _ http.ResponseWriter) bool {
		if m.Add(1) == 5 {
			cancel2()
		}
		return false
	}
	res, err = Deliver(ctx2, st, Selection{Limit: 1500}, sender(rc2, "b"), Options{Concurrency: 2, Checkpoint: cpPath, TargetKey: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if sum := res.Replayed + res.Failed + res.Skipped + res.NotAttempted + res.AlreadyDone; !res.Interrupted || sum != 1500 {
		t.Errorf("resumed, interrupted run %+v: accounted for %d of the 1,500 selected", res, sum)
	}
}
