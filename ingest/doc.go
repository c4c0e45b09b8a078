// Package ingest turns a Stripe webhook delivery into a stored event: it
// verifies the Stripe-Signature header, decodes the few envelope fields
// fcaudit files events by, and appends the raw body to the event log.
//
// It has no HTTP code: the api package bounds the request body, calls
// Service.Ingest once and maps the sentinel errors (ErrSignatureInvalid,
// ErrTimestampOutsideTolerance, ErrPayloadInvalid, and store's) to HTTP
// statuses. ingest imports the standard library, store, fc (the envelope,
// its parser and stream naming) and stripe-go's webhook package; it reaches
// the log only through the Appender interface.
//
// # Verification policy
//
// Verifier checks the signature first, against every configured secret (any
// may match, so secrets can be rotated; every v1 value of the header is
// tried; v0 is ignored), using stripe-go's HMAC (webhook.ComputeSignature)
// and a constant-time comparison. Only an authenticated request has its
// timestamp checked, and in both directions: |now − t| must not exceed the
// tolerance (default 5m). stripe-go bounds only the past; a far-future t is
// rejected here too so that a signed request cannot stay replayable for
// longer than the tolerance. The header is parsed like stripe-go does, except
// that blanks around elements are tolerated and a missing t is an error.
//
// # Streams
//
// Ingest files an event in the stream fc.StreamFor names (fcaccount-<id>
// for Financial Connections account events, stripe-<object>-<id> for any
// other). Every verified event is stored; none is dropped for its type or API
// version. Redeliveries of a stored event id are reported as duplicates with
// the original coordinates and append nothing.
//
// # Stored record
//
// The body is kept byte for byte (Event.Data). ReceivedAt is the time Ingest
// was called and VerifiedAt the time the signature was accepted, both UTC
// truncated to microseconds; Source is "webhook"; Provenance carries the
// header as received, its t, and the fingerprint of the secret that matched
// (hex of the first 8 bytes of its SHA-256 — never the secret).
package ingest
