// Package projections turns the event log into read models: folds over
// recorded events, each with a checkpoint (the last global position applied)
// kept in the same SQLite transaction as the read model's rows, so a crash
// never applies an event twice or skips one.
//
// The one read model today is account_status: every Financial Connections
// account's current status (AccountStatus). Its rules live in one place,
// AccountStatus.Apply; the live projection, rebuilds, the API's as_of /
// known_at time travel (FoldStream over one stream, a page at a time) and
// Account's read-your-writes catch-up all use it.
//
// Read models live in their own SQLite file in the data directory
// (FileName), separate from the event log, on both backends: each serve keeps
// its own. A Runner follows the log through store.Store's Subscribe (catch
// up, then live, including events other processes append), reports its lag
// (Status), rebuilds a read model into a fresh table and swaps it in
// atomically (Rebuild), and answers account queries (Accounts, Account,
// AccountAt), which api serves as GET /v1/accounts and /v1/accounts/{id}.
//
// projections imports store (vocabulary), jsonscan (the body scanner's
// lexer) and atomicfile (readmodels.db and its -wal and -shm are 0600 from
// creation); never a store backend, nor api.
package projections
