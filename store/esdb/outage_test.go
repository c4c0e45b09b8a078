package esdb_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/esdb"
	"github.com/fcaudit/fcaudit/store/esdb/esdbtest"
)

// TestOutageWithProbes: a subscription is running when the
// node goes away for a few seconds while readiness probes (Ping) keep
// coming. In v4.2.0 a failed rediscovery ends the client's connection loop
// without draining its channel, so every call then waiting for a
// connection blocks forever, the resubscription among them. The adapter
// must bound every call, replace the client, and resubscribe: once the node
// is back the subscription delivers again.
func TestOutageWithProbes(t *testing.T) {
	srv := esdbtest.Start(t)
	s := openWith(t, srv.ConnString(), esdb.Options{Timeout: time.Second})
	stream := fc.AccountStream("fca_outage")
	got, done, cancel := subscribeAll(t, s)
	if _, err := s.Append(ctx(t), stream, store.AnyRevision, ev("evt_o0", 0)); err != nil {
		t.Fatal(err)
	}
	wait(t, got, "evt_o0")

	srv.Stop()
	// Probes while the node is gone: each one is bounded by the timeout.
	outage := time.Now()
	for time.Since(outage) < 4*time.Second {
		pctx, pcancel := context.WithTimeout(context.Background(), 3*time.Second)
		start := time.Now()
		err := s.Ping(pctx)
		pcancel()
		if err == nil {
			t.Fatal("ping succeeded with the node stopped")
		}
		if d := time.Since(start); d > 2500*time.Millisecond {
			t.Fatalf("ping took %v with a 1 s operation timeout", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	srv.Restart()
	writer := open(t, srv.ConnString())
	var aerr error
	for range 100 {
		if _, aerr = writer.Append(ctx(t), stream, store.AnyRevision, ev("evt_o1", 1)); aerr == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if aerr != nil {
		t.Fatalf("append after the node returned: %v", aerr)
	}
	wait(t, got, "evt_o1")
	if err := s.Ping(ctx(t)); err != nil {
		t.Fatalf("ping after the node returned: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Subscribe returned nil")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Subscribe did not return after cancel")
	}
}

// TestForeignEvents: on a shared cluster another application
// writes under fcaudit's prefixes. Subscribe and ReadAll skip such events
// (with a warning and a count) instead of failing: one foreign write must
// not stop every projection.
func TestForeignEvents(t *testing.T) {
	srv := esdbtest.Start(t)
	s := open(t, srv.ConnString())
	if _, err := s.Append(ctx(t), fc.AccountStream("fca_f"), store.AnyRevision, ev("evt_f0", 0)); err != nil {
		t.Fatal(err)
	}
	srv.AppendRaw("fcaccount-someone-else", "thing.happened", []byte(`{"x":1}`), []byte(`{"app":"other"}`))
	srv.AppendRaw("stripe-other", "thing.happened", []byte(`{"x":2}`), nil)
	if _, err := s.Append(ctx(t), fc.AccountStream("fca_f"), store.AnyRevision, ev("evt_f1", 1)); err != nil {
		t.Fatal(err)
	}
	all, err := s.ReadAll(ctx(t), store.ReadOptions{})
	if err != nil || len(all) != 2 {
		t.Fatalf("ReadAll = %d events, %v; want the 2 fcaudit events", len(all), err)
	}
	got, done, cancel := subscribeAll(t, s)
	wait(t, got, "evt_f0")
	wait(t, got, "evt_f1")
	if _, err := s.Append(ctx(t), fc.AccountStream("fca_f"), store.AnyRevision, ev("evt_f2", 2)); err != nil {
		t.Fatal(err)
	}
	wait(t, got, "evt_f2")
	if n := s.ForeignEvents(); n < 2 {
		t.Errorf("ForeignEvents = %d, want >= 2", n)
	}
	cancel()
	<-done
}

// TestForeignPosition: a position from another backend
// (fcaudit's SQLite positions are 1, 2, 3, …; EventStoreDB's are byte
// offsets) is not where a record starts; the node refuses it and the
// adapter must say so clearly, for ReadAll and Subscribe alike.
func TestForeignPosition(t *testing.T) {
	srv := esdbtest.Start(t)
	s := open(t, srv.ConnString())
	res, err := s.Append(ctx(t), fc.AccountStream("fca_pos"), store.AnyRevision, ev("evt_pos", 0))
	if err != nil {
		t.Fatal(err)
	}
	bad := res[0].Position - 3
	if _, err := s.ReadAll(ctx(t), store.ReadOptions{After: bad}); !errors.Is(err, esdb.ErrInvalidPosition) ||
		!strings.Contains(err.Error(), fmt.Sprint(bad)) {
		t.Errorf("ReadAll after %d: %v, want esdb.ErrInvalidPosition naming the position", bad, err)
	}
	err = s.Subscribe(ctx(t), bad, store.Filter{}, func(context.Context, []store.RecordedEvent) error { return nil })
	if !errors.Is(err, esdb.ErrInvalidPosition) {
		t.Errorf("Subscribe after %d: %v, want esdb.ErrInvalidPosition", bad, err)
	}
	if all, err := s.ReadAll(ctx(t), store.ReadOptions{After: res[0].Position}); err != nil || len(all) != 0 {
		t.Errorf("ReadAll after the last event: %v, %v", all, err)
	}
}

// subscribeAll runs s.Subscribe from 0 in the background, sending every
// delivered event to got; cancel ends the subscription and errs then
// receives what Subscribe returned. The subscription ends with the test at
// the latest.
func subscribeAll(t *testing.T, s *esdb.Store) (got <-chan store.RecordedEvent, errs <-chan error, cancel func()) {
	ch := make(chan store.RecordedEvent, 1000)
	errc := make(chan error, 1)
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		errc <- s.Subscribe(sctx, 0, store.Filter{}, func(_ context.Context, b []store.RecordedEvent) error {
			for _, e := range b {
				ch <- e
			}
			return nil
		})
	}()
	return ch, errc, cancel
}

// TestSlowConsumerDropped: a node (≤ 23.10) drops a live subscriber that
// falls behind with Aborted; the adapter resubscribes from the last
// delivered event, so every event arrives exactly once and in order.
func TestSlowConsumerDropped(t *testing.T) {
	srv := esdbtest.Start(t)
	s := open(t, srv.ConnString())
	stream := fc.AccountStream("fca_slow")
	if _, err := s.Append(ctx(t), stream, store.AnyRevision, ev("evt_slow_first", 0)); err != nil {
		t.Fatal(err)
	}
	got, _, _ := subscribeAll(t, s)
	wait(t, got, "evt_slow_first")
	srv.DropSlowSubscribers(5)
	evs := make([]store.Event, 20)
	for i := range evs {
		evs[i] = ev(fmt.Sprintf("evt_slow_%d", i), i+1)
	}
	if _, err := s.Append(ctx(t), stream, store.AnyRevision, evs...); err != nil {
		t.Fatal(err)
	}
	srv.DropSlowSubscribers(0)
	for i := range evs {
		select {
		case e := <-got:
			if e.ID != evs[i].ID || e.Revision != uint64(i+1) {
				t.Fatalf("delivery %d: %s@%d, want %s@%d", i, e.ID, e.Revision, evs[i].ID, i+1)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("event %d not delivered", i)
		}
	}
}

// TestSilentShutdown: a node shutting down leaves the subscription open
// and silent and answers nothing; probes stay bounded by the timeout, and
// once a node serves again the subscription delivers again.
func TestSilentShutdown(t *testing.T) {
	srv := esdbtest.Start(t)
	s := openWith(t, srv.ConnString(), esdb.Options{Timeout: time.Second})
	stream := fc.AccountStream("fca_silent")
	if _, err := s.Append(ctx(t), stream, store.AnyRevision, ev("evt_silent0", 0)); err != nil {
		t.Fatal(err)
	}
	got, _, _ := subscribeAll(t, s)
	wait(t, got, "evt_silent0")
	srv.GoSilent()
	for range 3 {
		start := time.Now()
		if err := s.Ping(ctx(t)); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("ping of a silent node: %v, want ErrUnavailable", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("ping of a silent node took %v", d)
		}
	}
	srv.Stop()
	srv.Restart()
	writer := open(t, srv.ConnString())
	var aerr error
	for range 100 {
		if _, aerr = writer.Append(ctx(t), stream, store.AnyRevision, ev("evt_silent1", 1)); aerr == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if aerr != nil {
		t.Fatal(aerr)
	}
	wait(t, got, "evt_silent1")
}
