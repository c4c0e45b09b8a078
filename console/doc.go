// Package console is the auditor's web console: server-rendered pages
// (html/template) and static assets (embed.FS) served under /console/ by
// fcaudit serve, on the same listener as the API.
//
// Pages: accounts (counts by status, a filterable table), one account
// (status card, status timeline over Stripe created time, history with what
// changed, time travel, chain verification, evidence downloads), one event
// (metadata, provenance, chain hash, payload, exact stored bytes), replay
// runs and system status. Pages work without JavaScript; console.js only
// adds conveniences, and no script is inline (the CSP forbids it).
//
// The console answers with the same domain calls as the JSON API: the
// account_status read model and its time-travel fold (projections), the
// event log (store), chain verification and exports (audit) and the replay
// run log (replay). It declares the narrow interfaces it consumes (Accounts,
// EventLog, Projections) and never calls the API over HTTP.
//
// Sign-in takes one of serve's API tokens and sets a session cookie signed
// with HMAC-SHA-256 under a key kept in the data directory (mode 0600,
// generated once): HttpOnly, SameSite=Strict, Secure over TLS (or behind a
// trusted proxy that says https), with idle and absolute expiry.
//
// console imports store, projections, audit, replay, ingest (the signature
// verifier type), backfill (the reconciliation result type), internal/timearg
// (the API's time parameters) and the standard library; never a backend or
// api (api mounts it as a plain http.Handler).
package console
