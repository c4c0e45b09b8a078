package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/store"
)

func TestOpenNotADatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(path, []byte(strings.Repeat("this is not an SQLite file\n", 200)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		s, err := Open(path, Options{ReadOnly: ro})
		if err == nil {
			s.Close()
			t.Fatalf("Open(ReadOnly=%v) of a text file succeeded", ro)
		}
		if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "not a database") {
			t.Errorf("Open(ReadOnly=%v) of a text file: %v, want ErrUnavailable keeping SQLite's message", ro, err)
		}
	}
}

func TestOpenReadOnlyMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope", FileName)
	if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("read-only Open of a missing file: %v, want ErrUnavailable", err)
	}
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Errorf("read-only Open created the directory")
	}
}

func TestOpenCreatesPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	openTest(t, filepath.Join(dir, FileName), Options{})
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v, want 0700", fi.Mode().Perm())
	}
}

func TestReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	rw := openTest(t, path, Options{})
	ctx := context.Background()
	e := store.Event{ID: "evt_1", Type: "t", Data: []byte("{}"), Source: store.SourceWebhook}
	if _, err := rw.Append(ctx, "fcaccount-a", store.NoStream, e); err != nil {
		t.Fatal(err)
	}
	ro := openTest(t, path, Options{ReadOnly: true})
	if _, err := ro.Append(ctx, "fcaccount-a", store.AnyRevision, e); !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("Append read-only: %v, want ErrReadOnly", err)
	}
	if err := ro.Ping(ctx); err != nil {
		t.Errorf("Ping read-only: %v", err)
	}
	if _, err := ro.EventByID(ctx, "evt_1"); err != nil {
		t.Errorf("read through the read-only handle: %v", err)
	}
}

// TestDiskFull fills the database to a page limit (SQLite's SQLITE_FULL, as on
// a full disk): appends fail with ErrUnavailable, nothing of the failed batch
// is stored, and appends work again once space is available.
func TestDiskFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	var (
		mu      sync.Mutex
		commits []CommitStats
	)
	s := openTest(t, path, Options{OnCommit: func(c CommitStats) { mu.Lock(); commits = append(commits, c); mu.Unlock() }})
	ctx := context.Background()
	var pages int64
	if err := s.rdb.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if err := s.execWrite(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages+3)); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 64<<10)
	var err error
	i := 0
	for ; i < 10 && err == nil; i++ {
		_, err = s.Append(ctx, "fcaccount-a", store.AnyRevision, store.Event{ID: fmt.Sprintf("evt_%d", i), Type: "t", Data: big, Source: "webhook"})
	}
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "full") {
		t.Fatalf("append to a full database: %v, want ErrUnavailable (database or disk is full)", err)
	}
	failed := fmt.Sprintf("evt_%d", i-1)
	if _, err := s.EventByID(ctx, failed); !errors.Is(err, store.ErrEventNotFound) {
		t.Errorf("failed append stored %s: %v", failed, err)
	}
	// OnCommit runs after requests are answered; the next commit on the
	// same writer goroutine starts only after it returned.
	_ = s.execWrite(ctx, "SELECT 1")
	mu.Lock()
	failedCommits := 0
	for _, c := range commits {
		if c.Err != nil && c.Events == 0 && errors.Is(c.Err, store.ErrUnavailable) {
			failedCommits++
		}
	}
	mu.Unlock()
	if failedCommits != 1 {
		t.Errorf("OnCommit saw %d failed commits, want 1: %+v", failedCommits, commits)
	}
	if err := s.execWrite(ctx, "PRAGMA max_page_count = 1073741823"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "fcaccount-a", store.AnyRevision, store.Event{ID: failed, Type: "t", Data: big, Source: "webhook"}); err != nil {
		t.Fatalf("append after space was freed: %v", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	verifyChain(t, s, "fcaccount-a")
}

// TestPingLockedOut holds the write lock from another connection (as a stuck
// writer in another process would) past the busy timeout: Ping reports
// ErrUnavailable, and recovers once the lock is released.
//
// An unwritable file or directory cannot be simulated here: tests run as
// root, which ignores permissions, and an already open descriptor stays
// writable anyway.
func TestPingLockedOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openTest(t, path, Options{})
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := s.execWrite(ctx, "PRAGMA busy_timeout = 50"); err != nil {
		t.Fatal(err)
	}
	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Ping while another connection holds the write lock: %v, want ErrUnavailable", err)
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping after the lock was released: %v", err)
	}
}

func TestClosedStore(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), FileName), Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Ping(ctx); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Ping: %v", err)
	}
	if _, err := s.ReadAll(ctx, store.ReadOptions{}); !errors.Is(err, store.ErrClosed) {
		t.Errorf("ReadAll: %v", err)
	}
	if _, err := s.Head(ctx); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Head: %v", err)
	}
	if err := s.Subscribe(ctx, 0, store.Filter{}, nil); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Subscribe: %v", err)
	}
}

// TestAppendCancelledWhileQueued: a request whose context is done before the
// writer picks it up is not applied.
func TestAppendCancelledWhileQueued(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), FileName), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Append(ctx, "fcaccount-a", store.AnyRevision, store.Event{ID: "evt_c", Type: "t", Data: []byte("{}"), Source: "webhook", ReceivedAt: time.Now()})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a cancelled context: %v", err)
	}
	if err := s.Ping(context.Background()); err != nil { // flushes the writer queue
		t.Fatal(err)
	}
	if _, err := s.EventByID(context.Background(), "evt_c"); !errors.Is(err, store.ErrEventNotFound) {
		t.Errorf("cancelled append was stored: %v", err)
	}
}

func TestTypeGlob(t *testing.T) {
	for in, want := range map[string]string{
		"a.*":     "a.*",
		"a?b[c]*": "a[?]b[[]c]*",
		"*.x.*":   "*.x.*",
		"plain":   "plain",
	} {
		if got := typeGlob(in); got != want {
			t.Errorf("typeGlob(%q) = %q, want %q", in, got, want)
		}
	}
	if got, ok := prefixUpper("ab\xff"); !ok || got != "ac" {
		t.Errorf("prefixUpper = %q %v", got, ok)
	}
	if _, ok := prefixUpper("\xff\xff"); ok {
		t.Errorf("prefixUpper of all 0xff has an upper bound")
	}
}
