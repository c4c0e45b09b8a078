package ingest

import (
	"errors"

	"github.com/fcaudit/fcaudit/fc"
)

// Sentinel errors of ingest. The api package maps them to the pinned HTTP
// error types; test with errors.Is. Every error ingest returns wraps at most
// one of them, with a message that is safe to show to the sender: it never
// contains a secret, a computed signature or the body.
var (
	// ErrSignatureInvalid: the Stripe-Signature header is missing or
	// malformed, or no configured secret produced any of its v1 signatures
	// (→ 400 signature_invalid). Where the cause is one of stripe-go's
	// webhook errors (ErrNotSigned, ErrInvalidHeader, ErrNoValidSignature)
	// that error is wrapped too.
	ErrSignatureInvalid = errors.New("signature invalid")

	// ErrTimestampOutsideTolerance: the signature is valid but its timestamp
	// t is further than the tolerance from now, in the past or the future
	// (→ 400 timestamp_outside_tolerance).
	ErrTimestampOutsideTolerance = errors.New("timestamp outside tolerance")

	// ErrPayloadInvalid: the body is correctly signed but is not a Stripe
	// event (→ 400 payload_invalid). It is fc.ErrPayloadInvalid, the error
	// fc.ParseEnvelope wraps.
	ErrPayloadInvalid = fc.ErrPayloadInvalid
)
