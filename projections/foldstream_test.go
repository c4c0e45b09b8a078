package projections

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/store"
)

// pagedLog is a Log whose ReadStream fails when asked for more than one
// fold page at once (or for "all", limit <= 0), and records the most events
// it handed out in one call: the most a fold can hold.
type pagedLog struct {
	Log
	mu      sync.Mutex
	maxPage int
	calls   int
}

func (p *pagedLog) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]store.RecordedEvent, error) {
	if limit <= 0 || limit > FoldPageSize {
		return nil, fmt.Errorf("pagedLog: ReadStream(%s, %d, limit %d): more than a page (%d) at once", stream, from, limit, FoldPageSize)
	}
	evs, err := p.Log.ReadStream(ctx, stream, from, limit)
	p.mu.Lock()
	p.maxPage = max(p.maxPage, len(evs))
	p.calls++
	p.mu.Unlock()
	return evs, err
}

// longStream appends n events to one account stream (created one second
// apart, status alternating) and returns them as recorded.
func longStream(t *testing.T, st store.Store, account string, n int) []store.RecordedEvent {
	t.Helper()
	base := fixtureEvents(t)
	ctx := context.Background()
	evs := make([]store.Event, 0, n)
	for i := range n {
		b := base[i%len(base)].Event
		b.ID = fmt.Sprintf("evt_long%06d", i)
		b.Created = 1705312800 + int64(i)
		b.ReceivedAt = time.Unix(b.Created+60, 0).UTC()
		evs = append(evs, b)
	}
	for i := 0; i < n; i += 500 {
		if _, err := st.Append(ctx, fc.AccountStream(account), store.AnyRevision, evs[i:min(i+500, n)]...); err != nil {
			t.Fatal(err)
		}
	}
	out, err := st.ReadStream(ctx, fc.AccountStream(account), 0, 0)
	if err != nil || len(out) != n {
		t.Fatalf("read back: %d events, %v", len(out), err)
	}
	return out
}

// as_of/known_at loaded the whole stream into memory. The
// fold reads it one page at a time, and the answer is the same as folding
// the whole stream at once.
func TestAccountAtFoldsInBoundedMemory(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	const n = 3*FoldPageSize + 17
	const acct = "fca_long"
	all := longStream(t, st, acct, n)
	log := &pagedLog{Log: st}
	r := openRunner(t, dir, log, Options{})
	for _, tt := range []struct {
		name string
		at   AsOf
		keep func(*store.RecordedEvent) bool
	}{
		{"no bound", AsOf{}, func(*store.RecordedEvent) bool { return true }},
		{"as_of mid-stream", AsOf{Created: all[2*FoldPageSize+3].Created}, func(e *store.RecordedEvent) bool { return e.Created <= all[2*FoldPageSize+3].Created }},
		{"known_at mid-stream", AsOf{Received: all[FoldPageSize+1].ReceivedAt}, func(e *store.RecordedEvent) bool { return !e.ReceivedAt.After(all[FoldPageSize+1].ReceivedAt) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.AccountAt(context.Background(), acct, tt.at)
			if err != nil {
				t.Fatal(err)
			}
			var kept []store.RecordedEvent
			for i := range all {
				if tt.keep(&all[i]) {
					kept = append(kept, all[i])
				}
			}
			want, err := FoldAccount(kept)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("paged fold differs from the whole-stream fold:\n got %+v\nwant %+v", got, want)
			}
		})
	}
	if log.maxPage > FoldPageSize || log.calls < n/FoldPageSize {
		t.Errorf("held up to %d events at once in %d reads; want at most %d per read", log.maxPage, log.calls, FoldPageSize)
	}
	// The live row is caught up the same way.
	if _, err := r.Account(context.Background(), acct); err != nil {
		t.Fatal(err)
	}
}

// known_at=0001-01-01T00:00:00Z is a time at which nothing
// was known (it was treated as "no bound"), and as_of at or before the Unix
// epoch selects nothing either. The far end selects everything.
func TestAsOfEdges(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	for _, e := range fixtureEvents(t) {
		if _, err := st.Append(context.Background(), e.Stream, store.AnyRevision, e.Event); err != nil {
			t.Fatal(err)
		}
	}
	r := openRunner(t, dir, st, Options{})
	maxTime := time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	for _, tt := range []struct {
		name  string
		at    AsOf
		count int64 // 0: ErrAccountNotFound
	}{
		{"known_at zero time", KnownAt(time.Time{}), 0},
		{"known_at Unix epoch", KnownAt(time.Unix(0, 0)), 0},
		{"known_at max", KnownAt(maxTime), 7},
		{"as_of zero time", AsOfCreated(time.Time{}), 0},
		{"as_of Unix epoch", AsOfCreated(time.Unix(0, 0)), 0},
		{"as_of one second after the epoch", AsOfCreated(time.Unix(1, 0)), 0},
		{"as_of max", AsOfCreated(maxTime), 7},
	} {
		s, err := r.AccountAt(context.Background(), fixtureAccount, tt.at)
		switch {
		case tt.count == 0 && !errors.Is(err, ErrAccountNotFound):
			t.Errorf("%s: %+v, %v; want ErrAccountNotFound", tt.name, s, err)
		case tt.count != 0 && (err != nil || s.EventsCount != tt.count):
			t.Errorf("%s: %+v, %v; want %d events", tt.name, s, err, tt.count)
		}
	}
}

