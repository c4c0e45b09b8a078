// Package esdb is fcaudit's EventStoreDB backend: a store.Store on the
// EventStore-Client-Go/v4 client, for operators who run the log on an
// EventStoreDB cluster with several `serve` replicas in front.
//
// # Mapping
//
// Each fcaudit stream is an EventStoreDB stream of the same name. An event's
// EventStoreDB id is the name-based (v5) UUID of its Stripe id in
// EventIDNamespace, its data the raw body (application/json), its type the
// Stripe type, and its custom metadata a JSON object with fcaudit's fields
// (Stripe id, received_at in µs, created, livemode, api_version,
// connect_account, source, provenance, body_sha256, chain_hash).
//
// # Deduplication and lookup by id
//
// Every Stripe id owns a claim stream, ClaimStreamPrefix+id, holding one
// event that names the stream the event belongs to and that stream's
// revision when the claim was written ("after"). The claim is written with
// expected revision no_stream, so exactly one writer in the cluster wins it:
// that is the atomic "this id is taken" step, done before the data append.
// A claim only counts as won at revision 0: a no_stream append to a
// soft-deleted claim stream is accepted at a later revision. A writer that
// loses the claim looks the id up in the claimed stream from after+1 on
// (the event cannot be earlier, since the head was read before claiming),
// so lookups read a few events, not the stream. A claim whose data append
// never happened (a crash in between, or an append that failed) stays
// "pending"; the next append of that id to the same stream finds it, scans
// the stream from after+1, and completes it. EventByID reads the claim and
// then the claimed stream from after+1. Claim streams start with
// "fcaudit_id-", which the $all filter (fcaccount-, stripe-, fcaudit-)
// excludes, so they never reach readers.
//
// Two writers that append the same event at the same head both get the
// node's idempotent success. Each append request carries a random nonce in
// the metadata; the read-back tells which writer's bytes were stored, and
// only that one reports duplicate: false.
//
// A node outcome that is unknown (a timeout after the write committed)
// is reported as store.ErrUnavailable; the caller's retry finds the claim
// and reports the stored event as a duplicate, or completes the pending
// claim: nothing is stored twice or lost.
//
// # Appends and the hash chain
//
// Appends always carry an exact expected revision on the wire: the stream's
// head is read (backwards, one event) before claiming, chain values are
// computed from it, and the append expects that revision. A conflict re-reads
// the events appended since, drops the ids they contain, recomputes the chain
// and retries (bounded, jittered) when the caller asked store.AnyRevision,
// and returns *store.WrongRevisionError when it asked an exact revision.
// Because the head is read before the claim, any concurrent writer of the
// same id can only have appended it after that head, so the conflict re-read
// always sees it: nothing is lost, stored twice, or forked.
//
// # Positions
//
// store.Position = commit position + 1 (so no event has 0); resuming
// from p sends {commit: p-1, prepare: p-1}. Modern servers have
// commit == prepare for every event; if a server reports otherwise the
// adapter logs a warning once and keeps using the commit position.
//
// # Reads and subscriptions
//
// ReadAll and Subscribe use a catch-up subscription to $all with a
// server-side stream-prefix filter; the rest of store.Filter is applied
// client side, and system events ($-types or $-streams) are dropped
// defensively. ReadAll stops at caught_up, or at the first event or
// checkpoint at or past the $all head read when it started.
//
// # Failures
//
// Client errors are translated with errors.As(*esdb.Error) and Code() (or
// the raw gRPC status for subscription drops) into store's sentinels:
// unreachable or timing-out nodes become store.ErrUnavailable, the node's
// append-size refusal store.ErrTooLarge. Every client call, subscription
// starts included, runs in a goroutine under Options.Timeout: the v4.2.0
// client can block forever after a failed rediscovery, so a call that times
// out, or finds the client closed, replaces the client. A bare io.EOF from
// an append (a node refusing before reading the whole request) is probed
// with an event-less append for the node's real answer. Reads that must see
// acknowledged writes send requires-leader as outgoing metadata.
//
// # The verifiable log
//
// The Store is a translog.Log whose Merkle tree trails the log: it is kept
// in the stream TreeStream, extended by RunLogBuilder (serve) and by reads
// that need it, with expected revisions so that concurrent replicas agree;
// signed checkpoints are kept in CheckpointStream (see translog.go and
// docs/eventstoredb.md).
//
// Imports: store, translog, the v4 client, grpc status codes, uuid; never
// another backend.
package esdb
