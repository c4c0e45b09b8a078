package esdbtest_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/fcaudit/fcaudit/store/esdb/esdbtest"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
)

func client(t *testing.T, srv *esdbtest.Server) *esdb.Client {
	t.Helper()
	return clientFor(t, srv.ConnString())
}

func clientFor(t *testing.T, conn string) *esdb.Client {
	t.Helper()
	cfg, err := esdb.ParseConnectionString(conn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = func(esdb.LogLevel, string, ...any) {}
	c, err := esdb.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func evd(id uuid.UUID) esdb.EventData {
	return esdb.EventData{EventID: id, EventType: "t", ContentType: esdb.ContentTypeJson, Data: []byte(`{}`)}
}

func code(err error) esdb.ErrorCode {
	var e *esdb.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return -1
}

func readStream(t *testing.T, c *esdb.Client, name string, opts esdb.ReadStreamOptions, n uint64) ([]*esdb.RecordedEvent, error) {
	t.Helper()
	rs, err := c.ReadStream(ctx(t), name, opts, n)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []*esdb.RecordedEvent
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, ev.OriginalEvent())
	}
}

func TestAppendExpectedRevisions(t *testing.T) {
	srv := esdbtest.Start(t)
	c := client(t, srv)
	a, b, x := uuid.New(), uuid.New(), uuid.New()
	if _, err := c.AppendToStream(ctx(t), "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.StreamExists{}}, evd(a)); code(err) != esdb.ErrorCodeWrongExpectedVersion {
		t.Fatalf("stream_exists on missing stream: %v", err)
	}
	r, err := c.AppendToStream(ctx(t), "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}}, evd(a), evd(b))
	if err != nil || r.NextExpectedVersion != 1 || r.CommitPosition == 0 || r.CommitPosition != r.PreparePosition {
		t.Fatalf("append: %+v, %v", r, err)
	}
	// Idempotent re-append of the same ids at the same expected revision.
	r2, err := c.AppendToStream(ctx(t), "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}}, evd(a), evd(b))
	if err != nil || r2.NextExpectedVersion != 1 {
		t.Fatalf("idempotent re-append: %+v, %v", r2, err)
	}
	if _, err := c.AppendToStream(ctx(t), "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}}, evd(x)); code(err) != esdb.ErrorCodeWrongExpectedVersion {
		t.Fatalf("no_stream on existing stream, other id: %v", err)
	}
	if _, err := c.AppendToStream(ctx(t), "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(5)}, evd(x)); code(err) != esdb.ErrorCodeWrongExpectedVersion {
		t.Fatalf("revision ahead: %v", err)
	}
	// any: the best-effort id cache makes a re-append of b a no-op.
	if _, err := c.AppendToStream(ctx(t), "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Any{}}, evd(b)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppendToStream(ctx(t), "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(1)}, evd(x)); err != nil {
		t.Fatalf("exact: %v", err)
	}
	got, err := readStream(t, c, "s", esdb.ReadStreamOptions{}, 10)
	if err != nil || len(got) != 3 || got[2].EventID != x || got[0].EventID != a {
		t.Fatalf("read: %v, %v", got, err)
	}
	if got[0].Position.Commit >= got[1].Position.Commit || got[1].Position.Commit-got[0].Position.Commit == 1 {
		t.Errorf("positions %d, %d: want increasing byte-offset-like values", got[0].Position.Commit, got[1].Position.Commit)
	}
}

func TestReads(t *testing.T) {
	srv := esdbtest.Start(t)
	c := client(t, srv)
	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	for _, id := range ids {
		if _, err := c.AppendToStream(ctx(t), "s", esdb.AppendToStreamOptions{}, evd(id)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := readStream(t, c, "missing", esdb.ReadStreamOptions{}, 10); code(err) != esdb.ErrorCodeResourceNotFound {
		t.Fatalf("missing stream: %v", err)
	}
	got, _ := readStream(t, c, "s", esdb.ReadStreamOptions{From: esdb.Revision(1)}, 10)
	if len(got) != 2 || got[0].EventNumber != 1 {
		t.Fatalf("forwards from 1 (inclusive): %d events", len(got))
	}
	got, _ = readStream(t, c, "s", esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
	if len(got) != 1 || got[0].EventNumber != 2 {
		t.Fatalf("backwards from end: %v", got)
	}
	got, _ = readStream(t, c, "s", esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.Revision(1)}, 10)
	if len(got) != 2 || got[0].EventNumber != 1 {
		t.Fatalf("backwards from 1 (inclusive): %v", got)
	}
	all := srv.Events()
	if len(all) != 6 || all[0].Stream[0] != '$' {
		t.Fatalf("$all should hold 3 system events then ours: %v", all)
	}
	rs, err := c.ReadAll(ctx(t), esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.Position{Commit: all[4].Position, Prepare: all[4].Position}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := rs.Recv()
	rs.Close()
	if err != nil || ev.OriginalEvent().Position.Commit != all[3].Position {
		t.Fatalf("$all backwards is strictly before the position: %v, %v", ev, err)
	}
	rs, err = c.ReadAll(ctx(t), esdb.ReadAllOptions{From: esdb.Position{Commit: all[4].Position, Prepare: all[4].Position}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	ev, err = rs.Recv()
	rs.Close()
	if err != nil || ev.OriginalEvent().EventID != all[4].ID {
		t.Fatalf("$all forwards is inclusive: %v, %v", ev, err)
	}
}

func TestSubscribeToAllFiltered(t *testing.T) {
	srv := esdbtest.Start(t)
	c := client(t, srv)
	first := uuid.New()
	if _, err := c.AppendToStream(ctx(t), "fcaccount-1", esdb.AppendToStreamOptions{}, evd(first)); err != nil {
		t.Fatal(err)
	}
	for range 40 { // enough unmatched events for a window checkpoint
		if _, err := c.AppendToStream(ctx(t), "other", esdb.AppendToStreamOptions{}, evd(uuid.New())); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := c.SubscribeToAll(ctx(t), esdb.SubscribeToAllOptions{From: esdb.Start{},
		Filter: &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{"fcaccount-"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var sawEvent, sawCheckpoint bool
	for caughtUp := false; !caughtUp; {
		e := sub.Recv()
		switch {
		case e.SubscriptionDropped != nil:
			t.Fatal(e.SubscriptionDropped.Error)
		case e.EventAppeared != nil:
			if e.EventAppeared.OriginalEvent().EventID != first {
				t.Fatalf("unexpected event %+v", e.EventAppeared.OriginalEvent())
			}
			sawEvent = true
		case e.CheckPointReached != nil:
			sawCheckpoint = true
		case e.CaughtUp != nil:
			caughtUp = true
		}
	}
	if !sawEvent || !sawCheckpoint {
		t.Fatalf("event %v checkpoint %v before caught_up", sawEvent, sawCheckpoint)
	}
	live := uuid.New()
	if _, err := c.AppendToStream(ctx(t), "fcaccount-2", esdb.AppendToStreamOptions{}, evd(live)); err != nil {
		t.Fatal(err)
	}
	for {
		e := sub.Recv()
		if e.SubscriptionDropped != nil {
			t.Fatal(e.SubscriptionDropped.Error)
		}
		if e.EventAppeared != nil {
			if id := e.EventAppeared.OriginalEvent().EventID; id != live {
				t.Fatalf("live event %s, want %s", id, live)
			}
			break
		}
	}
}

func TestSubscribeToStreamExclusiveStart(t *testing.T) {
	srv := esdbtest.Start(t, esdbtest.WithoutSystemEvents())
	c := client(t, srv)
	ids := []uuid.UUID{uuid.New(), uuid.New()}
	if _, err := c.AppendToStream(ctx(t), "s", esdb.AppendToStreamOptions{}, evd(ids[0]), evd(ids[1])); err != nil {
		t.Fatal(err)
	}
	sub, err := c.SubscribeToStream(ctx(t), "s", esdb.SubscribeToStreamOptions{From: esdb.Revision(0)})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for {
		e := sub.Recv()
		if e.SubscriptionDropped != nil {
			t.Fatal(e.SubscriptionDropped.Error)
		}
		if e.EventAppeared != nil {
			if e.EventAppeared.OriginalEvent().EventID != ids[1] {
				t.Fatal("subscription start must be exclusive")
			}
			return
		}
	}
}

func TestDeleteAndTombstone(t *testing.T) {
	srv := esdbtest.Start(t)
	c := client(t, srv)
	for _, name := range []string{"soft", "hard"} {
		if _, err := c.AppendToStream(ctx(t), name, esdb.AppendToStreamOptions{}, evd(uuid.New())); err != nil {
			t.Fatal(err)
		}
	}
	d, err := c.DeleteStream(ctx(t), "soft", esdb.DeleteStreamOptions{ExpectedRevision: esdb.Revision(0)})
	if err != nil || d.Position.Commit == 0 {
		t.Fatalf("delete: %+v, %v", d, err)
	}
	if _, err := readStream(t, c, "soft", esdb.ReadStreamOptions{}, 10); code(err) != esdb.ErrorCodeResourceNotFound {
		t.Fatalf("read after delete: %v", err)
	}
	r, err := c.AppendToStream(ctx(t), "soft", esdb.AppendToStreamOptions{}, evd(uuid.New()))
	if err != nil || r.NextExpectedVersion != 1 {
		t.Fatalf("append after soft delete continues numbering: %+v, %v", r, err)
	}
	if _, err := c.TombstoneStream(ctx(t), "hard", esdb.TombstoneStreamOptions{ExpectedRevision: esdb.Any{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := readStream(t, c, "hard", esdb.ReadStreamOptions{}, 10); code(err) != esdb.ErrorCodeStreamDeleted {
		t.Fatalf("read tombstoned: %v", err)
	}
	if _, err := c.AppendToStream(ctx(t), "hard", esdb.AppendToStreamOptions{}, evd(uuid.New())); code(err) != esdb.ErrorCodeStreamDeleted {
		t.Fatalf("append tombstoned: %v", err)
	}
}

func TestFaults(t *testing.T) {
	srv := esdbtest.Start(t)
	c := client(t, srv)
	if _, err := c.AppendToStream(ctx(t), "s", esdb.AppendToStreamOptions{}, evd(uuid.New())); err != nil {
		t.Fatal(err)
	}
	srv.FailNth(1, codes.PermissionDenied)
	if _, err := readStream(t, c, "s", esdb.ReadStreamOptions{}, 1); code(err) != esdb.ErrorCodeAccessDenied {
		t.Fatalf("injected PermissionDenied: %v", err)
	}
	srv.SetDelay(time.Second)
	short, cancel := context.WithTimeout(ctx(t), 50*time.Millisecond)
	defer cancel()
	if _, err := c.AppendToStream(short, "s", esdb.AppendToStreamOptions{}, evd(uuid.New())); code(err) != esdb.ErrorCodeDeadlineExceeded {
		t.Fatalf("delayed call past its deadline: %v", err)
	}
	srv.SetDelay(0)
	srv.SetUnavailable(true)
	if _, err := c.AppendToStream(ctx(t), "s", esdb.AppendToStreamOptions{}, evd(uuid.New())); code(err) != esdb.ErrorUnavailable {
		t.Fatalf("unavailable: %v", err)
	}
}
