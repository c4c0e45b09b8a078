package esdb_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/esdb"
	"github.com/fcaudit/fcaudit/store/esdb/esdbtest"
	"google.golang.org/grpc/codes"
)

// bigEvent is an event whose body is n bytes of valid JSON.
func bigEvent(id string, n int) store.Event {
	e := ev(id, 0)
	pad := n - len(`{"id":"","pad":""}`) - len(id)
	e.Data = []byte(`{"id":"` + id + `","pad":"` + strings.Repeat("x", pad) + `"}`)
	return e
}

func claimsOf(srv *esdbtest.Server, id string) int {
	n := 0
	for _, e := range srv.Events() {
		if e.Stream == esdb.ClaimStream(id) {
			n++
		}
	}
	return n
}

// TestAppendTooLarge: a body just under 1 MiB is over the
// server's MaxAppendSize once metadata and 2×type are counted. The append
// must fail with store.ErrTooLarge on every try (a permanent error, not
// ErrUnavailable), before any claim is written; a body of MaxBodySize bytes
// is accepted.
func TestAppendTooLarge(t *testing.T) {
	srv := esdbtest.Start(t)
	s := open(t, srv.ConnString())
	stream := fc.AccountStream("fca_big")
	e := bigEvent("evt_big", esdbtest.DefaultMaxAppendSize-100)
	for try := range 2 {
		_, err := s.Append(ctx(t), stream, store.AnyRevision, e)
		if !errors.Is(err, store.ErrTooLarge) || errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("try %d: append of a %d-byte body: %v, want store.ErrTooLarge", try, len(e.Data), err)
		}
	}
	if n := claimsOf(srv, "evt_big"); n != 0 {
		t.Errorf("%d claims left behind by a refused append, want 0", n)
	}
	// The adapter's limit and the server's agree: MaxBodySize fits.
	ok := bigEvent("evt_fits", int(s.MaxBodySize()))
	if _, err := s.Append(ctx(t), stream, store.AnyRevision, ok); err != nil {
		t.Fatalf("append of a MaxBodySize (%d) body: %v", s.MaxBodySize(), err)
	}
}

// TestServerSizeRefusal: a node configured with a smaller
// MaxAppendSize than the adapter's refuses the append (early, so the
// client often sees a bare io.EOF); the adapter reports store.ErrTooLarge,
// not "unavailable, retry".
func TestServerSizeRefusal(t *testing.T) {
	srv := esdbtest.Start(t, esdbtest.WithMaxAppendSize(100<<10))
	s := open(t, srv.ConnString())
	for i := range 3 {
		// One event: the node reads it whole, then refuses (the status
		// reaches the client).
		_, err := s.Append(ctx(t), fc.AccountStream("fca_srvbig"), store.AnyRevision, bigEvent("evt_srvbig", 512<<10))
		if !errors.Is(err, store.ErrTooLarge) {
			t.Fatalf("try %d, one event: %v, want store.ErrTooLarge", i, err)
		}
		// Three: the node refuses after the first while the client still
		// sends the others, and its Send fails with a bare io.EOF.
		_, err = s.Append(ctx(t), fc.AccountStream("fca_srvbig"), store.AnyRevision,
			bigEvent(fmt.Sprintf("evt_srvbig_a%d", i), 200<<10), bigEvent(fmt.Sprintf("evt_srvbig_b%d", i), 200<<10),
			bigEvent(fmt.Sprintf("evt_srvbig_c%d", i), 200<<10))
		if !errors.Is(err, store.ErrTooLarge) {
			t.Fatalf("try %d, three events: %v, want store.ErrTooLarge", i, err)
		}
	}
}

