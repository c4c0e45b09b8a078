package esdb_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/esdb"
	"github.com/fcaudit/fcaudit/store/esdb/esdbtest"
	"github.com/fcaudit/fcaudit/store/storetest"
)

func open(t testing.TB, conn string) *esdb.Store {
	t.Helper()
	s, err := esdb.Open(context.Background(), conn, esdb.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open %s: %v", conn, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// memBackend runs each store on its own in-memory server; Second opens
// another adapter (another serve replica) on the same server.
func memBackend() storetest.Backend {
	conns := sync.Map{} // store.Store -> conn string
	return storetest.Backend{
		New: func(t testing.TB) store.Store {
			srv := esdbtest.Start(t)
			s := open(t, srv.ConnString())
			conns.Store(s, srv.ConnString())
			return s
		},
		Second: func(t testing.TB, s store.Store) store.Store {
			c, _ := conns.Load(s)
			return open(t, c.(string))
		},
	}
}

func TestContractInMemory(t *testing.T) {
	storetest.Run(t, memBackend())
}

// TestContractRealServer runs the suite against a real node, e.g.
// FCAUDIT_TEST_EVENTSTORE='esdb://127.0.0.1:2113?tls=false'.
func TestContractRealServer(t *testing.T) {
	conn := os.Getenv("FCAUDIT_TEST_EVENTSTORE")
	if conn == "" {
		t.Skip("FCAUDIT_TEST_EVENTSTORE not set; see docs/eventstoredb.md to run against a real EventStoreDB")
	}
	storetest.Run(t, storetest.Backend{
		New:    func(t testing.TB) store.Store { return open(t, conn) },
		Second: func(t testing.TB, _ store.Store) store.Store { return open(t, conn) },
	})
}

func BenchmarkInMemory(b *testing.B) { storetest.Bench(b, memBackend()) }

func ev(id string, i int) store.Event {
	return store.Event{ID: id, Type: fc.TypeRefreshedBalance,
		Data:       []byte(fmt.Sprintf(`{"id":%q,"n":%d}`, id, i)),
		ReceivedAt: time.Date(2025, 1, 2, 3, 4, 5, i*1000, time.UTC), Created: 1700000000 + int64(i), Source: store.SourceWebhook}
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestTwoReplicas: two adapters (two serve replicas) append interleaved and
// overlapping events to the same accounts at once. Every event must be
// stored exactly once and every chain must verify.
func TestTwoReplicas(t *testing.T) {
	srv := esdbtest.Start(t)
	twoReplicas(t, open(t, srv.ConnString()), open(t, srv.ConnString()), nil)
}

// twoReplicas runs the TestTwoReplicas workload on a and b; midway, when
// not nil, runs once about halfway through.
func twoReplicas(t *testing.T, a, b *esdb.Store, midway func()) {
	const accounts, perAccount = 3, 30
	var once sync.Once
	var wg sync.WaitGroup
	errc := make(chan error, 4*accounts)
	for acc := range accounts {
		stream := fc.AccountStream(fmt.Sprintf("fca_%d", acc))
		for w, s := range []*esdb.Store{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Both replicas get every event (Stripe retries hit either),
				// in different orders, sometimes two per append.
				for k := range perAccount {
					i := k
					if w == 1 {
						i = perAccount - 1 - k
					}
					evs := []store.Event{ev(fmt.Sprintf("evt_%d_%d", acc, i), i)}
					if i%5 == 0 && i+1 < perAccount {
						evs = append(evs, ev(fmt.Sprintf("evt_%d_%d", acc, i+1), i+1))
					}
					if k == perAccount/2 && midway != nil {
						once.Do(midway)
					}
					if _, err := s.Append(ctx(t), stream, store.AnyRevision, evs...); err != nil {
						errc <- fmt.Errorf("replica %d: %w", w, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	for acc := range accounts {
		stream := fc.AccountStream(fmt.Sprintf("fca_%d", acc))
		got, err := a.ReadStream(ctx(t), stream, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != perAccount {
			t.Errorf("%s: %d events, want %d", stream, len(got), perAccount)
		}
		seen := map[string]bool{}
		prev := store.ChainSeed(stream)
		for i, e := range got {
			if seen[e.ID] {
				t.Errorf("%s: %s stored twice", stream, e.ID)
			}
			seen[e.ID] = true
			prev = store.ChainHash(prev, e.BodySHA256, e.ID, e.ReceivedAt)
			if e.Revision != uint64(i) || e.ChainHash != prev {
				t.Fatalf("%s revision %d: chain broken", stream, i)
			}
			byID, err := b.EventByID(ctx(t), e.ID)
			if err != nil || byID.Position != e.Position || byID.Stream != stream {
				t.Errorf("EventByID(%s) = %+v, %v", e.ID, byID.Position, err)
			}
		}
	}
}

// TestUnavailable: a node that answers Unavailable makes Append and Ping
// fail with store.ErrUnavailable (so ingest answers 503); the same adapter
// works again once the node is back, even though the v4 client closed
// itself after the failed rediscovery.
func TestUnavailable(t *testing.T) {
	srv := esdbtest.Start(t)
	s := open(t, srv.ConnString())
	stream := fc.AccountStream("fca_u")
	if _, err := s.Append(ctx(t), stream, store.AnyRevision, ev("evt_u0", 0)); err != nil {
		t.Fatal(err)
	}
	srv.SetUnavailable(true)
	for range 3 { // first call fails, next ones run (and fail) rediscovery
		if _, err := s.Append(ctx(t), stream, store.AnyRevision, ev("evt_u1", 1)); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("append while unavailable: %v, want ErrUnavailable", err)
		}
		if err := s.Ping(ctx(t)); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("ping while unavailable: %v, want ErrUnavailable", err)
		}
	}
	srv.SetUnavailable(false)
	if err := s.Ping(ctx(t)); err != nil {
		t.Fatalf("ping after recovery: %v", err)
	}
	res, err := s.Append(ctx(t), stream, store.AnyRevision, ev("evt_u1", 1))
	if err != nil || res[0].Revision != 1 || res[0].Duplicate {
		t.Fatalf("append after recovery: %+v, %v", res, err)
	}
}

// TestRestart: the node goes away entirely (connections refused) and comes
// back on the same address; a running subscription resumes without loss.
func TestRestart(t *testing.T) {
	srv := esdbtest.Start(t)
	s := open(t, srv.ConnString())
	stream := fc.AccountStream("fca_r")
	got, done, cancel := subscribeAll(t, s)
	if _, err := s.Append(ctx(t), stream, store.AnyRevision, ev("evt_r0", 0)); err != nil {
		t.Fatal(err)
	}
	wait(t, got, "evt_r0")
	srv.Stop()
	if err := s.Ping(ctx(t)); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("ping with server stopped: %v, want ErrUnavailable", err)
	}
	srv.Restart()
	var err error
	for range 100 { // bounded: rediscovery after the restart
		if _, err = s.Append(ctx(t), stream, store.AnyRevision, ev("evt_r1", 1)); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("append after restart: %v", err)
	}
	wait(t, got, "evt_r1")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("subscribe returned %v, want context.Canceled", err)
	}
}

func wait(t *testing.T, got <-chan store.RecordedEvent, id string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case e := <-got:
			if e.ID == id {
				return
			}
		case <-timeout:
			t.Fatalf("event %s not delivered", id)
		}
	}
}

// TestSystemEventsAndClaimsNeverLeak: $all holds system events, claims and
// foreign streams; readers see only fcaudit events.
func TestSystemEventsAndClaimsNeverLeak(t *testing.T) {
	srv := esdbtest.Start(t)
	s := open(t, srv.ConnString())
	if _, err := s.Append(ctx(t), fc.AccountStream("fca_1"), store.AnyRevision, ev("evt_1", 1)); err != nil {
		t.Fatal(err)
	}
	srv.AppendRaw("other-stream", "thing", []byte(`{}`), nil)
	srv.AppendRaw("$$fcaccount-fca_1", "$metadata", []byte(`{}`), nil)
	srv.AppendRaw("fcaccount-fca_1x", "$streamDeleted", nil, nil)
	all, err := s.ReadAll(ctx(t), store.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].ID != "evt_1" {
		t.Fatalf("ReadAll = %v, want only evt_1", all)
	}
	h, err := s.Head(ctx(t))
	if err != nil || h != all[0].Position {
		t.Fatalf("Head = %d, %v; want %d", h, err, all[0].Position)
	}
	var claims int
	for _, e := range srv.Events() {
		if strings.HasPrefix(e.Stream, esdb.ClaimStreamPrefix) {
			claims++
		}
	}
	if claims != 1 {
		t.Errorf("%d claim events, want 1", claims)
	}
}

// TestPendingClaim: a claim whose data append never happened (a crashed
// replica) is completed by the next append of that id to the same stream,
// and blocks (retryably) an append of it to another stream.
func TestPendingClaim(t *testing.T) {
	srv := esdbtest.Start(t)
	s := open(t, srv.ConnString())
	stream := fc.AccountStream("fca_p")
	srv.AppendRaw(esdb.ClaimStream("evt_p"), esdb.ClaimEventType, []byte(`{"stream":"`+stream+`"}`), nil)
	if _, err := s.EventByID(ctx(t), "evt_p"); !errors.Is(err, store.ErrEventNotFound) {
		t.Fatalf("EventByID of pending claim: %v, want ErrEventNotFound", err)
	}
	if _, err := s.Append(ctx(t), fc.AccountStream("fca_other"), store.AnyRevision, ev("evt_p", 0)); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("append of id pending elsewhere: %v, want ErrUnavailable", err)
	}
	res, err := s.Append(ctx(t), stream, store.NoStream, ev("evt_p", 0))
	if err != nil || res[0].Duplicate || res[0].Revision != 0 {
		t.Fatalf("completing a pending claim: %+v, %v", res, err)
	}
	res, err = s.Append(ctx(t), stream, store.AnyRevision, ev("evt_p", 0))
	if err != nil || !res[0].Duplicate {
		t.Fatalf("re-append: %+v, %v", res, err)
	}
}

// TestErrors: tombstoned streams and injected gRPC failures map to clear
// errors.
func TestErrors(t *testing.T) {
	srv := esdbtest.Start(t)
	s := open(t, srv.ConnString())
	if err := s.Ping(ctx(t)); err != nil { // connect first: discovery is a call too
		t.Fatal(err)
	}
	srv.FailNth(1, 14) // codes.Unavailable
	if err := s.Ping(ctx(t)); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("ping with injected Unavailable: %v", err)
	}
	if err := s.Ping(ctx(t)); err != nil { // reconnect (rediscovery is a call)
		t.Fatal(err)
	}
	srv.FailNth(1, 7) // codes.PermissionDenied
	if _, err := s.ReadStream(ctx(t), "fcaccount-x", 0, 0); !errors.Is(err, esdb.ErrAccessDenied) {
		t.Fatalf("read with PermissionDenied: %v, want ErrAccessDenied", err)
	}
	if _, err := s.ReadStream(ctx(t), "fcaccount-none", 0, 0); !errors.Is(err, store.ErrStreamNotFound) {
		t.Fatalf("read missing: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx(t)); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("ping after close: %v", err)
	}
}
