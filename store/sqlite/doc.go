// Package sqlite is fcaudit's embedded event log: one SQLite file (FileName
// inside the data directory) in WAL mode, implementing store.Store. It
// imports store, translog (the Merkle tree), the modernc.org/sqlite driver
// (pure Go, no cgo), and internal/atomicfile for its file modes (the log and
// its -wal and -shm are 0600 from creation), never another backend.
//
// # Durability and group commit
//
// Every connection runs with journal_mode=WAL and the writer with
// synchronous=FULL: COMMIT returns only after the WAL is fsynced, so an
// acknowledged append survives a crash or power loss (NORMAL could lose the
// last commits on power loss and is not used). To make that affordable one
// writer goroutine owns the only write connection. It waits for the first
// queued Append, takes whatever else is queued (up to Options.MaxBatch
// events), runs BEGIN IMMEDIATE, applies each request in its own SAVEPOINT
// (so one request's wrong expected revision does not affect the others; a
// one-event request needs none, its single INSERT being atomic),
// COMMITs once — one fsync for the whole batch — and only then answers every
// request. If the commit fails, every request of the batch fails with an
// error wrapping store.ErrUnavailable and nothing of it was stored.
//
// WAL checkpoints run mostly in a background goroutine on a connection of
// their own, so appenders do not wait while pages are copied into the
// database file; the writer finishes the last few frames itself when the
// WAL reaches 64 MiB, and SQLite then starts the WAL over (see
// checkpoint.go).
//
// The writer's and the checkpointer's connections use the write-combining
// VFS of internal/sqlitewc: SQLite's many small writes of one commit (two
// per WAL frame) or one checkpoint reach the file as a few large ones,
// always before the fsync that makes them durable. Options.PlainVFS
// switches it off (SQLite's default VFS: slower, equally durable).
//
// Positions are the table's INTEGER PRIMARY KEY: with a single writer at a
// time they are 1, 2, 3, … in commit order, so tailing with
// "position > last" never misses an event.
//
// # Multiple processes
//
// Other processes (replay, verify, export, backfill) may open the same file
// while serve writes: read-only (Options.ReadOnly, mode=ro) or read-write.
// SQLite's own file locking serialises writers across processes; every
// connection has a busy_timeout, so a second writer waits instead of failing.
// Stream heads are read from the database inside the write
// transaction (and kept only until its COMMIT), never from an earlier
// transaction, so hash chains stay intact when two processes append to the
// same stream. Subscriptions see this process's commits at once — handed
// over in memory by the writer when the subscriber is caught up (see
// tail.go), read from the file otherwise — and other processes' commits
// within Options.PollInterval.
// Reads are paged (at most 10000 events a query) because a long-lived read
// snapshot stops the WAL from being reset. The file must be on a local
// filesystem (WAL uses shared memory).
//
// # The Merkle tree
//
// Store is also a translog.Log: every event is a leaf of an RFC 6962 Merkle
// tree (leaf index = position - 1). The writer computes each inserted
// event's leaf hash in the append and, before COMMIT, extends the tree and
// writes its frontier and changed tiles in the same transaction, so the tree
// and the log can never disagree after a crash. Proofs are read from the
// tiles (merkle.go); checkpoints are kept in log_checkpoints.
//
// # Backups
//
// Never copy the live file (or only it without its -wal): the copy can be
// torn or miss committed events. Use VACUUM INTO, e.g.
//
//	sqlite3 events.db "VACUUM INTO '/backup/events-2025-01-01.db'"
//
// or SQLite's online backup API; both produce a consistent snapshot while
// serve keeps writing.
//
// # Errors
//
// Storage failures — disk full, I/O errors, a read-only or missing file, a
// lock held longer than the busy timeout, a file that is not a database —
// wrap store.ErrUnavailable and keep SQLite's message. Ping sends a tiny
// write through the writer queue, so it fails exactly when appends would and
// recovers when the cause clears.
package sqlite
