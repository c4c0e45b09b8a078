// Package logtest is the contract suite of translog.Log: every backend that
// offers the verifiable log runs it (store/sqlite and store/esdb, on one
// node and on a 3-node cluster). It checks the backend's tree against
// one recomputed from the backend's own reads and its proofs with
// transparency-dev/merkle's verifier.
package logtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/translog"
)

// Backend builds a fresh, empty store that is also a verifiable log.
type Backend struct {
	New func(t testing.TB) (store.Store, translog.Log)
}

// Run runs the contract.
func Run(t *testing.T, b Backend) {
	t.Run("TreeFollowsAppends", func(t *testing.T) { treeFollowsAppends(t, b) })
	t.Run("Checkpoints", func(t *testing.T) { checkpoints(t, b) })
}

func event(id string, i int) store.Event {
	e := store.Event{ID: id, Type: fc.TypeCreated, Data: []byte(`{"id":"` + id + `","n":` + fmt.Sprint(i) + `}`),
		ReceivedAt: time.Now(), Source: store.SourceWebhook}
	if i%3 != 0 {
		e.Provenance = &store.Provenance{SignatureHeader: "t=1,v1=" + id, SignedAt: int64(i), SecretFingerprint: "0011223344556677",
			VerifiedAt: time.Now(), Note: "<&>\"note\""}
	}
	if i%5 == 0 {
		e.Source = store.SourceBackfill
	}
	return e
}

