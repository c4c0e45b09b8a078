// Package esdbtest is an in-memory EventStoreDB gRPC server for tests: the
// part of the Streams protocol that fcaudit's adapter (store/esdb) and the
// real EventStore-Client-Go/v4 client use, on the generated server stubs of
// the client module, served over real gRPC on loopback.
//
// It follows the KurrentDB 24.10 server as described in
// docs/eventstoredb.md, not what the adapter happens to need: expected
// revisions (exact, no_stream, any, stream_exists) with idempotent
// re-appends, wrong_expected_version as a normal reply, inclusive read
// starts and exclusive subscription starts, filtered $all reads and
// subscriptions with checkpoints and caught_up, soft delete (after which
// no_stream is accepted and the numbering continues) and tombstones, errors
// carried in gRPC trailers, $all start positions checked against record
// boundaries. Global positions are byte-offset-like (never 1, 2, 3), and
// $all holds a few system events so that leaks show.
//
// Appends are refused the way a node refuses them: the write ACL right
// after the options message and MaxAppendSize (data + metadata + 2 × type)
// while events arrive, answered at once (SetRefuseEarly), so a client still
// sending sees a bare io.EOF. Users and ACLs (SetACL): stream ACLs, and $all
// readable by $admins only unless $$$all's metadata grants read.
//
// StartCluster runs several nodes sharing one log with the Gossip service:
// a leader, followers that replicate at once or lag (SetLagging), serve
// reads from their own copy, forward writes, and answer not-leader only to
// calls sending requires-leader; SetLeader elects another node.
//
// Fault hooks: SetUnavailable, SetDelay, FailNth, Stop/Restart, GoSilent
// (a node shutting down), DropSlowSubscribers (Aborted, servers up to
// 23.10), FailNextAppendAfterApply (outcome unknown), HoldAppends (writers
// meeting at one head). It is test support code only: it keeps everything
// in memory and is not a database.
//
// It imports the client module's generated protos and grpc; nothing in
// fcaudit outside tests may import it.
package esdbtest
