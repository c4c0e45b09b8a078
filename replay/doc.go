// Package replay reprocesses stored history: it selects events of the log
// (Selection, evaluated by the store), and sends them to a target — an HTTP
// endpoint that verifies Stripe signatures (HTTPSender, driven by Deliver),
// NDJSON of stored records (WriteNDJSON), or a read model rebuilt through a
// Rebuilder — or only lists the plan (WritePlan).
//
// # Delivery
//
// Deliver runs a bounded pool of workers over per-stream queues: events of
// one stream (one FC account) are sent strictly one at a time and in store
// order, events of different streams concurrently. A token bucket spaces
// requests (Options.Rate, retries included). Failed attempts are retried with
// exponential backoff and full jitter on 5xx, 429 and network errors or
// timeouts, honouring Retry-After; other statuses fail at once. When an
// event fails for good, the later events of its stream are not sent (they
// are counted as skipped): delivering them out of order would be worse, and
// a rerun with the same checkpoint retries them all in order.
//
// # Checkpoints
//
// A checkpoint file holds the low-water position (every selected event at
// or below it succeeded) and the positions above it that succeeded too. A
// rerun reads from the low-water mark and skips the recorded positions, so it
// never resends an event that succeeded and never skips one that did not.
// The file is replaced atomically (temp file, fsync, rename) at most every
// Options.CheckpointInterval and when the run ends or is cancelled. A hard
// kill can lose the progress since the last write: those events are sent
// again (at least once, like Stripe itself).
//
// # Audit log
//
// Every run (not a dry run) is appended as one event of type
// "fcaudit.replay.completed" to the stream "fcaudit-replays" with source
// "fcaudit" (RunRecord); RunLog reads them back (api serves them as GET
// /v1/replays). Selections always exclude fcaudit's own records.
//
// replay imports store (vocabulary), record (the event JSON) and stripe-go's
// webhook package (signatures); never a store backend, nor api.
package replay
