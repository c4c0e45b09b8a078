package esdb_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/esdb"
	"github.com/fcaudit/fcaudit/store/esdb/esdbtest"
	"github.com/fcaudit/fcaudit/translog"
	"github.com/fcaudit/fcaudit/translog/logtest"
)

func TestLogContractInMemory(t *testing.T) {
	logtest.Run(t, logtest.Backend{New: func(t testing.TB) (store.Store, translog.Log) {
		s := open(t, esdbtest.Start(t).ConnString())
		return s, s
	}})
}

func TestLogContractCluster(t *testing.T) {
	logtest.Run(t, logtest.Backend{New: func(t testing.TB) (store.Store, translog.Log) {
		s := open(t, esdbtest.StartCluster(t, 3).DiscoverConnString())
		return s, s
	}})
}

// leaves recomputes the tree from the log as s reads it.
func leaves(t *testing.T, s store.Store) *translog.Tree {
	t.Helper()
	tr := translog.NewTree()
	var after store.Position
	for {
		page, err := s.ReadAll(context.Background(), store.ReadOptions{After: after, Limit: 1000, WithoutData: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return tr
		}
		for i := range page {
			h := translog.LeafHashOf(&page[i])
			tr.Append(h[:])
			after = page[i].Position
		}
	}
}

// TestLogTwoBuilders: two adapters (two serve replicas) append and build
// the tree at once; both end with the same tree, which is the tree of the
// log, and the tree stream holds every leaf once.
func TestLogTwoBuilders(t *testing.T) {
	c := esdbtest.StartCluster(t, 3)
	a := openWith(t, c.DiscoverConnString(), esdb.Options{TreeSyncLeaves: -1})
	b := openWith(t, c.Follower(0).ConnString(), esdb.Options{TreeSyncLeaves: -1})
	bctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, s := range []*esdb.Store{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.RunLogBuilder(bctx, time.Millisecond) }()
	}
	var awg sync.WaitGroup
	for k, s := range []*esdb.Store{a, b} {
		awg.Add(1)
		go func() {
			defer awg.Done()
			for i := 0; i < 60; i++ {
				if _, err := s.Append(ctx(t), fmt.Sprintf("fcaccount-two%d", i%4), store.AnyRevision, ev(fmt.Sprintf("evt_two_%d_%d", k, i), i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	awg.Wait()
	// The builders race each other; BuildLog from both after the appends
	// brings the tree to the head whatever the race left.
	for _, s := range []*esdb.Store{a, b} {
		if err := s.BuildLog(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	wg.Wait()
	want := leaves(t, a)
	if want.Size() != 120 {
		t.Fatalf("log has %d leaves, want 120", want.Size())
	}
	for name, s := range map[string]*esdb.Store{"a": a, "b": b} {
		h, err := s.TreeHead(ctx(t))
		if err != nil || h.Size != want.Size() || !bytes.Equal(h.Root, want.Root()) {
			t.Errorf("%s: tree head %d %x, %v; want %d %x", name, h.Size, h.Root, err, want.Size(), want.Root())
		}
	}
	// A third adapter reads the tree stream afresh and agrees.
	third := openWith(t, c.DiscoverConnString(), esdb.Options{TreeSyncLeaves: -1})
	if h, err := third.TreeHead(ctx(t)); err != nil || h.Size != want.Size() || !bytes.Equal(h.Root, want.Root()) {
		t.Errorf("fresh adapter: tree head %d, %v", h.Size, err)
	}
	ida, _ := a.LogID(ctx(t))
	idb, _ := b.LogID(ctx(t))
	if ida == "" || ida != idb {
		t.Errorf("log ids %q and %q", ida, idb)
	}
}

// openWith opens conn with o (Timeout 5 s unless o sets one), closed when
// the test ends.
func openWith(t testing.TB, conn string, o esdb.Options) *esdb.Store {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	s, err := esdb.Open(context.Background(), conn, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestLogTrails: with no synchronous extension, the tree trails the log
// until the builder runs: TreeHead and LeafIndex answer ErrNotBuilt, proofs
// beyond the tree ErrTreeSize, and a checkpoint covers only the tree.
func TestLogTrails(t *testing.T) {
	srv := esdbtest.Start(t)
	s := openWith(t, srv.ConnString(), esdb.Options{TreeSyncLeaves: -1})
	if h, err := s.TreeHead(ctx(t)); err != nil || h.Size != 0 {
		t.Fatalf("empty log: %+v, %v", h, err)
	}
	for i := 0; i < 3; i++ {
		if _, err := s.Append(ctx(t), "fcaccount-trail", store.AnyRevision, ev(fmt.Sprintf("evt_trail_%d", i), i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.TreeHead(ctx(t)); !errors.Is(err, translog.ErrNotBuilt) {
		t.Fatalf("tree head of an unbuilt log: %v, want ErrNotBuilt", err)
	}
	e, err := s.EventByID(ctx(t), "evt_trail_0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.LeafIndex(&e); !errors.Is(err, translog.ErrNotBuilt) {
		t.Fatalf("leaf index before the build: %v", err)
	}
	if _, err := s.RootAt(ctx(t), 1); !errors.Is(err, translog.ErrTreeSize) || !errors.Is(err, translog.ErrNotBuilt) {
		t.Fatalf("root beyond the tree: %v", err)
	}
	if err := s.AddCheckpoint(ctx(t), translog.Checkpoint{Head: translog.Head{Size: 1, Root: translog.EmptyRoot()}}); !errors.Is(err, translog.ErrTreeSize) {
		t.Fatalf("checkpoint beyond the tree: %v", err)
	}
	bctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.RunLogBuilder(bctx, time.Millisecond) }()
	var h translog.Head
	for {
		if h, err = s.TreeHead(ctx(t)); err == nil {
			break
		}
		if !errors.Is(err, translog.ErrNotBuilt) {
			t.Fatal(err)
		}
		select {
		case <-ctx(t).Done():
			t.Fatal("the builder did not build the tree")
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("builder ended with %v", err)
	}
	want := leaves(t, s)
	if h.Size != 3 || !bytes.Equal(h.Root, want.Root()) {
		t.Fatalf("built tree %d %x, want 3 %x", h.Size, h.Root, want.Root())
	}
	if idx, err := s.LeafIndex(&e); err != nil || idx != 0 {
		t.Fatalf("leaf index: %d, %v", idx, err)
	}
}

// TestLogSkipsSystemStreams: fcaudit's own records (fcaudit-… streams) are
// leaves as in the embedded store; the tree and checkpoint streams are not.
func TestLogSkipsTreeStreams(t *testing.T) {
	s := open(t, esdbtest.Start(t).ConnString())
	if _, err := s.Append(ctx(t), "fcaudit-replays", store.AnyRevision, ev("evt_sys_0", 0)); err != nil {
		t.Fatal(err)
	}
	h, err := s.TreeHead(ctx(t))
	if err != nil || h.Size != 1 {
		t.Fatalf("tree head: %+v, %v", h, err)
	}
	if err := s.AddCheckpoint(ctx(t), translog.Checkpoint{Head: h, Note: []byte("n")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx(t), "fcaccount-x", store.AnyRevision, ev("evt_sys_1", 1)); err != nil {
		t.Fatal(err)
	}
	if h, err = s.TreeHead(ctx(t)); err != nil || h.Size != 2 {
		t.Fatalf("tree head: %+v, %v", h, err)
	}
	if n := s.ForeignEvents(); n != 0 {
		t.Errorf("%d foreign events: the tree streams were read as fcaudit events", n)
	}
	all, err := s.ReadAll(ctx(t), store.ReadOptions{})
	if err != nil || len(all) != 2 {
		t.Fatalf("ReadAll: %d events, %v", len(all), err)
	}
}

// TestLogReadOnlyUser: a user the ACL does not let write the tree stream (an
// auditor's read-only tools) reads the tree serve built; where it trails,
// TreeHead says "not built" rather than failing with access denied.
func TestLogReadOnlyUser(t *testing.T) {
	srv := esdbtest.Start(t)
	w := open(t, srv.ConnString())
	for i := 0; i < 2; i++ {
		if _, err := w.Append(ctx(t), "fcaccount-ro", store.AnyRevision, ev(fmt.Sprintf("evt_ro_%d", i), i)); err != nil {
			t.Fatal(err)
		}
	}
	built, err := w.TreeHead(ctx(t))
	if err != nil || built.Size != 2 {
		t.Fatalf("tree head: %+v, %v", built, err)
	}
	srv.AppendRaw("$$$all", "$metadata", []byte(`{"$acl":{"$r":["reader"]}}`), nil)
	srv.SetACL(&esdbtest.ACL{User: "reader", DenyWrite: []string{"fcaudit"}})
	r := open(t, srv.ConnString())
	if h, err := r.TreeHead(ctx(t)); err != nil || h.Size != 2 || !bytes.Equal(h.Root, built.Root) {
		t.Fatalf("reader's tree head: %+v, %v", h, err)
	}
	srv.SetACL(nil)
	if _, err := w.Append(ctx(t), "fcaccount-ro", store.AnyRevision, ev("evt_ro_2", 2)); err != nil {
		t.Fatal(err)
	}
	srv.SetACL(&esdbtest.ACL{User: "reader", DenyWrite: []string{"fcaudit"}})
	if _, err := r.TreeHead(ctx(t)); !errors.Is(err, translog.ErrNotBuilt) {
		t.Fatalf("reader's tree head of a trailing tree: %v, want ErrNotBuilt", err)
	}
	if p, err := r.InclusionProof(ctx(t), 1, 2); err != nil || len(p) != 1 {
		t.Fatalf("reader's proof within the tree: %d hashes, %v", len(p), err)
	}
}

// TestLogLostRace: a replica extending the tree from a stale copy loses to
// the extension another replica appended (WrongExpectedVersion), reads it,
// and continues from it: no leaf is added twice or skipped.
func TestLogLostRace(t *testing.T) {
	srv := esdbtest.Start(t)
	a := openWith(t, srv.ConnString(), esdb.Options{TreeSyncLeaves: -1})
	b := openWith(t, srv.ConnString(), esdb.Options{TreeSyncLeaves: -1})
	appendOne := func(s *esdb.Store, i int) {
		if _, err := s.Append(ctx(t), "fcaccount-race", store.AnyRevision, ev(fmt.Sprintf("evt_race_%d", i), i)); err != nil {
			t.Fatal(err)
		}
	}
	appendOne(a, 0)
	if err := a.BuildLog(ctx(t)); err != nil {
		t.Fatal(err)
	}
	appendOne(b, 1)
	if err := b.BuildLog(ctx(t)); err != nil {
		t.Fatal(err)
	}
	appendOne(a, 2)
	// a's copy still has one leaf; b's extension to two is in the stream.
	if more, err := a.ExtendFromCopy(ctx(t)); err != nil || !more {
		t.Fatalf("stale extension: %v, %v", more, err)
	}
	if err := a.BuildLog(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := b.BuildLog(ctx(t)); err != nil {
		t.Fatal(err)
	}
	want := leaves(t, a)
	for name, s := range map[string]*esdb.Store{"a": a, "b": b} {
		h, err := s.TreeHead(ctx(t))
		if err != nil || h.Size != 3 || !bytes.Equal(h.Root, want.Root()) {
			t.Errorf("%s: tree head %d, %v; want 3 leaves and the recomputed root", name, h.Size, err)
		}
	}
}
