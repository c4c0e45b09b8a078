package projections

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/sqlitewc"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

func TestRunnerFollowsLiveAndOtherProcesses(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	r := openRunner(t, dir, st, Options{})
	startRunner(t, r)

	evs := fixtureEvents(t)
	for _, e := range evs[:3] {
		if _, err := st.Append(context.Background(), e.Stream, store.AnyRevision, e.Event); err != nil {
			t.Fatal(err)
		}
	}
	// A non-account event after them must not count as lag.
	if _, err := st.Append(context.Background(), "stripe-customer-cus_1", store.AnyRevision,
		store.Event{ID: "evt_cus", Type: "customer.created", Data: []byte(`{}`), Created: 1, Source: store.SourceWebhook}); err != nil {
		t.Fatal(err)
	}
	s := waitCaughtUp(t, r)
	if s.Checkpoint != 3 || s.Head != 4 || s.EventsApplied != 3 || s.Rows != 1 {
		t.Errorf("status after 3 events: %+v", s)
	}
	a, err := r.row(context.Background(), fixtureAccount)
	if err != nil {
		t.Fatal(err)
	}
	if a.EventsCount != 3 || a.Status != "active" || a.OwnershipRefresh == nil {
		t.Errorf("account after 3 events: %+v", a)
	}

	// Another process (a second writable handle on the same file, as
	// backfill would be) appends the rest: the sqlite backend polls for it.
	other, err := sqlite.Open(filepath.Join(dir, sqlite.FileName), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for _, e := range evs[3:] {
		if _, err := other.Append(context.Background(), e.Stream, store.AnyRevision, e.Event); err != nil {
			t.Fatal(err)
		}
	}
	// Account would fold unapplied events from the stream (read-your-
	// writes): watch the live table's own row.
	waitFor(t, "the other process's events applied", func() bool {
		a, err := r.row(context.Background(), fixtureAccount)
		return err == nil && a.EventsCount == int64(len(evs))
	})
	a, _ = r.row(context.Background(), fixtureAccount)
	want, _ := FoldAccount(evs)
	want.SnapshotPosition = a.SnapshotPosition // positions differ from the fixture numbering
	if !reflect.DeepEqual(a, want) {
		t.Errorf("live projection differs from FoldAccount:\n got %+v\nwant %+v", a, want)
	}
	if _, err := r.Account(context.Background(), "fca_missing"); !errors.Is(err, ErrAccountNotFound) {
		t.Errorf("missing account: %v", err)
	}
}

func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after 30s waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStatusLag(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	r := openRunner(t, dir, st, Options{Now: func() time.Time { return now }})
	evs := fixtureEvents(t)
	for i, e := range evs {
		e.ReceivedAt = now.Add(time.Duration(i-10) * time.Second) // oldest waited 10s
		if _, err := st.Append(context.Background(), e.Stream, store.AnyRevision, e.Event); err != nil {
			t.Fatal(err)
		}
	}
	sts, err := r.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s := sts[0]; s.EventsBehind != 7 || s.SecondsBehind != 10 || s.Checkpoint != 0 || s.Head != 7 {
		t.Errorf("before running: %+v; want 7 behind, 10 s", s)
	}
	startRunner(t, r)
	if s := waitCaughtUp(t, r); s.SecondsBehind != 0 || s.Checkpoint != 7 {
		t.Errorf("caught up: %+v", s)
	}

	// A read-only runner (projections status while serve runs) sees it too.
	ro := openRunner(t, dir, st, Options{ReadOnly: true})
	sts, err = ro.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sts[0].Checkpoint != 7 || sts[0].Rows != 1 {
		t.Errorf("read-only status: %+v", sts[0])
	}
	if err := ro.Run(context.Background()); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Run on read-only: %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), FileName), st, Options{ReadOnly: true}); !errors.Is(err, ErrNoReadModels) {
		t.Errorf("read-only open of a missing file: %v", err)
	}
}

