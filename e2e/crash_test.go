package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/projections"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

// soakRounds is how many times TestCrashSafety kills and restarts serve:
// FCAUDIT_SOAK_ROUNDS, default 3 (`make soak` sets 20).
func soakRounds(t *testing.T) int {
	t.Helper()
	v := os.Getenv("FCAUDIT_SOAK_ROUNDS")
	if v == "" {
		return 3
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("FCAUDIT_SOAK_ROUNDS=%q: want a positive integer", v)
	}
	return n
}

// TestCrashSafety SIGKILLs serve at a random moment while 16 senders post
// signed events, restarts it on the same data directory, and checks that
// every event answered 200 is retrievable where the answer said it was
// stored, that the hash chains are intact, and that serve goes on
// appending and deduplicating after the crash.
func TestCrashSafety(t *testing.T) {
	for i := range soakRounds(t) {
		t.Run(fmt.Sprintf("round%02d", i+1), crashRound)
	}
}

func crashRound(t *testing.T) {
	dir := t.TempDir()
	// Checkpoints every 20ms: the kill lands between appends and checkpoint
	// publication too; verifyChains checks the tree against them.
	srv := startServe(t, serveConfig{dataDir: dir, extra: []string{"--checkpoint-interval", "20ms"}})
	l := startLoad(t, srv.url, 16)
	t.Cleanup(func() { l.stop() })

	// A random moment mid-load: after a random number of acknowledgements
	// (so the log is never empty) plus a random fraction of a group commit.
	target := int64(20 + rand.IntN(600))
	deadline := time.Now().Add(time.Minute)
	for l.acks.Load() < target {
		if time.Now().After(deadline) {
			_, failures := l.stop()
			t.Fatalf("only %d of %d acknowledgements within a minute; failures: %v\nstderr:\n%s",
				l.acks.Load(), target, failures, srv.stderr.String())
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(time.Duration(rand.IntN(5000)) * time.Microsecond)
	srv.kill()
	ids, failures := l.stop()
	if len(failures) > 0 {
		t.Fatalf("%d answers other than 200 before the kill, first: %s", len(failures), failures[0])
	}
	t.Logf("SIGKILL after %d acknowledged events", len(ids))

	srv2 := startServe(t, serveConfig{dataDir: dir})
	checkStored(t, srv2.url, ids)

	// Redelivering an acknowledged event is a duplicate with the original
	// coordinates; a new event is appended after the crash.
	c := newClient(1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var oneID string
	for id := range ids {
		oneID = id
		break
	}
	st, err := getBody(ctx, c, srv2.url, oneID)
	if err != nil {
		t.Fatal(err)
	}
	code, a, err := postWebhook(ctx, c, srv2.url, st, testSecret)
	if err != nil || code != http.StatusOK || !a.Duplicate || a.Position != ids[oneID].position {
		t.Fatalf("redelivery of %s after restart: %d %+v %v, want 200 duplicate at position %d", oneID, code, a, err, ids[oneID].position)
	}
	fresh := newEvent(fc.TypeRefreshedBalance, "")
	if code, a, err := postWebhook(ctx, c, srv2.url, fresh.body, testSecret); err != nil || code != http.StatusOK || a.Duplicate {
		t.Fatalf("new event after restart: %d %+v %v", code, a, err)
	}

	if n := verifyChains(t, dir); n < int64(len(ids))+1 {
		t.Fatalf("log holds %d events, fewer than the %d acknowledged", n, len(ids)+1)
	}
	// Both SQLite files, written through the write-combining VFS when the
	// process died, are structurally sound (every index matches its table).
	for _, name := range []string{sqlite.FileName, projections.FileName} {
		integrityCheck(t, filepath.Join(dir, name))
	}
}

// integrityCheck runs PRAGMA integrity_check on a read-only connection
// (beside the running serve).
func integrityCheck(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check of %s after the crash: %q %v", filepath.Base(path), res, err)
	}
}

// getBody fetches an event's stored body byte for byte.
func getBody(ctx context.Context, c *http.Client, baseURL, id string) ([]byte, error) {
	code, body, err := get(ctx, c, baseURL+"/v1/events/"+id+"/body", testToken)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET body of %s: %d %.200s", id, code, body)
	}
	return body, nil
}
