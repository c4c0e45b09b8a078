package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/translog"
	"github.com/fcaudit/fcaudit/translog/logtest"
)

// recompute builds the tree from the events as reads return them, the way
// an auditor (or fcaudit verify) would, and returns its root and leaf
// hashes.
func recompute(t *testing.T, s store.Store) ([]byte, [][]byte) {
	t.Helper()
	tr := translog.NewTree()
	var leaves [][]byte
	var after store.Position
	for {
		page, err := s.ReadAll(context.Background(), store.ReadOptions{After: after, Limit: 5000, WithoutData: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return tr.Root(), leaves
		}
		for i := range page {
			h := translog.LeafHash(translog.LeafData(&page[i]))
			tr.Append(h[:])
			leaves = append(leaves, h[:])
			after = page[i].Position
		}
	}
}

// checkTree: the stored tree's root equals the recomputed one, and proofs
// from the store verify with the library's verifier.
func checkTree(t *testing.T, s *Store) translog.Head {
	t.Helper()
	ctx := context.Background()
	root, leaves := recompute(t, s)
	head, err := s.TreeHead(ctx)
	if err != nil {
		t.Fatalf("tree head: %v", err)
	}
	if head.Size != uint64(len(leaves)) || !bytes.Equal(head.Root, root) {
		t.Fatalf("stored tree (%d, %x) != recomputed (%d, %x)", head.Size, head.Root, len(leaves), root)
	}
	n := head.Size
	for _, idx := range []uint64{0, n / 3, n / 2, n - 1} {
		if n == 0 {
			break
		}
		p, err := s.InclusionProof(ctx, idx, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, n, leaves[idx], p, head.Root); err != nil {
			t.Fatalf("inclusion of %d in %d: %v", idx, n, err)
		}
	}
	for _, m := range []uint64{1, n / 2, n - 1} {
		if m == 0 || m > n {
			continue
		}
		old, err := s.RootAt(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.ConsistencyProof(ctx, m, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, m, n, p, old, head.Root); err != nil {
			t.Fatalf("consistency %d→%d: %v", m, n, err)
		}
	}
	return head
}

func testEvent(id string, i int) store.Event {
	e := store.Event{ID: id, Type: "t", Data: []byte(`{"id":"` + id + `"}`), ReceivedAt: time.Now(), Source: store.SourceWebhook}
	if i%2 == 0 {
		e.Provenance = &store.Provenance{SignatureHeader: "t=1,v1=x", SignedAt: int64(i), SecretFingerprint: "ab", VerifiedAt: time.Now()}
	}
	return e
}

// TestMerkleTreeFollowsAppends: concurrent single and multi-event appends,
// duplicates and a failed request in the same group commits; the stored
// tree equals the tree recomputed from reads, at every step.
func TestMerkleTreeFollowsAppends(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), FileName), Options{})
	checkTree(t, s)
	for round := range 3 {
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 40 {
					id := fmt.Sprintf("evt_%d_%d_%d", round, g, i)
					evs := []store.Event{testEvent(id, i)}
					if i%5 == 0 {
						evs = append(evs, testEvent(id+"b", i+1), testEvent(id, i)) // with an in-request duplicate
					}
					if _, err := s.Append(ctx, fmt.Sprintf("fcaccount-%d", g%3), store.AnyRevision, evs...); err != nil {
						t.Error(err)
						return
					}
					if i%7 == 0 { // a request that fails inside the group commit
						_, _ = s.Append(ctx, fmt.Sprintf("fcaccount-%d", g%3), store.NoStream, testEvent(id+"c", i), testEvent(id+"d", i))
					}
				}
			}()
		}
		wg.Wait()
		checkTree(t, s)
	}
}

