// Package api is fcaudit's HTTP surface: the Stripe webhook endpoint
// (POST /webhooks/stripe, which hands the raw body to an Ingester), the /v1
// query API behind bearer-token authentication, /healthz, /readyz and
// /metrics.
//
// Handlers bound the input, make one call, and encode; every error goes
// through one function (classify) that maps it to a status code and the JSON
// envelope {"error":{"type":…,"message":…}}. The signature policy lives in
// package ingest; api only knows ingest's sentinel errors.
//
// The verifiable log's routes (log.go) serve Config.Log: GET
// /v1/log/checkpoint without a token (witnesses fetch it), the inclusion and
// consistency proofs behind it; without a Log they answer 501 not_supported.
//
// api imports store (vocabulary), ingest (error sentinels), record (the
// event JSON) and translog (the verifiable log's interface); never a
// backend. Other packages add /v1 routes through
// Config.Routes.
package api
