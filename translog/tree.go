package translog

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
)

// TileHeight is how many tree levels one persisted tile spans. A tile holds
// up to TileWidth hashes of one stored level (a multiple of TileHeight); the
// TileHeight-1 levels above it are recomputed on read from at most TileWidth/2
// hashes. Storing every TileHeight-th level keeps the writes per append to
// about one tile row rather than two node rows per event, and keeps a node
// read to one row.
const (
	TileHeight = 4
	TileWidth  = 1 << TileHeight
)

// HashSize is the size of every tree hash (SHA-256).
const HashSize = sha256.Size

// TileID names a tile: the hashes of tree level Level*TileHeight with
// indices Index*TileWidth to Index*TileWidth+TileWidth-1.
type TileID struct {
	Level uint
	Index uint64
}

// Tile is a tile's identity and its hashes, concatenated, left to right.
// Only the rightmost tile of a level can hold fewer than TileWidth hashes.
type Tile struct {
	TileID
	Hashes []byte
}

// ErrCorrupt reports persisted tree state that contradicts itself.
var ErrCorrupt = errors.New("merkle tree state is corrupt")

var factory = &compact.RangeFactory{Hash: NodeHash}

// EmptyRoot is the root of the empty tree, SHA-256 of nothing.
func EmptyRoot() []byte { s := sha256.Sum256(nil); return s[:] }

// Tree is the writer's view of the tree: the compact-range frontier (the
// roots of the perfect subtrees covering every leaf) and the rightmost tile
// of every stored level. Appending reports the tiles that changed, which the
// backend writes with the frontier in the transaction that stores the
// leaves. A Tree is not safe for concurrent use.
type Tree struct {
	rng  *compact.Range
	edge []Tile // edge[l]: the rightmost tile of tile level l
	// dirty holds the tiles changed since TakeDirty, by id; a tile that
	// filled up and left the edge keeps its full contents here.
	dirty map[TileID][]byte
}

// NewTree returns the empty tree.
func NewTree() *Tree {
	return &Tree{rng: factory.NewEmptyRange(0), dirty: map[TileID][]byte{}}
}

// LoadTree rebuilds a Tree from persisted state: size, the frontier (as
// Frontier returned it) and, through read, the rightmost, partially filled
// tile of every stored level that has one.
func LoadTree(size uint64, frontier []byte, read ReadTileFunc) (*Tree, error) {
	rng, err := frontierRange(size, frontier)
	if err != nil {
		return nil, err
	}
	t := &Tree{rng: rng, dirty: map[TileID][]byte{}}
	for l := uint(0); l*TileHeight < 64; l++ {
		cnt := size >> (l * TileHeight)
		if cnt == 0 {
			break
		}
		id := TileID{Level: l, Index: cnt / TileWidth}
		edge := Tile{TileID: id}
		if k := cnt % TileWidth; k != 0 {
			b, err := read(id)
			if err != nil {
				return nil, err
			}
			if len(b) < int(k)*HashSize {
				return nil, fmt.Errorf("%w: tile %d/%d has %d bytes, tree size %d needs %d", ErrCorrupt, id.Level, id.Index, len(b), size, k*HashSize)
			}
			edge.Hashes = append(make([]byte, 0, TileWidth*HashSize), b[:k*HashSize]...)
		}
		t.edge = append(t.edge, edge)
	}
	return t, nil
}

// Size is the number of leaves.
func (t *Tree) Size() uint64 { return t.rng.End() }

// Root is the tree's root hash (EmptyRoot for the empty tree).
func (t *Tree) Root() []byte {
	if t.rng.End() == 0 {
		return EmptyRoot()
	}
	r, _ := t.rng.GetRootHash(nil) // cannot fail: the range starts at 0
	return r
}

// Frontier returns the frontier hashes concatenated, left to right: the
// form LoadTree reads.
func (t *Tree) Frontier() []byte {
	hs := t.rng.Hashes()
	b := make([]byte, 0, len(hs)*HashSize)
	for _, h := range hs {
		b = append(b, h...)
	}
	return b
}

// Append adds a leaf hash (LeafHash of the leaf data) as leaf Size().
func (t *Tree) Append(leafHash []byte) {
	_ = t.rng.Append(leafHash, t.visit) // Append fails only for mismatched factories
}

func (t *Tree) visit(id compact.NodeID, hash []byte) {
	if id.Level%TileHeight != 0 {
		return
	}
	l := id.Level / TileHeight
	tid := TileID{Level: l, Index: id.Index / TileWidth}
	for uint(len(t.edge)) <= l {
		t.edge = append(t.edge, Tile{TileID: TileID{Level: uint(len(t.edge))}})
	}
	e := &t.edge[l]
	if e.TileID != tid {
		// The previous tile of this level is complete; start the next.
		e.TileID, e.Hashes = tid, make([]byte, 0, TileWidth*HashSize)
	}
	e.Hashes = append(e.Hashes, hash...)
	t.dirty[tid] = e.Hashes
}

