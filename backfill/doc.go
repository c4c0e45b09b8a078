// Package backfill reconciles the event log with Stripe's Events API: it
// lists the Financial Connections account events Stripe still has (Stripe
// keeps 30 days), finds those the log lacks — webhooks that were never
// delivered, or arrived while fcaudit was down — and appends them with
// source "backfill".
//
// # What is stored
//
// A backfilled event's body is the event object exactly as it appeared in
// the Events API list page (the bytes between its braces, taken from the
// page's raw response, never re-serialised). That is Stripe's API rendering
// of the event, not the webhook body: the two carry the same id, type,
// created, api_version and data.object, but may differ in whitespace, key
// order and fields such as pending_webhooks. Both are "the event as Stripe
// sent it" to fcaudit; body_sha256 covers the stored bytes. Provenance has no
// signature (the Events API response is authenticated by TLS and the API
// key); its note names the fingerprint of the key (ingest.Fingerprint),
// never the key.
//
// Envelope parsing and stream naming are fc's, as for ingest (fc.ParseEnvelope,
// fc.StreamFor), so a backfilled event lands in the same stream, with the
// same metadata, as its webhook would have.
//
// # Idempotence
//
// An event id is stored once, whichever way it arrives first: Run skips ids
// the log already holds (store EventByID), and the store's own duplicate
// detection in Append is the final word when a webhook lands between the
// check and the append. Running backfill twice appends nothing the second
// time; a webhook redelivered after a backfill is answered as a duplicate.
//
// # Order
//
// Run lists everything first (the Events API returns newest first), then
// appends the missing events oldest first (by created, ties in Stripe's
// order), one Append per event, so a stream's revisions follow event time
// where possible and a failure leaves a clean prefix. Only the missing
// events are held in memory.
//
// # Imports
//
// backfill imports the standard library, store (vocabulary), ingest
// (envelope, stream naming, fingerprints) and stripe-go's event client; the
// Reconciler (serve --reconcile-every) adds the Prometheus client; api
// serves its Status as GET /v1/reconciliation. It never imports a store
// backend nor api; the caller hands it a Log.
package backfill