// recompute reads the log and returns its events and leaf hashes.
func recompute(t *testing.T, s store.Store) ([]store.RecordedEvent, [][]byte) {
	t.Helper()
	var (
		evs    []store.RecordedEvent
		leaves [][]byte
		after  store.Position
	)
	for {
		page, err := s.ReadAll(context.Background(), store.ReadOptions{After: after, Limit: 1000, WithoutData: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return evs, leaves
		}
		for i := range page {
			h := translog.LeafHash(translog.LeafData(&page[i]))
			evs = append(evs, page[i])
			leaves = append(leaves, h[:])
			after = page[i].Position
		}
	}
}

func rootOf(leaves [][]byte) []byte {
	tr := translog.NewTree()
	for _, l := range leaves {
		tr.Append(l)
	}
	return tr.Root()
}

func treeFollowsAppends(t *testing.T, b Backend) {
	ctx := context.Background()
	s, l := b.New(t)
	id, err := l.LogID(ctx)
	if err != nil || id == "" {
		t.Fatalf("LogID: %q, %v", id, err)
	}
	if h, err := l.TreeHead(ctx); err != nil || h.Size != 0 || !bytes.Equal(h.Root, translog.EmptyRoot()) {
		t.Fatalf("empty tree head: %+v, %v", h, err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	n := 0
	for round := 0; round < 40; round++ {
		k := 1 + rng.IntN(4)
		var evs []store.Event
		for j := 0; j < k; j++ {
			evs = append(evs, event(fmt.Sprintf("evt_lt_%d", n), n))
			n++
		}
		if round%7 == 3 {
			evs = append(evs, evs[0]) // a duplicate within the request adds no leaf
		}
		if _, err := s.Append(ctx, fmt.Sprintf("fcaccount-lt%d", round%3), store.AnyRevision, evs...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Append(ctx, "fcaccount-lt0", store.AnyRevision, event("evt_lt_0", 0)); err != nil { // an idempotent re-append
		t.Fatal(err)
	}
	stored, leaves := recompute(t, s)
	if len(leaves) != n {
		t.Fatalf("%d events read, %d appended", len(leaves), n)
	}
	head, err := l.TreeHead(ctx)
	if err != nil || head.Size != uint64(n) || !bytes.Equal(head.Root, rootOf(leaves)) {
		t.Fatalf("tree head (%d, %x), recomputed (%d, %x): %v", head.Size, head.Root, n, rootOf(leaves), err)
	}
	for i := range stored {
		idx, err := l.LeafIndex(&stored[i])
		if err != nil || idx != uint64(i) {
			t.Fatalf("leaf index of the %d-th event: %d, %v", i, idx, err)
		}
		ev, err := s.EventByID(ctx, stored[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		if idx, err := l.LeafIndex(&ev); err != nil || idx != uint64(i) {
			t.Fatalf("leaf index via EventByID of %s: %d, %v", ev.ID, idx, err)
		}
	}
	for k := 0; k < 60; k++ {
		to := 1 + rng.Uint64N(uint64(n))
		from := rng.Uint64N(to + 1)
		idx := rng.Uint64N(to)
		rootTo, err := l.RootAt(ctx, to)
		if err != nil || !bytes.Equal(rootTo, rootOf(leaves[:to])) {
			t.Fatalf("RootAt(%d): %v", to, err)
		}
		p, err := l.InclusionProof(ctx, idx, to)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, to, leaves[idx], p, rootTo); err != nil {
			t.Fatalf("inclusion %d in %d: %v", idx, to, err)
		}
		c, err := l.ConsistencyProof(ctx, from, to)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, from, to, c, rootOf(leaves[:from]), rootTo); err != nil {
			t.Fatalf("consistency %d→%d: %v", from, to, err)
		}
	}
	for _, bad := range [][2]uint64{{0, uint64(n) + 1}, {uint64(n), uint64(n)}} {
		if _, err := l.InclusionProof(ctx, bad[0], bad[1]); !errors.Is(err, translog.ErrTreeSize) {
			t.Errorf("InclusionProof(%d, %d): %v, want ErrTreeSize", bad[0], bad[1], err)
		}
	}
	if _, err := l.ConsistencyProof(ctx, 2, 1); !errors.Is(err, translog.ErrTreeSize) {
		t.Errorf("ConsistencyProof(2, 1): %v, want ErrTreeSize", err)
	}
	if _, err := l.RootAt(ctx, uint64(n)+1); !errors.Is(err, translog.ErrTreeSize) {
		t.Errorf("RootAt beyond the tree: %v, want ErrTreeSize", err)
	}
}

func checkpoints(t *testing.T, b Backend) {
	ctx := context.Background()
	s, l := b.New(t)
	if _, err := l.LatestCheckpoint(ctx); !errors.Is(err, translog.ErrNoCheckpoint) {
		t.Fatalf("LatestCheckpoint of none: %v", err)
	}
	for i := 0; i < 9; i++ {
		if _, err := s.Append(ctx, "fcaccount-cp", store.AnyRevision, event(fmt.Sprintf("evt_cp_%d", i), i)); err != nil {
			t.Fatal(err)
		}
	}
	head, err := l.TreeHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	old, err := l.RootAt(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, cp := range []translog.Checkpoint{
		{Head: head, Note: []byte("n9")},
		{Head: translog.Head{Size: 5, Root: old}, Note: []byte("n5")},
		{Head: head, Note: []byte("again")}, // same size: kept once
	} {
		if err := l.AddCheckpoint(ctx, cp); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.AddCheckpoint(ctx, translog.Checkpoint{Head: translog.Head{Size: head.Size + 1, Root: head.Root}}); !errors.Is(err, translog.ErrTreeSize) {
		t.Errorf("checkpoint beyond the tree: %v, want ErrTreeSize", err)
	}
	if err := l.AddCheckpoint(ctx, translog.Checkpoint{Head: translog.Head{Size: 6, Root: old}}); !errors.Is(err, translog.ErrCorrupt) {
		t.Errorf("checkpoint with another root: %v, want ErrCorrupt", err)
	}
	cps, err := l.Checkpoints(ctx)
	if err != nil || len(cps) != 2 || cps[0].Size != 5 || cps[1].Size != 9 || string(cps[1].Note) != "n9" {
		t.Fatalf("Checkpoints: %+v, %v", cps, err)
	}
	latest, err := l.LatestCheckpoint(ctx)
	if err != nil || latest.Size != 9 || !bytes.Equal(latest.Root, head.Root) || string(latest.Note) != "n9" {
		t.Fatalf("LatestCheckpoint: %+v, %v", latest, err)
	}
}
