package translog

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
)

// memTiles persists a Tree's dirty tiles the way a backend does.
type memTiles map[TileID][]byte

func (m memTiles) save(t *Tree) {
	for _, tl := range t.TakeDirty() {
		m[tl.TileID] = tl.Hashes
	}
}

func (m memTiles) read(id TileID) ([]byte, error) {
	b, ok := m[id]
	if !ok {
		return nil, ErrCorrupt
	}
	return b, nil
}

// TestKnownAnswers checks roots and proofs against RFC 6962 vectors from
// the library's testonly package.
func TestKnownAnswers(t *testing.T) {
	leaves := testonly.LeafInputs()
	roots := testonly.RootHashes()
	tr := NewTree()
	tiles := memTiles{}
	if !bytes.Equal(tr.Root(), testonly.EmptyRootHash()) {
		t.Fatalf("empty root %x", tr.Root())
	}
	for i, l := range leaves {
		h := LeafHash(l)
		tr.Append(h[:])
		tiles.save(tr)
		if got, want := tr.Root(), roots[i+1]; !bytes.Equal(got, want) {
			t.Fatalf("root of size %d = %x, want %x", i+1, got, want)
		}
	}
	nodes := testonly.NodeHashes()
	for level, row := range nodes {
		for idx, want := range row {
			r := &nodeReader{read: tiles.read, tiles: map[TileID][]byte{}}
			got, err := r.node(nodeID(uint(level), uint64(idx)))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("node %d/%d = %x, %v; want %x", level, idx, got, err, want)
			}
		}
	}
	for size := uint64(1); size <= uint64(len(leaves)); size++ {
		root, err := RootAt(tiles.read, size)
		if err != nil || !bytes.Equal(root, roots[size]) {
			t.Fatalf("RootAt(%d) = %x, %v", size, root, err)
		}
	}
	// RFC 6962 inclusion and consistency vectors, via the library's
	// reference tree.
	ref := testonly.New(rfc6962.DefaultHasher)
	ref.AppendData(leaves...)
	for size := uint64(1); size <= ref.Size(); size++ {
		for i := uint64(0); i < size; i++ {
			got, err := InclusionProof(tiles.read, i, size)
			want, _ := ref.InclusionProof(i, size)
			if err != nil || !equalProofs(got, want) {
				t.Fatalf("inclusion(%d,%d) = %x, %v; want %x", i, size, got, err, want)
			}
		}
		for m := uint64(0); m <= size; m++ {
			got, err := ConsistencyProof(tiles.read, m, size)
			want, _ := ref.ConsistencyProof(m, size)
			if err != nil || !equalProofs(got, want) {
				t.Fatalf("consistency(%d,%d) = %x, %v; want %x", m, size, got, err, want)
			}
		}
	}
}

func equalProofs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// TestRandomLogsProofs is the property test: for random logs appended in
// random batches (each batch persisted, the tree reloaded from persisted
// state now and then), roots match the reference tree, and random
// inclusion and consistency proofs verify while tampered ones fail.
func TestRandomLogsProofs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	hasher := rfc6962.DefaultHasher
	for round := 0; round < 20; round++ {
		n := 1 + rng.IntN(700)
		ref := testonly.New(hasher)
		tr := NewTree()
		tiles := memTiles{}
		for ref.Size() < uint64(n) {
			batch := 1 + rng.IntN(40)
			for j := 0; j < batch && ref.Size() < uint64(n); j++ {
				var data [8]byte
				putUint64(data[:], rng.Uint64())
				ref.AppendData(data[:])
				h := LeafHash(data[:])
				tr.Append(h[:])
			}
			tiles.save(tr)
			if rng.IntN(3) == 0 { // reload as a restarted writer would
				var err error
				if tr, err = LoadTree(tr.Size(), tr.Frontier(), tiles.read); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(tr.Root(), ref.Hash()) {
				t.Fatalf("round %d size %d: root differs from the reference", round, tr.Size())
			}
		}
		size := ref.Size()
		for k := 0; k < 30; k++ {
			to := 1 + rng.Uint64N(size)
			from := rng.Uint64N(to + 1)
			idx := rng.Uint64N(to)
			rootTo, err := RootAt(tiles.read, to)
			if err != nil || !bytes.Equal(rootTo, ref.HashAt(to)) {
				t.Fatalf("RootAt(%d): %v", to, err)
			}
			rootFrom := ref.HashAt(from)
			incl, err := InclusionProof(tiles.read, idx, to)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(hasher, idx, to, ref.LeafHash(idx), incl, rootTo); err != nil {
				t.Fatalf("inclusion %d in %d: %v", idx, to, err)
			}
			cons, err := ConsistencyProof(tiles.read, from, to)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyConsistency(hasher, from, to, cons, rootFrom, rootTo); err != nil {
				t.Fatalf("consistency %d→%d: %v", from, to, err)
			}
			// Tampering: flip a bit of a proof hash, or claim another root.
			if len(incl) > 0 {
				bad := cloneProof(incl)
				bad[rng.IntN(len(bad))][0] ^= 1
				if proof.VerifyInclusion(hasher, idx, to, ref.LeafHash(idx), bad, rootTo) == nil {
					t.Fatalf("tampered inclusion proof %d in %d verified", idx, to)
				}
			}
			other := sha256.Sum256([]byte("another leaf"))
			if proof.VerifyInclusion(hasher, idx, to, hasher.HashLeaf(other[:]), incl, rootTo) == nil {
				t.Fatal("inclusion of a different leaf verified")
			}
			if len(cons) > 0 {
				bad := cloneProof(cons)
				bad[rng.IntN(len(bad))][5] ^= 0x80
				if proof.VerifyConsistency(hasher, from, to, bad, rootFrom, rootTo) == nil {
					t.Fatalf("tampered consistency proof %d→%d verified", from, to)
				}
			}
			if from > 0 && from < to {
				forged := append([]byte(nil), rootFrom...)
				forged[0] ^= 1
				if proof.VerifyConsistency(hasher, from, to, cons, forged, rootTo) == nil {
					t.Fatalf("consistency %d→%d verified against a forged old root", from, to)
				}
			}
		}
	}
}

func cloneProof(p [][]byte) [][]byte {
	out := make([][]byte, len(p))
	for i, h := range p {
		out[i] = append([]byte(nil), h...)
	}
	return out
}

func putUint64(b []byte, v uint64) {
	for i := 0; i < 8; i++ {
		b[i] = byte(v >> (8 * i))
	}
}

func TestLoadTreeRejectsShortState(t *testing.T) {
	tr := NewTree()
	for i := 0; i < 21; i++ {
		h := LeafHash([]byte{byte(i)})
		tr.Append(h[:])
	}
	if _, err := LoadTree(tr.Size(), tr.Frontier()[:HashSize], memTiles{}.read); err == nil {
		t.Fatal("short frontier accepted")
	}
	if _, err := LoadTree(tr.Size(), tr.Frontier(), memTiles{}.read); err == nil {
		t.Fatal("missing edge tile accepted")
	}
}