// TakeDirty returns the tiles changed since the last call (copies of their
// full contents) and forgets them.
func (t *Tree) TakeDirty() []Tile {
	out := make([]Tile, 0, len(t.dirty))
	for id, h := range t.dirty {
		out = append(out, Tile{TileID: id, Hashes: append([]byte(nil), h...)})
	}
	clear(t.dirty)
	return out
}

// ReadTileFunc returns the stored hashes of a tile (possibly more than a
// caller needs: tiles only grow). A missing tile is an error.
type ReadTileFunc func(id TileID) ([]byte, error)

// nodeReader reads perfect-subtree hashes from tiles, caching the tiles it
// read for the duration of one proof.
type nodeReader struct {
	read  ReadTileFunc
	tiles map[TileID][]byte
}

// node returns the hash of the perfect subtree id, which must lie within
// the persisted tree.
func (r *nodeReader) node(id compact.NodeID) ([]byte, error) {
	l, sub := id.Level/TileHeight, id.Level%TileHeight
	first := id.Index << sub // first index on the stored level
	tid := TileID{Level: l, Index: first / TileWidth}
	b, ok := r.tiles[tid]
	if !ok {
		var err error
		if b, err = r.read(tid); err != nil {
			return nil, err
		}
		r.tiles[tid] = b
	}
	off := int(first%TileWidth) * HashSize
	n := 1 << sub
	if len(b) < off+n*HashSize {
		return nil, fmt.Errorf("%w: tile %d/%d has %d bytes, node %d/%d needs %d", ErrCorrupt, tid.Level, tid.Index, len(b), id.Level, id.Index, off+n*HashSize)
	}
	hs := make([][]byte, n)
	for i := range hs {
		hs[i] = b[off+i*HashSize : off+(i+1)*HashSize]
	}
	for len(hs) > 1 {
		for i := 0; i < len(hs)/2; i++ {
			hs[i] = NodeHash(hs[2*i], hs[2*i+1])
		}
		hs = hs[:len(hs)/2]
	}
	return append([]byte(nil), hs[0]...), nil
}

func (r *nodeReader) nodes(ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		h, err := r.node(id)
		if err != nil {
			return nil, err
		}
		out[i] = h
	}
	return out, nil
}

// InclusionProof returns the RFC 6962 inclusion proof of leaf index in the
// tree of the given size, from tiles persisted for a tree of at least that
// size.
func InclusionProof(read ReadTileFunc, index, size uint64) ([][]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("leaf %d is not in a tree of size %d", index, size)
	}
	ns, err := proofNodes(true, index, size)
	if err != nil {
		return nil, err
	}
	return rehash(read, ns)
}

// ConsistencyProof returns the RFC 6962 consistency proof between trees of
// sizes from and to (from <= to), from tiles persisted for a tree of at
// least size to.
func ConsistencyProof(read ReadTileFunc, from, to uint64) ([][]byte, error) {
	if from > to {
		return nil, fmt.Errorf("consistency proof from %d to %d: from is larger", from, to)
	}
	ns, err := proofNodes(false, from, to)
	if err != nil {
		return nil, err
	}
	return rehash(read, ns)
}

// RootAt returns the root of the tree's first size leaves, from tiles
// persisted for a tree of at least that size.
func RootAt(read ReadTileFunc, size uint64) ([]byte, error) {
	if size == 0 {
		return EmptyRoot(), nil
	}
	r := &nodeReader{read: read, tiles: map[TileID][]byte{}}
	hs, err := r.nodes(compact.RangeNodes(0, size, nil))
	if err != nil {
		return nil, err
	}
	rng, err := factory.NewRange(0, size, hs)
	if err != nil {
		return nil, err
	}
	return rng.GetRootHash(nil)
}

// RootFromFrontier returns the root of a tree given its size and frontier
// (as Tree.Frontier returns it).
func RootFromFrontier(size uint64, frontier []byte) ([]byte, error) {
	if size == 0 {
		return EmptyRoot(), nil
	}
	rng, err := frontierRange(size, frontier)
	if err != nil {
		return nil, err
	}
	return rng.GetRootHash(nil)
}

// frontierRange is the compact range of a tree's size leaves from its
// frontier (as Frontier returns it), holding copies of the hashes.
func frontierRange(size uint64, frontier []byte) (*compact.Range, error) {
	n := compact.RangeSize(0, size)
	if len(frontier) != n*HashSize {
		return nil, fmt.Errorf("%w: frontier of tree size %d has %d bytes, want %d", ErrCorrupt, size, len(frontier), n*HashSize)
	}
	hashes := make([][]byte, n)
	for i := range hashes {
		hashes[i] = append([]byte(nil), frontier[i*HashSize:(i+1)*HashSize]...)
	}
	rng, err := factory.NewRange(0, size, hashes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return rng, nil
}