// TestEarlyRefusal: the node refuses appends to account
// streams right after the options message (stream ACL) without reading the
// events; with events larger than the HTTP/2 window the client's Send sees
// a bare io.EOF. The adapter must recover the real answer, access denied,
// every time.
func TestEarlyRefusal(t *testing.T) {
	srv := esdbtest.Start(t)
	s := open(t, srv.ConnString())
	srv.SetACL(&esdbtest.ACL{User: "fcaudit", DenyWrite: []string{fc.AccountStreamPrefix}})
	for i := range 10 {
		a, b := bigEvent(fmt.Sprintf("evt_denied_a%d", i), 200<<10), bigEvent(fmt.Sprintf("evt_denied_b%d", i), 200<<10)
		_, err := s.Append(ctx(t), fc.AccountStream("fca_denied"), store.AnyRevision, a, b)
		if !errors.Is(err, esdb.ErrAccessDenied) || errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("try %d: %v, want esdb.ErrAccessDenied", i, err)
		}
	}
}

// TestDuplicateFlagUnderRace: two replicas append the same
// event at the same stream head at the same moment; the node stores it once
// and answers both with success (the second as an idempotent re-append).
// Exactly one of them may report duplicate: false.
func TestDuplicateFlagUnderRace(t *testing.T) {
	srv := esdbtest.Start(t)
	a, b := open(t, srv.ConnString()), open(t, srv.ConnString())
	stream := fc.AccountStream("fca_race")
	e := ev("evt_race", 0)
	srv.HoldAppends(stream, 2) // both data appends meet at no_stream
	var wg sync.WaitGroup
	res := make([]store.Appended, 2)
	errs := make([]error, 2)
	for i, s := range []*esdb.Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r []store.Appended
			r, errs[i] = s.Append(ctx(t), stream, store.AnyRevision, e)
			if errs[i] == nil {
				res[i] = r[0]
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	if res[0].Duplicate == res[1].Duplicate {
		t.Fatalf("duplicate flags %v and %v: exactly one replica must report the event stored", res[0].Duplicate, res[1].Duplicate)
	}
	if res[0].Revision != 0 || res[1].Revision != 0 || res[0].Position != res[1].Position {
		t.Errorf("results disagree: %+v, %+v", res[0], res[1])
	}
	got, err := a.ReadStream(ctx(t), stream, 0, 0)
	if err != nil || len(got) != 1 {
		t.Fatalf("stream holds %d events (%v), want 1", len(got), err)
	}
}

// TestSoftDeletedClaim: someone soft-deletes a claim stream
// behind fcaudit's back. A no_stream append to a soft-deleted stream is
// accepted by the node (it continues the numbering), so a claim written
// there must not count as won: the event must still be stored once.
func TestSoftDeletedClaim(t *testing.T) {
	srv := esdbtest.Start(t)
	s := open(t, srv.ConnString())
	stream := fc.AccountStream("fca_sd")
	if _, err := s.Append(ctx(t), stream, store.AnyRevision, ev("evt_sd", 0)); err != nil {
		t.Fatal(err)
	}
	srv.SoftDelete(esdb.ClaimStream("evt_sd"))
	res, err := s.Append(ctx(t), stream, store.AnyRevision, ev("evt_sd", 0))
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Duplicate || res[0].Revision != 0 {
		t.Errorf("re-append after the claim was soft-deleted: %+v, want the duplicate at revision 0", res[0])
	}
	got, err := s.ReadStream(ctx(t), stream, 0, 0)
	if err != nil || len(got) != 1 {
		t.Fatalf("stream holds %d events (%v), want 1", len(got), err)
	}
}

// TestOutcomeUnknown: the node commits the data append and
// then answers DeadlineExceeded (a commit timeout). The adapter reports
// store.ErrUnavailable; the caller's retry finds the event through the
// claim and reports it as a duplicate: stored once, nothing lost.
func TestOutcomeUnknown(t *testing.T) {
	for _, code := range []codes.Code{codes.DeadlineExceeded, codes.Aborted} {
		t.Run(code.String(), func(t *testing.T) {
			srv := esdbtest.Start(t)
			s := open(t, srv.ConnString())
			stream := fc.AccountStream("fca_unknown")
			if err := s.Ping(ctx(t)); err != nil {
				t.Fatal(err)
			}
			srv.FailNextAppendAfterApply(esdb.ClaimStream("evt_unknown"), code)
			_, err := s.Append(ctx(t), stream, store.AnyRevision, ev("evt_unknown", 0))
			if !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("append whose claim outcome is unknown: %v, want ErrUnavailable", err)
			}
			res, err := s.Append(ctx(t), stream, store.AnyRevision, ev("evt_unknown", 0))
			if err != nil || res[0].Revision != 0 || res[0].Duplicate {
				t.Fatalf("retry: %+v, %v", res, err)
			}
			srv.FailNextAppendAfterApply(stream, code)
			_, err = s.Append(ctx(t), stream, store.AnyRevision, ev("evt_unknown2", 1))
			if !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("append whose outcome is unknown: %v, want ErrUnavailable", err)
			}
			res, err = s.Append(ctx(t), stream, store.AnyRevision, ev("evt_unknown2", 1))
			if err != nil || res[0].Revision != 1 || !res[0].Duplicate {
				t.Fatalf("retry: %+v, %v; want the stored event as a duplicate", res, err)
			}
			got, err := s.ReadStream(ctx(t), stream, 0, 0)
			if err != nil || len(got) != 2 {
				t.Fatalf("stream holds %d events (%v), want 2", len(got), err)
			}
		})
	}
}

