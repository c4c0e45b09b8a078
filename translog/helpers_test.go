package translog

import "github.com/transparency-dev/merkle/compact"

func nodeID(level uint, index uint64) compact.NodeID { return compact.NewNodeID(level, index) }