// checkExact asserts every account's row equals the fold of its stream, so
// each event was applied exactly once.
func checkExact(t *testing.T, r *Runner, st store.Store, h *history) {
	t.Helper()
	got := storedAccounts(t, r)
	want := expectedFromLog(t, st, h.accounts)
	var total int64
	for _, a := range got {
		total += a.EventsCount
	}
	if total != int64(h.total) {
		t.Errorf("sum of events_count = %d, want %d (each event exactly once)", total, h.total)
	}
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("account %s:\n got %+v\nwant %+v", want[i].ID, got[i], want[i])
		}
	}
	// The API shows the same rows (without the fold's private part).
	api := allAccounts(t, r)
	for i := range api {
		want[i].unreadable = nil
		if !reflect.DeepEqual(api[i], want[i]) {
			t.Fatalf("API account %s:\n got %+v\nwant %+v", want[i].ID, api[i], want[i])
		}
	}
}

// storedAccounts reads every row of the live table as stored, including
// the fold's private part (the unreadable events' ranks).
func storedAccounts(t *testing.T, r *Runner) []AccountStatus {
	t.Helper()
	c, err := readCatalog(context.Background(), r.rdb, AccountStatusName)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := r.rdb.Query(`SELECT id, state, status, institution_name, livemode FROM ` + c.LiveTable + ` ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []AccountStatus
	for rows.Next() {
		var (
			id   string
			b    []byte
			cols rowColumns
		)
		if err := rows.Scan(&id, &b, &cols.status, &cols.institution, &cols.livemode); err != nil {
			t.Fatal(err)
		}
		s, err := decodeState(id, b)
		if err != nil {
			t.Fatal(err)
		}
		// The filtered and indexed columns must follow the state (the
		// live runner writes only state when it thinks they did not change).
		if want := columnsOf(s); cols != want {
			t.Errorf("account %s: row columns %+v, state says %+v", id, cols, want)
		}
		out = append(out, *s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRunnerRestartExactlyOnce(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"defaults", Options{}},
		{"each delivery at once, no cache", Options{BatchWindow: -1, CacheAccounts: -1}},
		{"small batches, cache evicting", Options{BatchWindow: time.Millisecond, BatchMax: 50, CacheAccounts: 7}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			st := openStore(t, dir)
			h := genHistory(t, uint64(1+i), 2000, 200)
			appendHistory(t, st, h)

			r := openRunner(t, dir, st, tt.opts)
			stop := startRunner(t, r)
			waitFor(t, "some progress", func() bool {
				sts, err := r.Status(context.Background())
				return err == nil && sts[0].Checkpoint > 0
			})
			stop()
			sts, _ := r.Status(context.Background())
			t.Logf("stopped at checkpoint %d of %d", sts[0].Checkpoint, sts[0].Head)
			r.Close()

			r2 := openRunner(t, dir, st, tt.opts)
			startRunner(t, r2)
			waitCaughtUp(t, r2)
			checkExact(t, r2, st, h)
		})
	}
}

// TestLiveCacheAfterRebuildElsewhere: a rebuild by another Runner on the
// same file (another process) swaps in a table that holds less than the
// live runner's cache (a filtered rebuild) at the very checkpoint the live
// runner is at; the live runner must continue from the new table's rows,
// not from its cached states.
func TestLiveCacheAfterRebuildElsewhere(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	h := genHistory(t, 9, 400, 40)
	first, second := &history{perAccount: map[string][]store.Event{}, accounts: h.accounts},
		&history{perAccount: map[string][]store.Event{}, accounts: h.accounts}
	for id, evs := range h.perAccount {
		first.perAccount[id], second.perAccount[id] = evs[:len(evs)/2], evs[len(evs)/2:]
	}
	live := openRunner(t, dir, st, Options{BatchWindow: 5 * time.Millisecond})
	startRunner(t, live)
	appendHistory(t, st, first)
	waitCaughtUp(t, live)

	kept := h.accounts[:10]
	var streams []string
	for _, id := range kept {
		streams = append(streams, fc.AccountStream(id))
	}
	other := openRunner(t, dir, st, Options{})
	if err := other.Rebuild(context.Background(), AccountStatusName, store.Filter{Streams: streams}, nil); err != nil {
		t.Fatal(err)
	}
	rebuilt, err := st.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	appendHistory(t, st, second)
	waitCaughtUp(t, live)

	var want []AccountStatus
	for _, id := range h.accounts {
		evs, err := st.ReadStream(context.Background(), fc.AccountStream(id), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(kept, id) { // the rebuild dropped what came before it
			evs = slices.DeleteFunc(evs, func(ev store.RecordedEvent) bool { return ev.Position <= rebuilt })
		}
		s, err := FoldAccount(evs)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, *s)
	}
	slices.SortFunc(want, func(a, b AccountStatus) int { return strings.Compare(a.ID, b.ID) })
	got := storedAccounts(t, live)
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("account %s:\n got %+v\nwant %+v", want[i].ID, got[i], want[i])
		}
	}
}

// TestRunnerCrashExactlyOnce kills a child process (this test binary)
// with SIGKILL while it holds a batch transaction open, after it committed
// two batches, then restarts the runner: every event is counted exactly
// once. No timing is assumed: the child applies each delivered page in its
// own transaction, parks in its third one before COMMIT and only then tells
// the parent (over a pipe) to kill it.
func TestRunnerCrashExactlyOnce(t *testing.T) {
	if dir := os.Getenv("FCAUDIT_PROJECTIONS_CRASH_CHILD"); dir != "" {
		crashChild(dir)
		return
	}
	dir := t.TempDir()
	st := openStore(t, dir)
	h := genHistory(t, 2, 6000, 500)
	appendHistory(t, st, h)
	ro := openRunner(t, dir, st, Options{}) // creates the file; read after the kill

	parked, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer parked.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRunnerCrashExactlyOnce$")
	cmd.Env = append(os.Environ(), "FCAUDIT_PROJECTIONS_CRASH_CHILD="+dir)
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = []*os.File{w} // the child's fd 3
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close() // the child holds the only write end: EOF if it dies first
	var b [1]byte
	if _, err := parked.Read(b[:]); err != nil {
		_ = cmd.Process.Kill()
		t.Fatalf("the child exited before parking in its third batch: %v (wait: %v)", err, cmd.Wait())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	sts, err := ro.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sts[0].Checkpoint == 0 || sts[0].Checkpoint >= sts[0].Head {
		t.Fatalf("killed at checkpoint %d of %d; want 0 < checkpoint < head, or the test proves nothing", sts[0].Checkpoint, sts[0].Head)
	}
	t.Logf("killed at checkpoint %d of %d", sts[0].Checkpoint, sts[0].Head)

	startRunner(t, ro)
	waitCaughtUp(t, ro)
	checkExact(t, ro, st, h)
}

// crashChild runs the projections one delivered page per transaction
// (BatchWindow < 0), commits two of them, and parks inside the third, its
// writes pending, after writing a byte to fd 3; the parent kills it there.
func crashChild(dir string) {
	st, err := sqlite.Open(filepath.Join(dir, sqlite.FileName), sqlite.Options{ReadOnly: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
	parked := os.NewFile(3, "parked")
	var commits atomic.Int32
	r, err := Open(filepath.Join(dir, FileName), st, Options{BatchWindow: -1, beforeCommit: func() {
		if commits.Add(1) >= 3 {
			if _, err := parked.Write([]byte{1}); err != nil {
				fmt.Fprintln(os.Stderr, "child:", err)
				os.Exit(3)
			}
			select {}
		}
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
	_ = r.Run(context.Background())
	os.Exit(4) // never reached: the parent kills us
}

func TestRebuildEqualsLive(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	h := genHistory(t, 3, 3000, 300)
	appendHistory(t, st, h)

	r := openRunner(t, dir, st, Options{})
	startRunner(t, r)
	waitCaughtUp(t, r)
	checkExact(t, r, st, h)

	// Rebuild while the runner runs (in this process; a CLI rebuild would
	// use another handle on the same file), with more events arriving.
	more := genHistory(t, 4, 600, 60)
	done := make(chan struct{})
	go func() {
		defer close(done)
		appendHistory(t, st, more)
	}()
	var calls int
	if err := r.Rebuild(context.Background(), AccountStatusName, store.Filter{}, func(int) { calls++ }); err != nil {
		t.Fatal(err)
	}
	<-done
	if calls == 0 {
		t.Error("progress never called")
	}
	sts, err := r.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sts[0].Generation != 2 || sts[0].Table == tableName(AccountStatusName, 1) || sts[0].Rebuilding != "" {
		t.Errorf("after rebuild: %+v; want generation 2 in a new table", sts[0])
	}
	waitCaughtUp(t, r)
	all := &history{accounts: append(append([]string(nil), h.accounts...), more.accounts...), total: h.total + more.total}
	checkExact(t, r, st, all)

	// And a rebuild on a quiet log gives exactly the live rows.
	if err := r.Rebuild(context.Background(), AccountStatusName, store.Filter{}, nil); err != nil {
		t.Fatal(err)
	}
	rebuilt := allAccounts(t, r)
	checkExact(t, r, st, all)
	if len(rebuilt) != len(all.accounts) {
		t.Errorf("rebuilt %d rows, want %d", len(rebuilt), len(all.accounts))
	}
	var tables int
	if err := r.rdb.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'account_status_%'`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 1 {
		t.Errorf("%d account_status tables left, want 1 (old ones dropped)", tables)
	}
}

func TestRebuildFilteredAndErrors(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	h := genHistory(t, 5, 300, 30)
	appendHistory(t, st, h)
	r := openRunner(t, dir, st, Options{})

	one := h.accounts[7]
	if err := r.Rebuild(context.Background(), AccountStatusName, store.Filter{Streams: []string{fc.AccountStream(one)}}, nil); err != nil {
		t.Fatal(err)
	}
	got := allAccounts(t, r)
	if len(got) != 1 || got[0].ID != one || got[0].EventsCount != int64(len(h.perAccount[one])) {
		t.Errorf("filtered rebuild: %d rows %+v", len(got), got)
	}
	if err := r.Rebuild(context.Background(), "nope", store.Filter{}, nil); !errors.Is(err, ErrUnknownProjection) {
		t.Errorf("unknown name: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Rebuild(ctx, AccountStatusName, store.Filter{}, nil); err == nil {
		t.Error("cancelled rebuild: want error")
	}
	if got2 := allAccounts(t, r); !reflect.DeepEqual(got2, got) {
		t.Error("a failed rebuild changed the live table")
	}
	sts, _ := r.Status(context.Background())
	if sts[0].Rebuilding != "" {
		t.Errorf("failed rebuild left its table registered: %+v", sts[0])
	}
}

// TestRebuildUnreadableWinners: accounts whose best-ranked events have
// unreadable bodies (the rebuild folds them again per event), with and
// without the store's EventByID, with the cache flushed and reloaded
// mid-rebuild: rebuild, live and FoldAccount agree.
func TestRebuildUnreadableWinners(t *testing.T) {
	tests := []struct {
		name     string
		noByID   bool
		cacheMax int
	}{
		{"EventByID, one pass in memory", false, 0},
		{"positional reads, cache flushed every 37 accounts", true, 37},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			st := openStore(t, dir)
			h := genHistory(t, uint64(10+i), 1000, 100)
			unreadable := []byte(`{"data":{"object":"not an account"}}`)
			corrupted := 0
			for a, id := range h.accounts {
				evs := h.perAccount[id]
				switch {
				case a%11 == 0 && len(evs) > 2: // the last two: the best-ranked one is unreadable
					evs[len(evs)-1].Data, evs[len(evs)-2].Data = unreadable, unreadable
					corrupted += 2
				case a%7 == 0:
					evs[len(evs)-1].Data = unreadable
					corrupted++
				case a%5 == 0:
					evs[len(evs)/2].Data = unreadable
					corrupted++
				}
			}
			appendHistory(t, st, h)
			var log Log = st
			if tt.noByID {
				log = struct{ Log }{st}
			}
			if _, ok := log.(eventByID); ok == tt.noByID {
				t.Fatalf("log has EventByID: %v, want %v", ok, !tt.noByID)
			}
			r := openRunner(t, dir, log, Options{rebuildCacheMax: tt.cacheMax})
			startRunner(t, r)
			waitCaughtUp(t, r)
			checkExact(t, r, st, h)
			var undecodable int64
			for _, a := range storedAccounts(t, r) {
				undecodable += a.UndecodableEvents
			}
			if undecodable == 0 || undecodable > int64(corrupted) {
				t.Fatalf("undecodable_events total %d; want 1..%d", undecodable, corrupted)
			}

			if err := r.Rebuild(context.Background(), AccountStatusName, store.Filter{}, nil); err != nil {
				t.Fatal(err)
			}
			checkExact(t, r, st, h)
			// A filtered rebuild folds the selected events only.
			filter := store.Filter{Types: []string{"*.refreshed_*", "*.created"}}
			if err := r.Rebuild(context.Background(), AccountStatusName, filter, nil); err != nil {
				t.Fatal(err)
			}
			got := storedAccounts(t, r)
			for i := range got {
				evs, err := st.ReadStream(context.Background(), fc.AccountStream(got[i].ID), 0, 0)
				if err != nil {
					t.Fatal(err)
				}
				kept := evs[:0]
				for _, ev := range evs {
					if filter.Match(&ev) {
						kept = append(kept, ev)
					}
				}
				want, err := FoldAccount(kept)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(&got[i], want) {
					t.Fatalf("filtered rebuild, account %s:\n got %+v\nwant %+v", got[i].ID, got[i], *want)
				}
			}
		})
	}
}

