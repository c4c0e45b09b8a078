package translog

import (
	"github.com/transparency-dev/merkle/proof"
)

func proofNodes(inclusion bool, a, b uint64) (proof.Nodes, error) {
	if inclusion {
		return proof.Inclusion(a, b)
	}
	return proof.Consistency(a, b)
}

func rehash(read ReadTileFunc, ns proof.Nodes) ([][]byte, error) {
	r := &nodeReader{read: read, tiles: map[TileID][]byte{}}
	hs, err := r.nodes(ns.IDs)
	if err != nil {
		return nil, err
	}
	return ns.Rehash(hs, NodeHash)
}
