package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/store"
)

// Backend describes a store implementation under test.
type Backend struct {
	// New returns a fresh, empty store; the backend registers its own cleanup with t.Cleanup.
	New func(t testing.TB) store.Store
	// Second, if non-nil, opens another independent handle onto the same log as s
	// (as another process would); used for cross-handle tests.
	Second   func(t testing.TB, s store.Store) store.Store
	Features Features
}

// Features lists genuine backend differences, so tests never branch on backend names.
type Features struct {
	// ContiguousPositions: positions are 1, 2, 3, … (SQLite) rather than increasing byte offsets (EventStoreDB).
	ContiguousPositions bool
}

// waitTimeout bounds every wait for something asynchronous (a subscription
// delivering, a cancelled call returning). It is a failure deadline, never an
// assertion about speed.
const waitTimeout = 20 * time.Second

var seq atomic.Int64

// uniq returns a prefix unique to this test run and call, so tests never
// collide even on a shared, non-empty server log.
func uniq(t testing.TB) string {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return fmt.Sprintf("%s-%x-%d", name, time.Now().UnixNano(), seq.Add(1))
}

// baseTime is a fixed receipt time with sub-microsecond noise, so tests see
// that backends keep (only) microseconds.
var baseTime = time.Date(2025, 3, 14, 15, 9, 26, 535897_932, time.UTC)

// newEvent returns a valid event with id and a body that mentions it.
func newEvent(id string, i int) store.Event {
	return store.Event{
		ID:         id,
		Type:       fc.TypeRefreshedBalance,
		Data:       []byte(fmt.Sprintf(`{"id":%q,"object":"event","n":%d,"data":{"object":{"id":"fca_x"}}}`, id, i)),
		ReceivedAt: baseTime.Add(time.Duration(i) * time.Second),
		Created:    1700000000 + int64(i),
		Livemode:   i%2 == 0,
		APIVersion: "2023-10-16",
		Source:     store.SourceWebhook,
	}
}

func events(prefix string, n int) []store.Event {
	out := make([]store.Event, n)
	for i := range out {
		out[i] = newEvent(fmt.Sprintf("evt_%s_%d", prefix, i), i)
	}
	return out
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func mustAppend(t testing.TB, s store.Store, stream string, exp store.ExpectedRevision, evs ...store.Event) []store.Appended {
	t.Helper()
	res, err := s.Append(ctxT(t), stream, exp, evs...)
	if err != nil {
		t.Fatalf("append %d events to %s (expected %s): %v", len(evs), stream, exp, err)
	}
	if len(res) != len(evs) {
		t.Fatalf("append to %s: %d results for %d events", stream, len(res), len(evs))
	}
	return res
}

// sameEvent checks every field of the stored event against what was appended.
func sameEvent(t testing.TB, got store.RecordedEvent, want store.Event, withData bool) {
	t.Helper()
	if got.ID != want.ID || got.Type != want.Type || got.Created != want.Created ||
		got.Livemode != want.Livemode || got.APIVersion != want.APIVersion ||
		got.ConnectAccount != want.ConnectAccount || got.Source != want.Source {
		t.Errorf("event %s metadata: got %+v, want %+v", want.ID, got.Event, want)
	}
	if wantRecv := want.ReceivedAt.Truncate(time.Microsecond); !got.ReceivedAt.Equal(wantRecv) {
		t.Errorf("event %s ReceivedAt = %s, want %s (microseconds kept)", want.ID, got.ReceivedAt.Format(time.RFC3339Nano), wantRecv.Format(time.RFC3339Nano))
	}
	if withData && !bytes.Equal(got.Data, want.Data) {
		t.Errorf("event %s Data = %q, want %q", want.ID, got.Data, want.Data)
	}
	if !withData && got.Data != nil {
		t.Errorf("event %s: Data = %q, want nil (WithoutData)", want.ID, got.Data)
	}
	if got.BodySHA256 != sha256.Sum256(want.Data) {
		t.Errorf("event %s BodySHA256 is not sha256(Data)", want.ID)
	}
	switch {
	case (got.Provenance == nil) != (want.Provenance == nil):
		t.Errorf("event %s Provenance = %+v, want %+v", want.ID, got.Provenance, want.Provenance)
	case want.Provenance != nil:
		g, w := *got.Provenance, *want.Provenance
		if !g.VerifiedAt.Equal(w.VerifiedAt) {
			t.Errorf("event %s Provenance.VerifiedAt = %s, want %s", want.ID, g.VerifiedAt, w.VerifiedAt)
		}
		g.VerifiedAt, w.VerifiedAt = time.Time{}, time.Time{}
		if g != w {
			t.Errorf("event %s Provenance = %+v, want %+v", want.ID, g, w)
		}
	}
}

// checkChain recomputes a whole stream's hash chain.
func checkChain(t testing.TB, s store.Store, stream string) []store.RecordedEvent {
	t.Helper()
	evs, err := s.ReadStream(ctxT(t), stream, 0, 0)
	if err != nil {
		t.Fatalf("read stream %s: %v", stream, err)
	}
	prev := store.ChainSeed(stream)
	for i, e := range evs {
		if e.Revision != uint64(i) {
			t.Fatalf("stream %s: event %d has revision %d", stream, i, e.Revision)
		}
		if e.BodySHA256 != sha256.Sum256(e.Data) {
			t.Fatalf("stream %s revision %d: BodySHA256 is not sha256(Data)", stream, i)
		}
		prev = store.ChainHash(prev, e.BodySHA256, e.ID, e.ReceivedAt)
		if e.ChainHash != prev {
			t.Fatalf("stream %s revision %d: chain hash %x, recomputed %x", stream, i, e.ChainHash, prev)
		}
	}
	return evs
}

func ids(evs []store.RecordedEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func eqIDs(t testing.TB, what string, got []store.RecordedEvent, want ...string) {
	t.Helper()
	g := ids(got)
	if strings.Join(g, ",") != strings.Join(want, ",") {
		t.Errorf("%s: got ids %v, want %v", what, g, want)
	}
}

// Run runs the contract suite against b, one subtest per behaviour.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(*testing.T, Backend)
	}{
		{"RoundTrip", testRoundTrip},
		{"RevisionsAndPositions", testRevisionsAndPositions},
		{"ExpectedRevision", testExpectedRevision},
		{"Duplicates", testDuplicates},
		{"AtomicAppend", testAtomic},
		{"InvalidEvents", testInvalid},
		{"ReadStream", testReadStream},
		{"ReadAll", testReadAll},
		{"ReadAllFilter", testReadAllFilter},
		{"EventByID", testEventByID},
		{"Head", testHead},
		{"ChainHashes", testChain},
		{"ConcurrentAnyRevision", testConcurrentAny},
		{"ConcurrentExactRevision", testConcurrentExact},
		{"Subscribe", testSubscribe},
		{"SubscribeHandlerError", testSubscribeHandlerError},
		{"SubscribeCancel", testSubscribeCancel},
		{"SubscribeFilter", testSubscribeFilter},
		{"SecondHandle", testSecond},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, b) })
	}
}