// TestRebuildSwapWhileLiveAhead: the live runner applies events the
// rebuild has not folded yet and then idles (nothing more arrives). The
// swap must not put a table with an older checkpoint under it: the rebuild
// catches up first, and the live table ends exact.
func TestRebuildSwapWhileLiveAhead(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	h := genHistory(t, 20, 600, 60)
	appendHistory(t, st, h)
	more := genHistory(t, 21, 120, 12)
	var r *Runner
	attempts := 0
	r = openRunner(t, dir, st, Options{beforeSwap: func() {
		attempts++
		if attempts == 1 {
			appendHistory(t, st, more)
			waitCaughtUp(t, r)
		}
	}})
	startRunner(t, r)
	waitCaughtUp(t, r)
	if err := r.Rebuild(context.Background(), AccountStatusName, store.Filter{}, nil); err != nil {
		t.Fatal(err)
	}
	if attempts < 2 {
		t.Fatalf("rebuild swapped at the first attempt (%d): the live table was not ahead, the test proves nothing", attempts)
	}
	st0 := waitCaughtUp(t, r)
	if st0.Generation != 2 {
		t.Fatalf("generation %d after one rebuild", st0.Generation)
	}
	all := &history{accounts: append(append([]string(nil), h.accounts...), more.accounts...), total: h.total + more.total}
	checkExact(t, r, st, all)
}

