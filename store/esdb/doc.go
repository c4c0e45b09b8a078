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
// event that names the stream the event belongs to. The claim is written
// with expected revision no_stream, so exactly one writer in the cluster
// wins it: that is the atomic "this id is taken" step, done before the data
// append. A writer that loses the claim looks the id up in the claimed
// stream (streams are short) and reports the original as a duplicate. A claim
// whose data append never happened (a crash in between, or an append that
// failed) stays "pending"; the next append of that id to the same stream
// finds it, scans the stream, and completes it. EventByID reads the claim and
// then the claimed stream. Claim streams start with "fcaudit_id-", which the
// $all filter (fcaccount-, stripe-, fcaudit-) excludes, so they never reach
// readers.
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
// unreachable or timing-out nodes become store.ErrUnavailable. A failed
// discovery closes a v4 client for good, so the adapter replaces its client
// when it sees that and recovers when the node returns.
//
// Imports: store, the v4 client, grpc status codes, uuid; never another
// backend.
package esdb