func testRoundTrip(t *testing.T, b Backend) {
	s := b.New(t)
	p := uniq(t)
	stream := fc.AccountStream("fca_" + p)
	withProv := newEvent("evt_"+p+"_prov", 1)
	withProv.ConnectAccount = "acct_123"
	withProv.Source = store.SourceBackfill
	withProv.Provenance = &store.Provenance{
		SignatureHeader:   "t=1,v1=abc",
		SignedAt:          1700000001,
		SecretFingerprint: "0011223344556677",
		VerifiedAt:        time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC),
		Note:              "from events API",
	}
	plain := newEvent("evt_"+p+"_plain", 2)
	// Bytes a JSON re-encoder would change: key order, whitespace, escapes, non-UTF-8.
	plain.Data = []byte("{\"b\": 1,  \"a\":\"\\u00e9\xff\"}\n")
	plain.ReceivedAt = time.Date(2025, 6, 1, 0, 0, 0, 999_999_999, time.FixedZone("X", 3600))
	res := mustAppend(t, s, stream, store.NoStream, withProv, plain)
	for i, want := range []store.Event{withProv, plain} {
		if res[i].ID != want.ID || res[i].Stream != stream || res[i].Revision != uint64(i) || res[i].Duplicate {
			t.Errorf("result %d = %+v", i, res[i])
		}
		got, err := s.EventByID(ctxT(t), want.ID)
		if err != nil {
			t.Fatalf("EventByID %s: %v", want.ID, err)
		}
		sameEvent(t, got, want, true)
		if got.Stream != stream || got.Revision != uint64(i) || got.Position != res[i].Position {
			t.Errorf("%s coordinates: got %s/%d@%d, want %s/%d@%d", want.ID, got.Stream, got.Revision, got.Position, stream, i, res[i].Position)
		}
	}
	evs, err := s.ReadStream(ctxT(t), stream, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("ReadStream: %d events, want 2", len(evs))
	}
	sameEvent(t, evs[0], withProv, true)
	sameEvent(t, evs[1], plain, true)
	all, err := s.ReadAll(ctxT(t), store.ReadOptions{Filter: store.Filter{Streams: []string{stream}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("ReadAll: %d events, want 2", len(all))
	}
	sameEvent(t, all[0], withProv, true)
	sameEvent(t, all[1], plain, true)
	meta, err := s.ReadAll(ctxT(t), store.ReadOptions{Filter: store.Filter{Streams: []string{stream}}, WithoutData: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(meta) != 2 {
		t.Fatalf("ReadAll WithoutData: %d events, want 2", len(meta))
	}
	sameEvent(t, meta[0], withProv, false)
	sameEvent(t, meta[1], plain, false)
	if meta[1].ChainHash != all[1].ChainHash {
		t.Errorf("WithoutData changed the chain hash")
	}
}

func testRevisionsAndPositions(t *testing.T, b Backend) {
	s := b.New(t)
	p := uniq(t)
	a, c := fc.AccountStream("a"+p), fc.AccountStream("c"+p)
	var positions []store.Position
	for i := range 5 {
		for _, st := range []string{a, c} {
			res := mustAppend(t, s, st, store.AnyRevision, newEvent(fmt.Sprintf("evt_%s_%s_%d", p, st[10:11], i), i))
			if res[0].Revision != uint64(i) {
				t.Errorf("%s event %d: revision %d, want %d", st, i, res[0].Revision, i)
			}
			positions = append(positions, res[0].Position)
		}
	}
	res := mustAppend(t, s, a, store.Exact(4), events(p+"multi", 3)...)
	for i, r := range res {
		if r.Revision != uint64(5+i) {
			t.Errorf("multi-append event %d: revision %d, want %d", i, r.Revision, 5+i)
		}
		positions = append(positions, r.Position)
	}
	for i := 1; i < len(positions); i++ {
		if positions[i] <= positions[i-1] {
			t.Fatalf("positions not strictly increasing: %v", positions)
		}
		if b.Features.ContiguousPositions && positions[i] != positions[i-1]+1 {
			t.Fatalf("positions not contiguous: %v", positions)
		}
	}
	if positions[0] == 0 {
		t.Errorf("an event has position 0")
	}
	if b.Features.ContiguousPositions && positions[0] != 1 {
		t.Errorf("first position of a fresh store = %d, want 1", positions[0])
	}
	all, err := s.ReadAll(ctxT(t), store.ReadOptions{Filter: store.Filter{Streams: []string{a, c}}, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range all {
		if e.Position != positions[i] {
			t.Fatalf("ReadAll event %d at position %d, append reported %d", i, e.Position, positions[i])
		}
	}
}

func testExpectedRevision(t *testing.T, b Backend) {
	s := b.New(t)
	p := uniq(t)
	stream := fc.AccountStreamPrefix + p
	ctx := ctxT(t)
	wrong := func(exp store.ExpectedRevision, actual int64, id string) {
		t.Helper()
		_, err := s.Append(ctx, stream, exp, newEvent(id, 9))
		var we *store.WrongRevisionError
		if !errors.Is(err, store.ErrWrongExpectedRevision) || !errors.As(err, &we) {
			t.Fatalf("append expecting %s: err = %v, want WrongRevisionError", exp, err)
		}
		if we.Stream != stream || we.Expected != exp || we.Actual != actual {
			t.Errorf("WrongRevisionError = %+v, want stream %s expected %s actual %d", we, stream, exp, actual)
		}
		if _, err := s.EventByID(ctx, id); !errors.Is(err, store.ErrEventNotFound) {
			t.Errorf("rejected event %s was stored (EventByID err = %v)", id, err)
		}
	}
	wrong(store.Exact(0), -1, "evt_"+p+"_w0")
	mustAppend(t, s, stream, store.NoStream, newEvent("evt_"+p+"_0", 0))
	wrong(store.NoStream, 0, "evt_"+p+"_w1")
	wrong(store.Exact(1), 0, "evt_"+p+"_w2")
	mustAppend(t, s, stream, store.Exact(0), newEvent("evt_"+p+"_1", 1))
	res := mustAppend(t, s, stream, store.AnyRevision, newEvent("evt_"+p+"_2", 2))
	if res[0].Revision != 2 {
		t.Errorf("AnyRevision append: revision %d, want 2", res[0].Revision)
	}
	wrong(store.Exact(1), 2, "evt_"+p+"_w3")
	mustAppend(t, s, stream, store.Exact(2), newEvent("evt_"+p+"_3", 3))
	mustAppend(t, s, fc.AccountStream("other"+p), store.AnyRevision, newEvent("evt_"+p+"_other", 0))
	checkChain(t, s, stream)
}

func testDuplicates(t *testing.T, b Backend) {
	s := b.New(t)
	p := uniq(t)
	a, other := fc.AccountStream("a"+p), fc.AccountStream("b"+p)
	ctx := ctxT(t)
	orig := mustAppend(t, s, a, store.NoStream, events(p, 2)...)

	// Same stream, one duplicate among new events.
	evs := events(p, 3) // evt 0, 1 stored; 2 new
	res := mustAppend(t, s, a, store.Exact(1), evs...)
	for i := range 2 {
		if !res[i].Duplicate || res[i].Stream != a || res[i].Revision != orig[i].Revision || res[i].Position != orig[i].Position {
			t.Errorf("duplicate %d reported %+v, want original %+v", i, res[i], orig[i])
		}
	}
	if res[2].Duplicate || res[2].Revision != 2 {
		t.Errorf("new event reported %+v, want revision 2", res[2])
	}

	// Another stream: reported with the original stream, nothing appended there.
	res = mustAppend(t, s, other, store.NoStream, evs[0])
	if !res[0].Duplicate || res[0].Stream != a || res[0].Position != orig[0].Position {
		t.Errorf("cross-stream duplicate reported %+v, want original %+v", res[0], orig[0])
	}
	if _, err := s.ReadStream(ctx, other, 0, 0); !errors.Is(err, store.ErrStreamNotFound) {
		t.Errorf("ReadStream of stream that only got a duplicate: err = %v, want ErrStreamNotFound", err)
	}

	// All duplicates with a stale expected revision: idempotent success.
	res = mustAppend(t, s, a, store.NoStream, evs...)
	for i := range res {
		if !res[i].Duplicate || res[i].Revision != uint64(i) {
			t.Errorf("idempotent re-append result %d = %+v", i, res[i])
		}
	}
	res = mustAppend(t, s, a, store.Exact(0), evs[2])
	if !res[0].Duplicate || res[0].Revision != 2 {
		t.Errorf("idempotent re-append with stale exact revision = %+v", res[0])
	}

	// Within one call: the second copy reports the first one's coordinates.
	dup := newEvent("evt_"+p+"_twice", 7)
	dup2 := dup
	dup2.Data = []byte(`{"other":"body"}`)
	res = mustAppend(t, s, a, store.Exact(2), dup, newEvent("evt_"+p+"_after", 8), dup2)
	if res[0].Duplicate || res[0].Revision != 3 || res[1].Revision != 4 || res[1].Duplicate {
		t.Errorf("in-call duplicate: results %+v", res)
	}
	if !res[2].Duplicate || res[2].Revision != 3 || res[2].Position != res[0].Position || res[2].Stream != a {
		t.Errorf("in-call duplicate reported %+v, want the coordinates of %+v", res[2], res[0])
	}
	got, err := s.EventByID(ctx, dup.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Data, dup.Data) {
		t.Errorf("in-call duplicate replaced the first body: %q", got.Data)
	}
	stored := checkChain(t, s, a)
	if len(stored) != 5 {
		t.Errorf("stream has %d events, want 5", len(stored))
	}
}

func testAtomic(t *testing.T, b Backend) {
	s := b.New(t)
	p := uniq(t)
	stream := fc.AccountStreamPrefix + p
	mustAppend(t, s, stream, store.NoStream, newEvent("evt_"+p+"_first", 0))
	evs := events(p, 3)
	if _, err := s.Append(ctxT(t), stream, store.NoStream, evs...); !errors.Is(err, store.ErrWrongExpectedRevision) {
		t.Fatalf("append with wrong revision: err = %v", err)
	}
	for _, e := range evs {
		if _, err := s.EventByID(ctxT(t), e.ID); !errors.Is(err, store.ErrEventNotFound) {
			t.Errorf("event %s of a rejected append is stored (err = %v)", e.ID, err)
		}
	}
	// An invalid event anywhere rejects the whole call.
	bad := events(p+"bad", 3)
	bad[2].Type = ""
	if _, err := s.Append(ctxT(t), stream, store.AnyRevision, bad...); !errors.Is(err, store.ErrInvalidEvent) {
		t.Fatalf("append with an invalid event: err = %v", err)
	}
	for _, e := range bad {
		if _, err := s.EventByID(ctxT(t), e.ID); !errors.Is(err, store.ErrEventNotFound) {
			t.Errorf("event %s of an invalid append is stored (err = %v)", e.ID, err)
		}
	}
	if got := checkChain(t, s, stream); len(got) != 1 {
		t.Errorf("stream has %d events, want 1", len(got))
	}
}

func testInvalid(t *testing.T, b Backend) {
	s := b.New(t)
	p := uniq(t)
	stream := fc.AccountStreamPrefix + p
	for name, mod := range map[string]func(*store.Event){
		"no id":     func(e *store.Event) { e.ID = "" },
		"no type":   func(e *store.Event) { e.Type = "" },
		"no data":   func(e *store.Event) { e.Data = nil },
		"empty":     func(e *store.Event) { e.Data = []byte{} },
		"no source": func(e *store.Event) { e.Source = "" },
	} {
		e := newEvent("evt_"+p+"_"+strings.ReplaceAll(name, " ", "_"), 0)
		mod(&e)
		if _, err := s.Append(ctxT(t), stream, store.AnyRevision, e); !errors.Is(err, store.ErrInvalidEvent) {
			t.Errorf("%s: err = %v, want ErrInvalidEvent", name, err)
		}
	}
	if _, err := s.ReadStream(ctxT(t), stream, 0, 0); !errors.Is(err, store.ErrStreamNotFound) {
		t.Errorf("invalid events were stored (ReadStream err = %v)", err)
	}
}

func testReadStream(t *testing.T, b Backend) {
	s := b.New(t)
	p := uniq(t)
	stream := fc.AccountStreamPrefix + p
	ctx := ctxT(t)
	if _, err := s.ReadStream(ctx, stream, 0, 0); !errors.Is(err, store.ErrStreamNotFound) {
		t.Errorf("ReadStream of a missing stream: err = %v, want ErrStreamNotFound", err)
	}
	evs := events(p, 6)
	mustAppend(t, s, stream, store.NoStream, evs[:3]...)
	mustAppend(t, s, fc.AccountStream("x"+p), store.NoStream, newEvent("evt_"+p+"_x", 0))
	mustAppend(t, s, stream, store.Exact(2), evs[3:]...)
	for _, tc := range []struct {
		from  uint64
		limit int
		want  []int
	}{
		{0, 0, []int{0, 1, 2, 3, 4, 5}},
		{0, -1, []int{0, 1, 2, 3, 4, 5}},
		{2, 0, []int{2, 3, 4, 5}},
		{2, 2, []int{2, 3}},
		{5, 10, []int{5}},
		{6, 0, nil},
		{0, 1, []int{0}},
	} {
		got, err := s.ReadStream(ctx, stream, tc.from, tc.limit)
		if err != nil {
			t.Fatalf("ReadStream from %d limit %d: %v", tc.from, tc.limit, err)
		}
		var want []string
		for _, i := range tc.want {
			want = append(want, evs[i].ID)
		}
		eqIDs(t, fmt.Sprintf("ReadStream from %d limit %d", tc.from, tc.limit), got, want...)
		for _, e := range got {
			if e.Stream != stream {
				t.Errorf("ReadStream returned event of stream %s", e.Stream)
			}
		}
	}
}

func testReadAll(t *testing.T, b Backend) {
	s := b.New(t)
	p := uniq(t)
	ctx := ctxT(t)
	prefix := fc.AccountStreamPrefix + p + "-"
	var all []string
	var pos []store.Position
	for i := range 7 {
		e := newEvent(fmt.Sprintf("evt_%s_%d", p, i), i)
		res := mustAppend(t, s, fmt.Sprintf("%s%d", prefix, i%3), store.AnyRevision, e)
		all = append(all, e.ID)
		pos = append(pos, res[0].Position)
	}
	f := store.Filter{StreamPrefix: prefix}
	got, err := s.ReadAll(ctx, store.ReadOptions{Filter: f})
	if err != nil {
		t.Fatal(err)
	}
	eqIDs(t, "ReadAll", got, all...)
	got, err = s.ReadAll(ctx, store.ReadOptions{Filter: f, After: pos[2]})
	if err != nil {
		t.Fatal(err)
	}
	eqIDs(t, "ReadAll after position of event 2 (exclusive)", got, all[3:]...)
	got, err = s.ReadAll(ctx, store.ReadOptions{Filter: f, After: pos[2], Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	eqIDs(t, "ReadAll after event 2 limit 2", got, all[3:5]...)
	// Page through with a tiny limit.
	var paged []store.RecordedEvent
	var after store.Position
	for range 20 {
		page, err := s.ReadAll(ctx, store.ReadOptions{Filter: f, After: after, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 3 {
			t.Fatalf("page of %d events with limit 3", len(page))
		}
		paged = append(paged, page...)
		after = page[len(page)-1].Position
	}
	eqIDs(t, "ReadAll paged", paged, all...)
	got, err = s.ReadAll(ctx, store.ReadOptions{Filter: f, After: pos[6]})
	if err != nil || len(got) != 0 {
		t.Errorf("ReadAll after the last event: %d events, err %v; want none", len(got), err)
	}
}

func testReadAllFilter(t *testing.T, b Backend) {
	s := b.New(t)
	p := uniq(t)
	ctx := ctxT(t)
	acct := fc.AccountStreamPrefix + p + "-"
	obj := "stripe-" + p + "-"
	type spec struct {
		stream, typ, source string
		created             int64
		recv                time.Time
	}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	specs := []spec{
		{acct + "1", fc.TypeCreated, store.SourceWebhook, 100, t0.Add(1 * time.Microsecond)},
		{acct + "1", fc.TypeRefreshedBalance, store.SourceBackfill, 200, t0.Add(2 * time.Microsecond)},
		{acct + "2", fc.TypeDeactivated, store.SourceWebhook, 300, t0.Add(3 * time.Microsecond)},
		{obj + "1", "customer.created", store.SourceImport, 400, t0.Add(4 * time.Microsecond)},
		{acct + "2", "weird?type[1]", store.SourceWebhook, 500, t0.Add(5 * time.Microsecond)},
		{acct + "3", "weirdXtype11", store.SourceFcaudit, 600, t0.Add(6 * time.Microsecond)},
	}
	var want []store.RecordedEvent // for computing expectations via Filter.Match
	for i, sp := range specs {
		e := newEvent(fmt.Sprintf("evt_%s_%d", p, i), i)
		e.Type, e.Source, e.Created, e.ReceivedAt = sp.typ, sp.source, sp.created, sp.recv
		res := mustAppend(t, s, sp.stream, store.AnyRevision, e)
		want = append(want, store.RecordedEvent{Event: e, Stream: sp.stream, Position: res[0].Position})
	}
	scope := func(f store.Filter) store.Filter {
		if len(f.Streams) == 0 && f.StreamPrefix == "" {
			// Keep the query to this test's events on a shared log.
			f.Streams = []string{acct + "1", acct + "2", acct + "3", obj + "1"}
		}
		return f
	}
	for _, tc := range []struct {
		name string
		f    store.Filter
		n    int
	}{
		{"prefix", store.Filter{StreamPrefix: acct}, 5},
		{"prefix other", store.Filter{StreamPrefix: obj}, 1},
		{"prefix none", store.Filter{StreamPrefix: acct + "9"}, 0},
		{"streams", store.Filter{Streams: []string{acct + "2", obj + "1"}}, 3},
		{"streams and prefix", store.Filter{StreamPrefix: acct, Streams: []string{acct + "2", obj + "1"}}, 2},
		{"type exact", store.Filter{Types: []string{"customer.created"}}, 1},
		{"type glob", store.Filter{Types: []string{fc.AccountEventPrefix + "*"}}, 3},
		{"type glob crosses dots", store.Filter{Types: []string{"financial_connections.*"}}, 3},
		{"type glob suffix", store.Filter{Types: []string{"*.created"}}, 2},
		{"type globs OR", store.Filter{Types: []string{"*deactivated", "customer.*"}}, 2},
		{"type literal metachars", store.Filter{Types: []string{"weird?type[1]"}}, 1},
		{"type glob literal metachars", store.Filter{Types: []string{"weird?type[1*"}}, 1},
		{"type glob star only", store.Filter{Types: []string{"*"}}, 6},
		{"created from", store.Filter{CreatedFrom: 300}, 4},
		{"created to", store.Filter{CreatedTo: 200}, 2},
		{"created to negative: nothing", store.Filter{CreatedTo: -1}, 0},
		{"created range", store.Filter{CreatedFrom: 200, CreatedTo: 400}, 3},
		{"received from", store.Filter{ReceivedFrom: t0.Add(5 * time.Microsecond)}, 2},
		{"received from sub-micro", store.Filter{ReceivedFrom: t0.Add(4*time.Microsecond + 1)}, 2},
		{"received to", store.Filter{ReceivedTo: t0.Add(2 * time.Microsecond)}, 2},
		{"received to sub-micro", store.Filter{ReceivedTo: t0.Add(3*time.Microsecond - 1)}, 2},
		{"received range", store.Filter{ReceivedFrom: t0.Add(2 * time.Microsecond), ReceivedTo: t0.Add(3 * time.Microsecond)}, 2},
		{"sources", store.Filter{Sources: []string{store.SourceBackfill, store.SourceImport}}, 2},
		{"combined", store.Filter{StreamPrefix: acct, Types: []string{"financial_connections.*"}, Sources: []string{store.SourceWebhook}, CreatedFrom: 150}, 1},
	} {
		f := scope(tc.f)
		got, err := s.ReadAll(ctx, store.ReadOptions{Filter: f})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var exp []string
		for i := range want {
			if f.Match(&want[i]) {
				exp = append(exp, want[i].ID)
			}
		}
		if len(exp) != tc.n {
			t.Fatalf("%s: test table is wrong: Filter.Match selects %d, table says %d", tc.name, len(exp), tc.n)
		}
		eqIDs(t, tc.name, got, exp...)
	}
}

func testEventByID(t *testing.T, b Backend) {
	s := b.New(t)
	p := uniq(t)
	if _, err := s.EventByID(ctxT(t), "evt_"+p+"_missing"); !errors.Is(err, store.ErrEventNotFound) {
		t.Errorf("EventByID of a missing id: err = %v, want ErrEventNotFound", err)
	}
	evs := events(p, 3)
	res := mustAppend(t, s, fc.AccountStreamPrefix+p, store.NoStream, evs...)
	for i, e := range evs {
		got, err := s.EventByID(ctxT(t), e.ID)
		if err != nil {
			t.Fatal(err)
		}
		sameEvent(t, got, e, true)
		if got.Position != res[i].Position || got.Revision != uint64(i) {
			t.Errorf("EventByID %s at %d/%d, want %d/%d", e.ID, got.Revision, got.Position, i, res[i].Position)
		}
	}
}

func testHead(t *testing.T, b Backend) {
	s := b.New(t)
	p := uniq(t)
	h0, err := s.Head(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if b.Features.ContiguousPositions && h0 != 0 {
		t.Errorf("Head of a fresh store = %d, want 0", h0)
	}
	res := mustAppend(t, s, fc.AccountStreamPrefix+p, store.NoStream, events(p, 3)...)
	h, err := s.Head(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if last := res[2].Position; h < last || (b.Features.ContiguousPositions && h != last) {
		t.Errorf("Head = %d after appending up to position %d", h, last)
	}
}

func testChain(t *testing.T, b Backend) {
	s := b.New(t)
	p := uniq(t)
	stream := fc.AccountStreamPrefix + p
	evs := events(p, 10)
	for i := 0; i < len(evs); i += 3 {
		mustAppend(t, s, stream, store.AnyRevision, evs[i:min(i+3, len(evs))]...)
		mustAppend(t, s, fc.AccountStream("noise"+p), store.AnyRevision, newEvent(fmt.Sprintf("evt_%s_noise%d", p, i), i))
	}
	got := checkChain(t, s, stream)
	if len(got) != len(evs) {
		t.Fatalf("stream has %d events, want %d", len(got), len(evs))
	}
	checkChain(t, s, fc.AccountStream("noise"+p))
	if got[0].ChainHash != store.ChainHash(store.ChainSeed(stream), sha256.Sum256(evs[0].Data), evs[0].ID, evs[0].ReceivedAt) {
		t.Errorf("revision 0 chain hash not seeded from the stream name")
	}
}

func testConcurrentAny(t *testing.T, b Backend) {
	s := b.New(t)
	p := uniq(t)
	stream := fc.AccountStreamPrefix + p
	const workers, per = 32, 4
	var wg sync.WaitGroup
	errs := make(chan error, workers*per)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				_, err := s.Append(ctxT(t), stream, store.AnyRevision, newEvent(fmt.Sprintf("evt_%s_%d_%d", p, w, i), i))
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent append: %v", err)
	}
	got := checkChain(t, s, stream)
	if len(got) != workers*per {
		t.Fatalf("stream has %d events, want %d", len(got), workers*per)
	}
	seen := map[string]bool{}
	for _, e := range got {
		if seen[e.ID] {
			t.Fatalf("event %s stored twice", e.ID)
		}
		seen[e.ID] = true
	}
}

func testConcurrentExact(t *testing.T, b Backend) {
	s := b.New(t)
	p := uniq(t)
	stream := fc.AccountStreamPrefix + p
	const workers, per = 32, 2
	var wg sync.WaitGroup
	errs := make(chan error, workers*per)
	var conflicts atomic.Int64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				e := newEvent(fmt.Sprintf("evt_%s_%d_%d", p, w, i), i)
				for attempt := 0; ; attempt++ {
					if attempt > 10*workers*per {
						errs <- fmt.Errorf("event %s: gave up after %d conflicts", e.ID, attempt)
						return
					}
					exp := store.NoStream
					last, err := s.ReadStream(ctxT(t), stream, 0, 0)
					switch {
					case errors.Is(err, store.ErrStreamNotFound):
					case err != nil:
						errs <- err
						return
					case len(last) == 0:
						errs <- fmt.Errorf("ReadStream(%s, 0, 0) returned no events and no error", stream)
						return
					default:
						exp = store.Exact(last[len(last)-1].Revision)
					}
					_, err = s.Append(ctxT(t), stream, exp, e)
					var we *store.WrongRevisionError
					if errors.As(err, &we) {
						conflicts.Add(1)
						continue
					}
					if err != nil {
						errs <- err
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent exact append: %v", err)
	}
	got := checkChain(t, s, stream)
	if len(got) != workers*per {
		t.Fatalf("stream has %d events, want %d", len(got), workers*per)
	}
	t.Logf("%d conflicts retried", conflicts.Load())
}

// collector gathers what a subscription delivers and lets the test wait for it.
type collector struct {
	mu     sync.Mutex
	got    []store.RecordedEvent
	calls  int
	update chan struct{}
}

func newCollector() *collector { return &collector{update: make(chan struct{}, 1)} }

func (c *collector) handle(_ context.Context, batch []store.RecordedEvent) error {
	c.mu.Lock()
	c.got = append(c.got, batch...)
	c.calls++
	c.mu.Unlock()
	select {
	case c.update <- struct{}{}:
	default:
	}
	return nil
}

// waitFor waits until at least n events arrived, then returns them all.
func (c *collector) waitFor(t testing.TB, n int, errc <-chan error) []store.RecordedEvent {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		c.mu.Lock()
		got := append([]store.RecordedEvent(nil), c.got...)
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-c.update:
		case err := <-errc:
			t.Fatalf("subscription ended early after %d of %d events: %v", len(got), n, err)
		case <-deadline:
			t.Fatalf("subscription delivered %d of %d events within %s: %v", len(got), n, waitTimeout, ids(got))
		}
	}
}

func subscribe(t testing.TB, s store.Store, after store.Position, f store.Filter, h store.Handler) (context.CancelFunc, <-chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Subscribe(ctx, after, f, h) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-errc:
		case <-time.After(waitTimeout):
			t.Errorf("Subscribe did not return within %s of cancel", waitTimeout)
		}
	})
	return cancel, errc
}

func testSubscribe(t *testing.T, b Backend) {
	s := b.New(t)
	p := uniq(t)
	prefix := fc.AccountStreamPrefix + p + "-"
	evs := events(p, 12)
	var pos []store.Position
	for i, e := range evs[:6] {
		pos = append(pos, mustAppend(t, s, fmt.Sprintf("%s%d", prefix, i%2), store.AnyRevision, e)[0].Position)
	}
	c := newCollector()
	// Starting after event 1's position is exclusive: events 2.. arrive.
	_, errc := subscribe(t, s, pos[1], store.Filter{StreamPrefix: prefix}, c.handle)
	c.waitFor(t, 4, errc)
	for i, e := range evs[6:] {
		mustAppend(t, s, fmt.Sprintf("%s%d", prefix, i%2), store.AnyRevision, e)
	}
	got := c.waitFor(t, 10, errc)
	var want []string
	for _, e := range evs[2:] {
		want = append(want, e.ID)
	}
	eqIDs(t, "subscription", got, want...)
	for i := 1; i < len(got); i++ {
		if got[i].Position <= got[i-1].Position {
			t.Fatalf("subscription out of order at %d: %d after %d", i, got[i].Position, got[i-1].Position)
		}
	}
	for i, e := range got {
		sameEvent(t, e, evs[2+i], true)
	}
}

func testSubscribeHandlerError(t *testing.T, b Backend) {
	s := b.New(t)
	p := uniq(t)
	mustAppend(t, s, fc.AccountStreamPrefix+p, store.NoStream, events(p, 3)...)
	boom := errors.New("handler failed")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	err := s.Subscribe(ctx, 0, store.Filter{StreamPrefix: fc.AccountStreamPrefix + p}, func(context.Context, []store.RecordedEvent) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Subscribe returned %v, want the handler's error", err)
	}
}

func testSubscribeCancel(t *testing.T, b Backend) {
	s := b.New(t)
	p := uniq(t)
	mustAppend(t, s, fc.AccountStreamPrefix+p, store.NoStream, events(p, 1)...)
	c := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- s.Subscribe(ctx, 0, store.Filter{StreamPrefix: fc.AccountStreamPrefix + p}, c.handle) }()
	c.waitFor(t, 1, errc) // now following live
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Subscribe after cancel returned %v, want context.Canceled", err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("Subscribe did not return within %s of cancel", waitTimeout)
	}
}

func testSubscribeFilter(t *testing.T, b Backend) {
	s := b.New(t)
	p := uniq(t)
	prefix := fc.AccountStreamPrefix + p
	c := newCollector()
	_, errc := subscribe(t, s, 0, store.Filter{StreamPrefix: prefix, Types: []string{"*.deactivated"}}, c.handle)
	var want []string
	for i := range 10 {
		e := newEvent(fmt.Sprintf("evt_%s_%d", p, i), i)
		if i%3 == 0 {
			e.Type = fc.TypeDeactivated
			want = append(want, e.ID)
		}
		mustAppend(t, s, prefix, store.AnyRevision, e)
		mustAppend(t, s, "stripe-"+p, store.AnyRevision, newEvent(fmt.Sprintf("evt_%s_o%d", p, i), i))
	}
	// A marker that matches, appended last: once it arrives, everything
	// before it has been considered.
	marker := newEvent("evt_"+p+"_marker", 99)
	marker.Type = "x.deactivated"
	mustAppend(t, s, prefix, store.AnyRevision, marker)
	want = append(want, marker.ID)
	got := c.waitFor(t, len(want), errc)
	eqIDs(t, "filtered subscription", got, want...)
}

func testSecond(t *testing.T, b Backend) {
	if b.Second == nil {
		t.Skip("backend has no second handle")
	}
	s := b.New(t)
	s2 := b.Second(t, s)
	p := uniq(t)
	prefix := fc.AccountStreamPrefix + p
	c := newCollector()
	_, errc := subscribe(t, s, 0, store.Filter{StreamPrefix: prefix}, c.handle)
	mustAppend(t, s, prefix+"-1", store.NoStream, newEvent("evt_"+p+"_a", 0))
	evs := events(p, 5)
	res := mustAppend(t, s2, prefix+"-1", store.Exact(0), evs...)
	// Appends through either handle share one chain and one set of ids.
	dup := mustAppend(t, s, prefix+"-1", store.AnyRevision, evs[0])
	if !dup[0].Duplicate || dup[0].Position != res[0].Position {
		t.Errorf("duplicate of an event appended through the second handle: %+v", dup[0])
	}
	mustAppend(t, s, prefix+"-1", store.Exact(5), newEvent("evt_"+p+"_b", 6))
	got := c.waitFor(t, 7, errc)
	want := []string{"evt_" + p + "_a"}
	want = append(want, ids(toRecorded(evs))...)
	want = append(want, "evt_"+p+"_b")
	eqIDs(t, "subscription on the first handle", got, want...)
	checkChain(t, s, prefix+"-1")
	checkChain(t, s2, prefix+"-1")
	e, err := s.EventByID(ctxT(t), evs[4].ID)
	if err != nil {
		t.Fatalf("event appended through the second handle not readable from the first: %v", err)
	}
	sameEvent(t, e, evs[4], true)
}

func toRecorded(evs []store.Event) []store.RecordedEvent {
	out := make([]store.RecordedEvent, len(evs))
	for i, e := range evs {
		out[i].Event = e
	}
	return out
}

func testClosed(t *testing.T, b Backend) {
	s := b.New(t)
	p := uniq(t)
	mustAppend(t, s, fc.AccountStreamPrefix+p, store.NoStream, events(p, 1)...)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Append(context.Background(), fc.AccountStreamPrefix+p, store.AnyRevision, newEvent("evt_"+p+"_late", 1)); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Append after Close: err = %v, want ErrClosed", err)
	}
}
