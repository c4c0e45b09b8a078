package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/store"
)

const tailWait = 20 * time.Second

// tailEvent is a realistic event whose Provenance.VerifiedAt is in a
// non-UTC zone with a monotonic reading, which a read never returns: what
// the tail delivers must still equal what a read returns.
func tailEvent(id string, i int) store.Event {
	zone := time.FixedZone("X", 3600+i)
	e := store.Event{
		ID: id, Type: fc.TypeRefreshedBalance,
		Data:       fmt.Appendf(nil, `{"id":%q,"n":%d}`, id, i),
		ReceivedAt: time.Now().In(zone), Created: int64(1700000000 + i), Livemode: i%2 == 0,
		APIVersion: "2023-10-16", Source: store.SourceWebhook,
	}
	if i%3 != 0 {
		e.ConnectAccount = "acct_" + id
		e.Provenance = &store.Provenance{
			SignatureHeader: "t=1,v1=ab", SignedAt: int64(i), SecretFingerprint: "0011223344556677",
			VerifiedAt: time.Now().In(zone), Note: fmt.Sprint("n", i),
		}
	}
	return e
}

// recorder collects a subscription's deliveries and checks order as they
// arrive.
type recorder struct {
	mu   sync.Mutex
	got  []store.RecordedEvent
	err  error
	slow time.Duration // per call, to make the subscriber lag
	more chan struct{}
}

func newRecorder(slow time.Duration) *recorder {
	return &recorder{slow: slow, more: make(chan struct{}, 1)}
}

func (r *recorder) handle(_ context.Context, batch []store.RecordedEvent) error {
	time.Sleep(r.slow)
	r.mu.Lock()
	for i := range batch {
		if n := len(r.got); n > 0 && batch[i].Position <= r.got[n-1].Position && r.err == nil {
			r.err = fmt.Errorf("position %d delivered after %d", batch[i].Position, r.got[n-1].Position)
		}
		r.got = append(r.got, batch[i])
	}
	// Scribble over the batch: other subscribers and later reads must not
	// see it.
	for i := range batch {
		if len(batch[i].Data) > 0 {
			batch[i].Data[0] = 'X'
		}
		if batch[i].Provenance != nil {
			batch[i].Provenance.Note = "scribbled"
		}
	}
	r.mu.Unlock()
	select {
	case r.more <- struct{}{}:
	default:
	}
	return nil
}

// wait returns the deliveries once the last one is at or past head.
func (r *recorder) wait(t *testing.T, head store.Position, errc <-chan error) []store.RecordedEvent {
	t.Helper()
	deadline := time.After(tailWait)
	for {
		r.mu.Lock()
		n := len(r.got)
		done := n > 0 && r.got[n-1].Position >= head
		got := append([]store.RecordedEvent(nil), r.got...)
		r.mu.Unlock()
		if done {
			// Unmodified copies: handle scribbled on what it was given
			// only after copying the structs, so re-read the fields that
			// alias: Data and Provenance were modified in got's elements.
			return got
		}
		select {
		case <-r.more:
		case err := <-errc:
			t.Fatalf("subscription ended: %v", err)
		case <-deadline:
			t.Fatalf("subscription reached %d events, want up to position %d", n, head)
		}
	}
}

func subscribeT(t *testing.T, s *Store, after store.Position, f store.Filter, h store.Handler) <-chan error {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Subscribe(ctx, after, f, h) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-errc:
		case <-time.After(tailWait):
			t.Errorf("Subscribe did not return after cancel")
		}
	})
	return errc
}