// TestNextWindow: the live window stretches to MaxBatchWindow after a
// window of deliveries faster than HeavyRate, keeps that length while the
// rate stays above a quarter of it, and returns to BatchWindow below.
func TestNextWindow(t *testing.T) {
	r := &Runner{opts: Options{BatchWindow: 200 * time.Millisecond, MaxBatchWindow: time.Second}}
	const ms = time.Millisecond
	for _, tt := range []struct {
		win  time.Duration
		n    int
		want time.Duration
	}{
		{200 * ms, 0, 200 * ms},
		{200 * ms, 999, 200 * ms},     // 4,995/s: not heavy
		{200 * ms, 1000, time.Second}, // 5,000/s
		{200 * ms, 10_000, time.Second},
		{time.Second, 5000, time.Second},
		{time.Second, 1250, time.Second}, // a quarter of HeavyRate: stays
		{time.Second, 1249, 200 * ms},
		{time.Second, 1, 200 * ms},
		{-1, 1_000_000, -1}, // no window: each delivery at once
	} {
		if got := r.nextWindow(tt.win, tt.n); got != tt.want {
			t.Errorf("nextWindow(%v, %d) = %v, want %v", tt.win, tt.n, got, tt.want)
		}
	}
}

// TestPlainVFSSwitchesWriteCombiningOff: Options.PlainVFS keeps the read
// models' writes off the write-combining VFS (the store here writes through
// the default VFS too, so every counted write is the runner's), and the
// default sends them through it; both fold exactly.
func TestPlainVFSSwitchesWriteCombiningOff(t *testing.T) {
	for _, plain := range []bool{true, false} {
		dir := t.TempDir()
		st, err := sqlite.Open(filepath.Join(dir, sqlite.FileName), sqlite.Options{PollInterval: 20 * time.Millisecond, PlainVFS: true})
		if err != nil {
			t.Fatal(err)
		}
		h := genHistory(t, 21, 300, 30)
		appendHistory(t, st, h)
		before, _ := sqlitewc.Counts()
		r := openRunner(t, dir, st, Options{PlainVFS: plain})
		stop := startRunner(t, r)
		waitCaughtUp(t, r)
		checkExact(t, r, st, h)
		stop()
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		after, _ := sqlitewc.Counts()
		if n := after - before; plain && n != 0 {
			t.Errorf("PlainVFS: %d writes went through the write-combining VFS, want 0", n)
		} else if !plain && n == 0 {
			t.Error("default options: no write went through the write-combining VFS")
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