// TestMerkleTreeBuiltForExistingLog: a log written before the tree existed
// (schema version 2) gets its tree once, at the first read-write open; a
// read-only open before that answers ErrNotBuilt.
func TestMerkleTreeBuiltForExistingLog(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2*buildChunk/1000 + 37 {
		if _, err := s.Append(ctx, "fcaccount-a", store.AnyRevision, testEvent(fmt.Sprintf("evt_%d", i), i)); err != nil {
			t.Fatal(err)
		}
	}
	// Turn the file back into a version 2 log.
	for _, q := range []string{`DROP TABLE merkle_tree`, `DROP TABLE log_checkpoints`,
		`DELETE FROM meta WHERE key = 'log_id'`, `PRAGMA user_version = 2`} {
		if err := s.execWrite(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	ro := openTest(t, path, Options{ReadOnly: true})
	if _, err := ro.TreeHead(ctx); !errors.Is(err, translog.ErrNotBuilt) {
		t.Fatalf("tree head of a version 2 log: %v, want ErrNotBuilt", err)
	}
	rw := openTest(t, path, Options{})
	checkTree(t, rw)
	if _, err := rw.LogID(ctx); err != nil {
		t.Fatalf("log id after upgrade: %v", err)
	}
	// The built tree keeps growing in the append path.
	if _, err := rw.Append(ctx, "fcaccount-b", store.AnyRevision, testEvent("evt_after", 0)); err != nil {
		t.Fatal(err)
	}
	checkTree(t, ro)
}

// TestMerkleTreeWithOtherWriter: appends through two handles (as two
// processes would) keep one tree.
func TestMerkleTreeWithOtherWriter(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	a := openTest(t, path, Options{})
	b := openTest(t, path, Options{})
	for i := range 100 {
		s := a
		if i%3 == 0 {
			s = b
		}
		if _, err := s.Append(ctx, "fcaccount-x", store.AnyRevision, testEvent(fmt.Sprintf("evt_%d", i), i)); err != nil {
			t.Fatal(err)
		}
	}
	checkTree(t, a)
}

// TestMerkleTreeDetectsRemovedEvents: deleting the newest events (a
// truncated log) makes the tree refuse to answer and appends and read-write
// opens fail rather than extend a tree that no longer matches the log.
// Deleting one in the middle is not seen by those cheap checks, but the
// tree recomputed from the log (as verify does) no longer has the stored
// root.
func TestMerkleTreeDetectsRemovedEvents(t *testing.T) {
	ctx := context.Background()
	fill := func() (*Store, string) {
		path := filepath.Join(t.TempDir(), FileName)
		s := openTest(t, path, Options{})
		for i := range 20 {
			if _, err := s.Append(ctx, "fcaccount-x", store.AnyRevision, testEvent(fmt.Sprintf("evt_%d", i), i)); err != nil {
				t.Fatal(err)
			}
		}
		return s, path
	}
	s, path := fill()
	tamper(t, path, `DELETE FROM events WHERE position > 15`)
	if _, err := s.TreeHead(ctx); !errors.Is(err, translog.ErrCorrupt) {
		t.Fatalf("tree head of a truncated log: %v, want ErrCorrupt", err)
	}
	if _, err := s.Append(ctx, "fcaccount-y", store.AnyRevision, testEvent("evt_new", 0)); !errors.Is(err, translog.ErrCorrupt) {
		t.Fatalf("append to a truncated log: %v, want ErrCorrupt", err)
	}
	if _, err := Open(path, Options{}); !errors.Is(err, translog.ErrCorrupt) {
		t.Fatalf("read-write open of a truncated log: %v, want ErrCorrupt", err)
	}

	s, path = fill()
	before, err := s.TreeHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tamper(t, path, `DELETE FROM events WHERE position = 7`)
	if root, _ := recompute(t, s); bytes.Equal(root, before.Root) {
		t.Fatal("a log with an event removed recomputes to the stored root")
	}
}

// tamper edits the file behind fcaudit's back, as an attacker with write
// access would.
func tamper(t *testing.T, path, q string) {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(path, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("tamper %q: %v", q, err)
	}
}

// TestCrashBetweenAppendsAndCheckpoints SIGKILLs a child that appends
// concurrently and keeps checkpoints of its tree as it goes; after each
// crash the tree equals the log, every kept checkpoint is a prefix of it,
// and a read-write open accepts the file.
func TestCrashBetweenAppendsAndCheckpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	for round := range 3 {
		killAfter(t, "append-checkpoint", path, 400, func(string) {})
		s := openTest(t, path, Options{})
		head := checkTree(t, s)
		cps, err := s.Checkpoints(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, cp := range cps {
			root, err := s.RootAt(ctx, cp.Size)
			if err != nil || !bytes.Equal(root, cp.Root) {
				t.Fatalf("checkpoint of size %d does not match the tree: %v", cp.Size, err)
			}
			p, err := s.ConsistencyProof(ctx, cp.Size, head.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp.Size, head.Size, p, cp.Root, head.Root); err != nil {
				t.Fatalf("checkpoint %d→%d: %v", cp.Size, head.Size, err)
			}
		}
		t.Logf("round %d: %d leaves, %d checkpoints", round, head.Size, len(cps))
		s.Close()
	}
}

// runAppendCheckpoint is the child of TestCrashBetweenAppendsAndCheckpoints.
func runAppendCheckpoint(s *Store) int {
	ctx := context.Background()
	var mu sync.Mutex
	run := fmt.Sprintf("%d", os.Getpid())
	for g := range 16 {
		go func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("evt_%s_%d_%d", run, g, i)
				if _, err := s.Append(ctx, fmt.Sprintf("fcaccount-%d", g%4), store.AnyRevision, testEvent(id, i)); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintln(os.Stdout, id)
				mu.Unlock()
			}
		}()
	}
	for {
		h, err := s.TreeHead(ctx)
		if err == nil {
			err = s.AddCheckpoint(ctx, translog.Checkpoint{Head: h, Note: []byte("unsigned")})
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(4)
		}
	}
}

// TestLogContract runs the translog.Log contract suite.
func TestLogContract(t *testing.T) {
	logtest.Run(t, logtest.Backend{New: func(t testing.TB) (store.Store, translog.Log) {
		s := openTest(t, filepath.Join(t.TempDir(), FileName), Options{})
		return s, s
	}})
}
