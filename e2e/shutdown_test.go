package e2e

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// TestGracefulShutdown sends SIGTERM while 16 senders post events: serve
// drains, exits 0, and every event answered 200 before it exited is in the
// log where the answer said; no request gets an error answer on the way down.
func TestGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	srv := startServe(t, serveConfig{dataDir: dir})
	l := startLoad(t, srv.url, 16)
	t.Cleanup(func() { l.stop() })

	target := int64(50 + rand.IntN(400))
	deadline := time.Now().Add(time.Minute)
	for l.acks.Load() < target {
		if time.Now().After(deadline) {
			t.Fatalf("only %d acknowledgements within a minute; stderr:\n%s", l.acks.Load(), srv.stderr.String())
		}
		time.Sleep(time.Millisecond)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The senders go on until serve stops accepting connections; requests
	// in flight at the signal are answered before it exits.
	if code := srv.exitCode(time.Minute); code != 0 {
		t.Fatalf("exit status %d after SIGTERM; stderr:\n%s", code, srv.stderr.String())
	}
	ids, failures := l.wait()
	if len(failures) > 0 {
		t.Fatalf("%d answers other than 200 during shutdown, first: %s", len(failures), failures[0])
	}
	stored := storedIDs(t, dir)
	var missing int
	for id, a := range ids {
		if got, ok := stored[id]; !ok || got != a {
			missing++
			if missing <= 10 {
				t.Errorf("acknowledged %s at %s@%d, stored: %v %+v", id, a.stream, a.position, ok, got)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged events missing after a graceful shutdown", missing, len(ids))
	}
	verifyChains(t, dir)
	t.Logf("SIGTERM after %d acknowledgements; %d acknowledged in all, %d stored", target, len(ids), len(stored))
}
