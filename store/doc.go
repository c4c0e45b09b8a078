// Package store defines fcaudit's event-log vocabulary — Event, RecordedEvent,
// Revision, Position — the Store interface every backend implements, and the
// sentinel errors callers test with errors.Is.
//
// It imports only the standard library (the Financial Connections
// vocabulary, stream naming included, is package fc's). Backends live in sub-packages
// (store/sqlite, store/esdb) which never import each other; store/storetest is
// the contract suite every backend must pass.
//
// # The log
//
// The log is a set of streams. A stream is an ordered sequence of events, each
// with a Revision (0, 1, 2, … within the stream). Every event also has a
// global Position: positions are strictly increasing in store order across
// all streams, so "everything after position P" is a well-defined, gap-tolerant
// cursor for projections, replay and checkpoints. Position 0 is "before the
// first event"; no recorded event has position 0.
//
// Stream names: fc.StreamFor names the streams of Stripe events
// (fcaccount-<fca id> for Financial Connections account events, the category
// fcaudit cares about; stripe-<object>-<id> for other verified Stripe
// events); fcaudit-<name> (SystemStreamPrefix) is for fcaudit's own records
// (e.g. fcaudit-replays).
//
// # Immutability and the hash chain
//
// Nothing updates or deletes an event. Every stream carries a hash chain
// (see ChainHash), computed by the backend inside the append so concurrent
// writers can never fork it.
//
// # Deduplication
//
// Event IDs (Stripe event ids, "evt_…") are unique across the whole log. An
// append of an ID that is already stored appends nothing for it and reports
// the original record's stream, revision and position (Appended.Duplicate).
package store
