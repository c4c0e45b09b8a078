// Package e2e holds fcaudit's end-to-end reliability tests. They build
// bin/fcaudit once per test binary (TestMain, into a temporary directory),
// run it as child processes and talk to it over real loopback HTTP:
//
//   - crash safety: SIGKILL during concurrent ingest, restart, every
//     acknowledged event present and the hash chains intact
//     (FCAUDIT_SOAK_ROUNDS rounds, 3 by default; `make soak` runs 20);
//   - the event log unavailable: a full disk (a small tmpfs) and an
//     EventStoreDB node that stops answering give 503 store_unavailable and a
//     failing /readyz, and serve recovers without a restart;
//   - slow clients: read-header and read timeouts, 1,000 idle connections;
//   - secrets never written to the logs;
//   - graceful shutdown on SIGTERM under load;
//   - hostile traffic (limits_test.go): the connection limit under twice
//     its number of idle connections, the in-flight body budget under
//     2,500 concurrent unsigned 1 MiB bodies (peak RSS from /proc), /v1
//     without a token, bounded and declared query parameters, list page
//     size, and --pprof on loopback only.
//
// The package has no non-test code. Its tests may import any fcaudit package
// (to generate and sign events, or to read a data directory after the
// process exited), the standard library and the module's dependencies. See
// docs/reliability.md.
package e2e
