package translog

import (
	"context"
	"errors"
	"time"

	"github.com/fcaudit/fcaudit/store"
)

// Errors of Log implementations and their callers.
var (
	// ErrNotSupported: the backend keeps no Merkle tree (both of fcaudit's
	// backends keep one; a store wrapper or a test double may not).
	ErrNotSupported = errors.New("the verifiable log (Merkle tree, checkpoints) is not supported on this event store backend")
	// ErrNoCheckpoint: no checkpoint has been published yet.
	ErrNoCheckpoint = errors.New("no checkpoint has been published yet")
	// ErrTreeSize: a requested tree size is larger than the tree.
	ErrTreeSize = errors.New("tree size out of range")
	// ErrNotBuilt: the log has events the tree does not cover yet (an
	// existing log that no read-write open has indexed; on EventStoreDB, a
	// tree trailing the log further than a read extends it itself).
	ErrNotBuilt = errors.New("the Merkle tree has not been built for this log yet: open it once read-write (fcaudit serve)")
)

// Head is a tree size and its root hash.
type Head struct {
	Size uint64
	Root []byte
}

// Checkpoint is a signed checkpoint as kept in the log: its tree head and
// the signed note's exact text.
type Checkpoint struct {
	Head
	Note        []byte
	PublishedAt time.Time
}

// Log is what a backend implements to be a verifiable log. Leaves are the
// backend's events in store order, each hashed from LeafData. Methods are
// safe for concurrent use and may run in another process than the writer.
type Log interface {
	// LogID is the log's identity, generated once when the log was created
	// or first upgraded; checkpoints name it in their origin line.
	LogID(ctx context.Context) (string, error)
	// TreeHead returns the current size and root; ErrNotBuilt when the
	// tree lags the log.
	TreeHead(ctx context.Context) (Head, error)
	// LeafIndex returns the leaf index of a stored event (as read from the
	// same backend).
	LeafIndex(e *store.RecordedEvent) (uint64, error)
	// InclusionProof proves leaf index in the tree of size size
	// (ErrTreeSize when size exceeds the tree or index >= size).
	InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error)
	// ConsistencyProof proves the tree of size from is a prefix of the tree
	// of size to (ErrTreeSize when to exceeds the tree or from > to).
	ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error)
	// RootAt returns the root of the tree of the given size (ErrTreeSize
	// when larger than the tree).
	RootAt(ctx context.Context, size uint64) ([]byte, error)
	// AddCheckpoint keeps a signed checkpoint in the log. Adding one for a
	// tree size already kept is a no-op. It refuses (ErrTreeSize, or an
	// error wrapping ErrCorrupt for a root that does not match) a
	// checkpoint the tree does not support.
	AddCheckpoint(ctx context.Context, cp Checkpoint) error
	// Checkpoints returns every kept checkpoint, by increasing tree size.
	Checkpoints(ctx context.Context) ([]Checkpoint, error)
	// LatestCheckpoint returns the kept checkpoint of the largest tree size
	// (ErrNoCheckpoint when none).
	LatestCheckpoint(ctx context.Context) (Checkpoint, error)
}

// Of returns s's verifiable log, or ErrNotSupported.
func Of(s any) (Log, error) {
	if l, ok := s.(Log); ok {
		return l, nil
	}
	return nil, ErrNotSupported
}