func readAllT(t *testing.T, s *Store, f store.Filter) []store.RecordedEvent {
	t.Helper()
	var out []store.RecordedEvent
	var after store.Position
	for {
		page, err := s.ReadAll(context.Background(), store.ReadOptions{After: after, Limit: 1000, Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Position
	}
}

func (s *Store) tailServed() int {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	return s.tail.served
}

// TestTailDeliversWhatReadsReturn: a caught-up subscriber gets this
// process's commits from the tail, and every delivered event equals, field
// for field, what ReadAll returns for it — even though the handler modifies
// the batches it is given.
func TestTailDeliversWhatReadsReturn(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), FileName), Options{PollInterval: time.Hour})
	ctx := context.Background()
	if _, err := s.Append(ctx, "fcaccount-a", store.AnyRevision, tailEvent("evt_before", 0)); err != nil {
		t.Fatal(err)
	}
	// Two subscribers, so a modification by one would show in the other.
	recs := []*recorder{newRecorder(0), newRecorder(0)}
	var errcs []<-chan error
	for _, r := range recs {
		errcs = append(errcs, subscribeT(t, s, 0, store.Filter{}, r.handle))
		r.wait(t, 1, errcs[len(errcs)-1])
	}
	var head store.Position
	for i := 1; i <= 30; i++ {
		evs := []store.Event{tailEvent(fmt.Sprintf("evt_%d", i), i)}
		if i%5 == 0 { // multi-event appends, with a duplicate inside
			evs = append(evs, tailEvent(fmt.Sprintf("evt_%d_b", i), i+100), evs[0])
		}
		res, err := s.Append(ctx, fmt.Sprintf("fcaccount-%d", i%4), store.AnyRevision, evs...)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 3 && (!res[2].Duplicate || res[2].Position != res[0].Position) {
			t.Fatalf("duplicate inside one append: %+v", res)
		}
		for _, a := range res {
			head = max(head, a.Position)
		}
	}
	want := readAllT(t, s, store.Filter{})
	if len(want) != int(head) {
		t.Fatalf("log holds %d events, head %d", len(want), head)
	}
	for k, r := range recs {
		got := r.wait(t, head, errcs[k])
		if r.err != nil {
			t.Fatal(r.err)
		}
		if len(got) != len(want) {
			t.Fatalf("subscriber %d got %d events, want %d", k, len(got), len(want))
		}
		for i := range got {
			// handle scribbled on Data[0] and Provenance.Note after
			// recording; undo that the same way on a fresh read to compare.
			w := want[i]
			w.Data = append([]byte{'X'}, w.Data[1:]...)
			if w.Provenance != nil {
				p := *w.Provenance
				p.Note = "scribbled"
				w.Provenance = &p
			}
			if !reflect.DeepEqual(got[i], w) {
				t.Errorf("subscriber %d event %d:\n got %+v\nwant %+v", k, i, got[i], w)
			}
		}
	}
	if s.tailServed() == 0 {
		t.Error("no event came from the tail")
	}
	// Scribbling on deliveries left the log and later reads untouched.
	again := readAllT(t, s, store.Filter{})
	for i := range again {
		if again[i].Data[0] != '{' {
			t.Fatalf("event %s: stored body changed to %q", again[i].ID, again[i].Data)
		}
	}
}

// TestTailNoLossNoDuplicates races appends from this process and from a
// second handle on the same file (another process's commits) against
// subscribers that start at different points, filter, and lag behind a tiny
// tail: every subscriber must get exactly the matching events of the log,
// once each, in order, equal to what a read returns.
func TestTailNoLossNoDuplicates(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openTest(t, path, Options{PollInterval: 20 * time.Millisecond})
	s.tailMax = 2 << 10 // a few commits: lagging subscribers fall back to the file
	other := openTest(t, path, Options{})
	ctx := context.Background()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		errs   []error
		starts []store.Position
	)
	appendN := func(st *Store, g, n int) {
		defer wg.Done()
		for i := range n {
			id := fmt.Sprintf("evt_%p_%d_%d", st, g, i)
			if _, err := st.Append(ctx, fmt.Sprintf("fcaccount-%d", (g+i)%7), store.AnyRevision, tailEvent(id, i)); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
		}
	}
	type sub struct {
		r    *recorder
		f    store.Filter
		errc <-chan error
	}
	var subs []sub
	filters := []store.Filter{{}, {StreamPrefix: "fcaccount-3"}, {Streams: []string{"fcaccount-1", "fcaccount-5"}}}
	startSub := func(k int) {
		h, err := s.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		after := h / 2
		starts = append(starts, after)
		r := newRecorder(time.Duration(k%3) * 2 * time.Millisecond)
		f := filters[k%len(filters)]
		subs = append(subs, sub{r: r, f: f, errc: subscribeT(t, s, after, f, r.handle)})
	}
	for g := range 8 {
		wg.Add(1)
		go appendN(s, g, 150)
	}
	for g := range 2 {
		wg.Add(1)
		go appendN(other, 100+g, 100)
	}
	for k := range 6 {
		startSub(k)
		time.Sleep(10 * time.Millisecond) // spread the starts over the run (not an assertion)
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	head, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	all := readAllT(t, s, store.Filter{})
	if len(all) != 8*150+2*100 || all[len(all)-1].Position != head {
		t.Fatalf("log holds %d events up to %d", len(all), head)
	}
	for k, sb := range subs {
		var want []store.RecordedEvent
		for _, e := range all {
			if e.Position > starts[k] && sb.f.Match(&e) {
				want = append(want, e)
			}
		}
		lastWanted := want[len(want)-1].Position
		got := sb.r.wait(t, lastWanted, sb.errc)
		if sb.r.err != nil {
			t.Fatalf("subscriber %d: %v", k, sb.r.err)
		}
		if len(got) != len(want) {
			t.Fatalf("subscriber %d (after %d, %+v) got %d events, want %d", k, starts[k], sb.f, len(got), len(want))
		}
		for i := range got {
			g, w := got[i], want[i]
			g.Data, w.Data = nil, nil // scribbled by the handler
			if g.Provenance != nil && w.Provenance != nil {
				gp, wp := *g.Provenance, *w.Provenance
				gp.Note, wp.Note = "", ""
				g.Provenance, w.Provenance = &gp, &wp
			}
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("subscriber %d event %d:\n got %+v\nwant %+v", k, i, g, w)
			}
		}
	}
	if s.tailServed() == 0 {
		t.Error("no event came from the tail")
	}
}
