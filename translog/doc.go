// Package translog makes fcaudit's global event log a verifiable log in the
// sense of RFC 6962 / RFC 9162: a Merkle tree with one leaf per stored event,
// in store (position) order, whose root and proofs anyone can check with
// github.com/transparency-dev/merkle and nothing of fcaudit.
//
// It defines the leaf data (LeafData: the exact bytes hashed as a leaf, a
// canonical JSON object documented in docs/audit.md), a Tree that keeps the
// compact-range frontier and the right-edge hash tiles a backend persists in
// the same transaction as the appends they cover (the embedded store) or
// shortly after them (EventStoreDB), and the read side that
// answers inclusion and consistency proofs from persisted tiles (Proofs).
// The Log interface is what a backend implements to offer all of it; a
// backend that does not answers the commands and routes with
// ErrNotSupported.
//
// Signed checkpoints (the note format) live in the checkpoint subpackage.
//
// translog imports the standard library, package store (itself stdlib-only)
// and github.com/transparency-dev/merkle.
package translog
