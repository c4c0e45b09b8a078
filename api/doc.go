// Package api is fcaudit's HTTP surface: the Stripe webhook endpoint
// (POST /webhooks/stripe, which hands the raw body to an Ingester), the /v1
// query API behind bearer-token authentication, /healthz, /readyz and
// /metrics.
//
// Every route and handler lives here; the domain packages expose plain
// methods, which api consumes through narrow interfaces it declares
// (Accounts, ReplayRuns, AccountVerifier, Reconciliation) and which cmd wires
// into Config. A route whose dependency is not configured is not registered.
//
// Handlers bound the input, make one call, and encode; every error goes
// through one function (classify) that maps it, domain sentinels included,
// to a status code and the JSON envelope {"error":{"type":…,"message":…}}.
// Every list route reads its limit and starting_after with parsePage and
// answers through page (Stripe's list envelope, List), which encodes items
// one at a time and ends a page at MaxListBytes with has_more. The
// signature policy lives in package ingest; api only knows ingest's
// sentinel errors.
//
// Hostile traffic is bounded here (docs/reliability.md has the threat
// model): /v1 is authenticated before any route is matched; every /v1
// route declares its query parameters, with bounds, in routeParams; Open's
// listener caps open connections, shedding the oldest idle one at the
// limit (connLimiter); webhook bodies reserve their bytes from a budget
// before being read (byteBudget), and are refused unread beyond it.
//
// openapi.yaml describes every route (OpenAPI 3.1); it is embedded and
// served, with its JSON form, at GET /v1/openapi.yaml and /v1/openapi.json.
// Every test of this package serves through a check of its requests and
// answers against it (docs/api.md): change a route and the document together.
//
// The verifiable log's routes (log.go) serve Config.Log: GET
// /v1/log/checkpoint without a token (witnesses fetch it), the inclusion and
// consistency proofs behind it; without a Log they answer 501 not_supported.
//
// api imports store (vocabulary), ingest (error sentinels), record (the
// event JSON), translog (the verifiable log's interface), and projections,
// replay, audit and backfill for the types of the interfaces above; never a
// backend. It is the only package that
// imports gorilla/mux.
package api
