// Package esdbtest is an in-memory EventStoreDB gRPC server for tests: the
// part of the Streams protocol that fcaudit's adapter (store/esdb) and the
// real EventStore-Client-Go/v4 client use, on the generated server stubs of
// the client module, served over real gRPC on loopback.
//
// It follows the server semantics in docs/eventstoredb.md: expected
// revisions (exact, no_stream, any, stream_exists) with idempotent
// re-appends, wrong_expected_version as a normal reply, inclusive read
// starts and exclusive subscription starts, filtered $all reads and
// subscriptions with checkpoints and caught_up, soft delete and tombstones,
// errors carried in gRPC trailers. Global positions are byte-offset-like
// (never 1, 2, 3), and $all holds a few system events so that leaks show.
//
// Fault hooks (SetUnavailable, SetDelay, FailNth, Stop/Restart) let tests
// drive the adapter's error handling. It is test support code only: it keeps
// everything in memory and is not a database.
//
// It imports the client module's generated protos and grpc; nothing in
// fcaudit outside tests may import it.
package esdbtest