// Read-your-writes: while the live projection has not
// applied an account's stored events, Account folds them onto the row, so
// a read after an acknowledged append reflects it. The live runner is held
// inside its batch transaction (beforeCommit), deterministically behind.
func TestAccountReadsItsWrites(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	evs := fixtureEvents(t)
	entered := make(chan struct{}, 16)
	release := make(chan struct{})
	var hold atomic.Bool
	var releaseOnce sync.Once
	r := openRunner(t, dir, st, Options{BatchWindow: -1, beforeCommit: func() {
		if !hold.Load() {
			return
		}
		entered <- struct{}{}
		<-release
	}})
	defer releaseOnce.Do(func() { close(release) })

	ctx := context.Background()
	// Nothing stored, nothing projected: 404.
	if _, err := r.Account(ctx, fixtureAccount); !errors.Is(err, ErrAccountNotFound) {
		t.Fatalf("before any event: %v", err)
	}
	// Not projected at all yet (the runner is not running): the stream
	// answers.
	if _, err := st.Append(ctx, evs[0].Stream, store.AnyRevision, evs[0].Event); err != nil {
		t.Fatal(err)
	}
	a, err := r.Account(ctx, fixtureAccount)
	if err != nil || a.EventsCount != 1 || a.Status != "active" {
		t.Fatalf("first event stored, not projected: %+v, %v", a, err)
	}
	// The runner applies the first event, then is held in the next
	// batch's transaction while later events are stored.
	startRunner(t, r)
	waitCaughtUp(t, r)
	hold.Store(true)
	var more []store.Event
	for _, e := range evs[1:5] {
		more = append(more, e.Event)
	}
	if _, err := st.Append(ctx, evs[0].Stream, store.AnyRevision, more...); err != nil {
		t.Fatal(err)
	}
	<-entered // the live runner is inside its transaction, not committed
	a, err = r.Account(ctx, fixtureAccount)
	if err != nil || a.EventsCount != 5 || a.Status != "inactive" || a.LastEvent.ID != evs[4].ID {
		t.Fatalf("events 2-5 stored, projection held: %+v, %v", a, err)
	}
	want, _ := FoldAccount(evs[:5])
	want.SnapshotPosition = a.SnapshotPosition
	if !reflect.DeepEqual(a, want) {
		t.Errorf("caught-up row differs from the fold:\n got %+v\nwant %+v", a, want)
	}
	hold.Store(false)
	releaseOnce.Do(func() { close(release) })
	waitCaughtUp(t, r)
	b, err := r.Account(ctx, fixtureAccount)
	if err != nil || !reflect.DeepEqual(a, b) {
		t.Errorf("after the projection caught up: %+v, %v; want the same answer %+v", b, err, a)
	}
}

// An up-to-date row costs Account one read of the stream that answers one
// event (the last one applied), not a second read to tell "nothing new"
// from "no such stream".
func TestAccountCurrentRowOneRead(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	evs := fixtureEvents(t)
	var batch []store.Event
	for _, e := range evs[:5] {
		batch = append(batch, e.Event)
	}
	ctx := context.Background()
	if _, err := st.Append(ctx, evs[0].Stream, store.AnyRevision, batch...); err != nil {
		t.Fatal(err)
	}
	log := &pagedLog{Log: st}
	r := openRunner(t, dir, log, Options{BatchWindow: -1})
	stop := startRunner(t, r)
	waitCaughtUp(t, r)
	stop()
	log.mu.Lock()
	log.calls, log.maxPage = 0, 0
	log.mu.Unlock()
	a, err := r.Account(ctx, fixtureAccount)
	if err != nil || a.EventsCount != 5 {
		t.Fatalf("Account: %+v, %v", a, err)
	}
	if log.calls != 1 || log.maxPage != 1 {
		t.Errorf("current row: %d stream reads, up to %d events each; want 1 read of 1 event", log.calls, log.maxPage)
	}
}
