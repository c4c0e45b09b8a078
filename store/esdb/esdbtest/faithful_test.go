package esdbtest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/fcaudit/fcaudit/store/esdb/esdbtest"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func sized(n int) esdb.EventData {
	return esdb.EventData{EventID: uuid.New(), EventType: "t", ContentType: esdb.ContentTypeJson, Data: bytes.Repeat([]byte("x"), n)}
}

// TestMaxAppendSize: data + metadata + 2 × type, per request; over it the
// node answers InvalidArgument, which v4.2.0 reports as "unknown".
func TestMaxAppendSize(t *testing.T) {
	srv := esdbtest.Start(t, esdbtest.WithMaxAppendSize(1000))
	c := client(t, srv)
	// 2 events: 2 × (490 + 2×1) = 984 ≤ 1000.
	if _, err := c.AppendToStream(ctx(t), "s", esdb.AppendToStreamOptions{}, sized(490), sized(490)); err != nil {
		t.Fatalf("append within the limit: %v", err)
	}
	// 2 × (498 + 2) = 1000 is still within; one byte more is not.
	if _, err := c.AppendToStream(ctx(t), "s", esdb.AppendToStreamOptions{}, sized(498), sized(498)); err != nil {
		t.Fatalf("append at the limit: %v", err)
	}
	srv.SetRefuseEarly(false)
	_, err := c.AppendToStream(ctx(t), "s", esdb.AppendToStreamOptions{}, sized(498), sized(499))
	if status.Code(errors.Unwrap(err)) != codes.InvalidArgument || code(err) != esdb.ErrorCodeUnknown {
		t.Fatalf("append over the limit: %v", err)
	}
}

// TestEarlyRefusal: refusing right after the options message makes a
// client still sending events see a bare io.EOF (always, once its sends
// exceed the HTTP/2 window; by chance for small ones); a node that reads
// the whole request lets it see the status.
func TestEarlyRefusal(t *testing.T) {
	srv := esdbtest.Start(t)
	c := client(t, srv)
	srv.SetACL(&esdbtest.ACL{User: "u", DenyWrite: []string{"locked-"}})
	_, err := c.AppendToStream(ctx(t), "locked-1", esdb.AppendToStreamOptions{}, sized(200<<10), sized(200<<10))
	if !errors.Is(err, io.EOF) {
		t.Fatalf("early refusal: %v, want a bare io.EOF", err)
	}
	srv.SetRefuseEarly(false)
	_, err = c.AppendToStream(ctx(t), "locked-1", esdb.AppendToStreamOptions{}, sized(200<<10), sized(200<<10))
	if code(err) != esdb.ErrorCodeAccessDenied {
		t.Fatalf("refusal after reading the request: %v, want access denied", err)
	}
	if _, err := c.AppendToStream(ctx(t), "open-1", esdb.AppendToStreamOptions{}, sized(10)); err != nil {
		t.Fatalf("append to an allowed stream: %v", err)
	}
}

// TestAllACL: $all is readable by $admins only, unless $$$all grants it.
func TestAllACL(t *testing.T) {
	srv := esdbtest.Start(t)
	c := client(t, srv)
	srv.SetACL(&esdbtest.ACL{User: "fcaudit"})
	read := func() error {
		rs, err := c.ReadAll(ctx(t), esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
		if err != nil {
			return err
		}
		defer rs.Close()
		_, err = rs.Recv()
		return err
	}
	if err := read(); code(err) != esdb.ErrorCodeAccessDenied {
		t.Fatalf("$all read without a grant: %v", err)
	}
	srv.AppendRaw("$$$all", "$metadata", []byte(`{"$acl":{"$r":["fcaudit"]}}`), nil)
	if err := read(); err != nil {
		t.Fatalf("$all read with the grant: %v", err)
	}
}

// TestSoftDeleteNoStream: after a soft delete a no_stream append is
// accepted and continues the numbering.
func TestSoftDeleteNoStream(t *testing.T) {
	srv := esdbtest.Start(t)
	c := client(t, srv)
	if _, err := c.AppendToStream(ctx(t), "s", esdb.AppendToStreamOptions{}, evd(uuid.New()), evd(uuid.New())); err != nil {
		t.Fatal(err)
	}
	srv.SoftDelete("s")
	r, err := c.AppendToStream(ctx(t), "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}}, evd(uuid.New()))
	if err != nil || r.NextExpectedVersion != 2 {
		t.Fatalf("no_stream after a soft delete: %+v, %v; want revision 2", r, err)
	}
	got, err := readStream(t, c, "s", esdb.ReadStreamOptions{}, 10)
	if err != nil || len(got) != 1 || got[0].EventNumber != 2 {
		t.Fatalf("read after: %v, %v", got, err)
	}
}

// TestAllPositionValidation: a $all start that is not where a record
// starts is refused.
func TestAllPositionValidation(t *testing.T) {
	srv := esdbtest.Start(t)
	c := client(t, srv)
	r, err := c.AppendToStream(ctx(t), "s", esdb.AppendToStreamOptions{}, evd(uuid.New()))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []uint64{r.CommitPosition, r.CommitPosition - 1} {
		rs, err := c.ReadAll(ctx(t), esdb.ReadAllOptions{From: esdb.Position{Commit: p, Prepare: p}}, 10)
		if err == nil {
			_, err = rs.Recv()
			rs.Close()
		}
		valid := p == r.CommitPosition
		if valid && err != nil && !errors.Is(err, io.EOF) {
			t.Errorf("read from record position %d: %v", p, err)
		}
		if !valid && status.Code(errors.Unwrap(err)) != codes.InvalidArgument {
			t.Errorf("read from mid-record position %d: %v, want InvalidArgument", p, err)
		}
	}
}

// TestClusterFollowers: a lagging follower serves stale reads and forwards
// writes; with requires-leader it answers not-leader and the client moves
// to the leader.
func TestClusterFollowers(t *testing.T) {
	cl := esdbtest.StartCluster(t, 3)
	f := cl.Follower(0)
	cl.SetLagging(f, true)
	c := client(t, f)
	if _, err := c.AppendToStream(ctx(t), "s", esdb.AppendToStreamOptions{}, evd(uuid.New())); err != nil {
		t.Fatalf("write through a follower: %v", err)
	}
	if _, err := readStream(t, c, "s", esdb.ReadStreamOptions{}, 10); code(err) != esdb.ErrorCodeResourceNotFound {
		t.Fatalf("stale read on the lagging follower: %v, want not found", err)
	}
	lctx := metadata.AppendToOutgoingContext(context.Background(), "requires-leader", "true")
	rs, err := c.ReadStream(lctx, "s", esdb.ReadStreamOptions{}, 10)
	if err == nil {
		_, err = rs.Recv()
		rs.Close()
	}
	if code(err) != esdb.ErrorCodeNotLeader {
		t.Fatalf("leader read on a follower: %v, want not-leader", err)
	}
	if got, err := readStream(t, c, "s", esdb.ReadStreamOptions{}, 10); err != nil || len(got) != 1 {
		t.Fatalf("read after moving to the leader: %v, %v", got, err)
	}
	// Discovery through gossip lands on the leader.
	d := clientFor(t, cl.DiscoverConnString())
	if got, err := readStream(t, d, "s", esdb.ReadStreamOptions{}, 10); err != nil || len(got) != 1 {
		t.Fatalf("read through discovery: %v, %v", got, err)
	}
}