// TestBoundedLookups: a redelivery, EventByID and the
// completion of a pending claim must not read the whole target stream:
// they read only around where the claim says the event can be.
func TestBoundedLookups(t *testing.T) {
	srv := esdbtest.Start(t)
	s := open(t, srv.ConnString())
	stream := fc.AccountStream("fca_long")
	const batches, per = 12, 100
	for b := range batches {
		evs := make([]store.Event, per)
		for i := range evs {
			evs[i] = ev(fmt.Sprintf("evt_long_%d", b*per+i), b*per+i)
		}
		if _, err := s.Append(ctx(t), stream, store.AnyRevision, evs...); err != nil {
			t.Fatal(err)
		}
	}
	const bound = 200 // events read per lookup; the stream holds 1,200
	measure := func(what string, f func() error) {
		t.Helper()
		before := srv.StreamEventsRead()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if n := srv.StreamEventsRead() - before; n > bound {
			t.Errorf("%s read %d events of a %d-event stream, want at most %d", what, n, batches*per, bound)
		}
	}
	measure("EventByID", func() error {
		e, err := s.EventByID(ctx(t), "evt_long_3")
		if err == nil && e.Revision != 3 {
			err = fmt.Errorf("revision %d, want 3", e.Revision)
		}
		return err
	})
	measure("redelivery", func() error {
		res, err := s.Append(ctx(t), stream, store.AnyRevision, ev("evt_long_650", 650))
		if err == nil && (!res[0].Duplicate || res[0].Revision != 650) {
			err = fmt.Errorf("%+v, want the duplicate at 650", res[0])
		}
		return err
	})
	// A pending claim (its writer crashed before the data append) made when
	// the stream was at its current head.
	srv.AppendRaw(esdb.ClaimStream("evt_pending"), esdb.ClaimEventType,
		[]byte(fmt.Sprintf(`{"stream":%q,"after":%d}`, stream, batches*per-1)), nil)
	measure("pending completion", func() error {
		res, err := s.Append(ctx(t), stream, store.AnyRevision, ev("evt_pending", 0))
		if err == nil && (res[0].Duplicate || res[0].Revision != batches*per) {
			err = fmt.Errorf("%+v, want stored at %d", res[0], batches*per)
		}
		return err
	})
}

// TestEarlyRefusalOfClaims: the same for the claim streams,
// whose appends are tiny (the client's Send sees io.EOF only sometimes):
// every attempt must report access denied, never "unavailable".
func TestEarlyRefusalOfClaims(t *testing.T) {
	srv := esdbtest.Start(t)
	s := open(t, srv.ConnString())
	srv.SetACL(&esdbtest.ACL{User: "fcaudit", DenyWrite: []string{esdb.ClaimStreamPrefix}})
	for i := range 30 {
		_, err := s.Append(ctx(t), fc.AccountStream("fca_denied"), store.AnyRevision, ev(fmt.Sprintf("evt_cd%d", i), i))
		if !errors.Is(err, esdb.ErrAccessDenied) || errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("try %d: %v, want esdb.ErrAccessDenied", i, err)
		}
	}
}
