package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/logkey"
	"github.com/fcaudit/fcaudit/store"
)

// Appender is the part of the event log ingest needs: store.Store satisfies
// it. Append must be safe for concurrent use; see store.Store.Append for the
// duplicate and error contract. Append receives the request body as Data
// without a copy: an Appender that keeps Data after Append returns must copy
// it.
type Appender interface {
	Append(ctx context.Context, stream string, expected store.ExpectedRevision, events ...store.Event) ([]store.Appended, error)
}

// Outcomes reported to ServiceOptions.Observe (and used as a metrics label).
const (
	OutcomeStored           = "stored"
	OutcomeDuplicate        = "duplicate"
	OutcomeSignatureInvalid = "signature_invalid"
	OutcomeTimestampOutside = "timestamp_outside_tolerance"
	OutcomePayloadInvalid   = "payload_invalid"
	OutcomePayloadTooLarge  = "payload_too_large"
	OutcomeStoreUnavailable = "store_unavailable"
	OutcomeError            = "error"
)

// Outcome describes one Ingest call for metrics.
type Outcome struct {
	// Result is one of the Outcome* constants.
	Result string
	// EventType is the event's type, "" when the body was not parsed (a
	// rejected signature: unauthenticated input is never used as a label).
	EventType string
	// Duration is the wall time of the Ingest call.
	Duration time.Duration
}

// ServiceOptions configure a Service. The zero value is usable.
type ServiceOptions struct {
	// Now returns the current time for ReceivedAt and VerifiedAt; nil means
	// time.Now.
	Now func() time.Time
	// Logger receives one debug record per call; nil discards.
	Logger *slog.Logger
	// Observe, when set, is called once per Ingest call, synchronously, from
	// the calling goroutine; it must be safe for concurrent use and fast.
	Observe func(Outcome)
}

// Service verifies, parses and stores Stripe webhook deliveries. It is safe
// for concurrent use.
type Service struct {
	v       *Verifier
	a       Appender
	now     func() time.Time
	log     *slog.Logger
	observe func(Outcome)
}

// NewService returns a Service that verifies with v and appends to a.
func NewService(v *Verifier, a Appender, opts ServiceOptions) *Service {
	s := &Service{v: v, a: a, now: opts.Now, log: opts.Logger, observe: opts.Observe}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Ingest handles one delivery: it verifies sigHeader over body, parses the
// event envelope, and appends the event — body byte for byte — to its
// stream (see fc.StreamFor) with store.AnyRevision. It returns the store's
// answer for the event: Duplicate is true for a redelivery of an already
// stored id and then carries the original coordinates.
//
// Nothing that fails verification or parsing reaches the Appender. Errors
// wrap ErrSignatureInvalid, ErrTimestampOutsideTolerance or
// ErrPayloadInvalid, or else the Appender's error (store.ErrUnavailable, …)
// wrapped with the stream name.
//
// body is handed to the Appender without copying: the caller must not
// modify or reuse body's array (a pooled buffer, say) until Ingest returns.
// net/http's request bodies read with io.ReadAll meet that already.
func (s *Service) Ingest(ctx context.Context, body []byte, sigHeader string) (store.Appended, error) {
	start := time.Now()
	res, typ, err := s.ingest(ctx, body, sigHeader)
	out := Outcome{Result: outcomeOf(res, err), EventType: typ, Duration: time.Since(start)}
	if s.observe != nil {
		s.observe(out)
	}
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.LogAttrs(ctx, slog.LevelDebug, "webhook",
			slog.String("outcome", out.Result), slog.String(logkey.EventID, res.ID),
			slog.String(logkey.EventType, typ), slog.String(logkey.Stream, res.Stream),
			slog.Duration("duration", out.Duration))
	}
	return res, err
}

func (s *Service) ingest(ctx context.Context, body []byte, sigHeader string) (store.Appended, string, error) {
	received := s.now()
	ver, err := s.v.Verify(body, sigHeader)
	if err != nil {
		return store.Appended{}, "", fmt.Errorf("verify webhook: %w", err)
	}
	verified := s.now()
	env, err := fc.ParseEnvelope(body)
	if err != nil {
		return store.Appended{}, "", fmt.Errorf("parse webhook: %w", err)
	}
	stream := fc.StreamFor(env)
	ev := store.Event{
		ID:             env.ID,
		Type:           env.Type,
		Data:           body,
		ReceivedAt:     received.UTC().Truncate(time.Microsecond),
		Created:        env.Created,
		Livemode:       env.Livemode,
		APIVersion:     env.APIVersion,
		ConnectAccount: env.ConnectAccount,
		Source:         store.SourceWebhook,
		Provenance: &store.Provenance{
			SignatureHeader:   ver.Header,
			SignedAt:          ver.SignedAt,
			SecretFingerprint: ver.SecretFingerprint,
			VerifiedAt:        verified.UTC().Truncate(time.Microsecond),
		},
	}
	res, err := s.a.Append(ctx, stream, store.AnyRevision, ev)
	if err != nil {
		return store.Appended{}, env.Type, fmt.Errorf("append %s to %s: %w", env.ID, stream, err)
	}
	if len(res) != 1 {
		return store.Appended{}, env.Type, fmt.Errorf("append %s to %s: store answered %d results for 1 event", env.ID, stream, len(res))
	}
	return res[0], env.Type, nil
}

func outcomeOf(res store.Appended, err error) string {
	switch {
	case err == nil && res.Duplicate:
		return OutcomeDuplicate
	case err == nil:
		return OutcomeStored
	case errors.Is(err, ErrSignatureInvalid):
		return OutcomeSignatureInvalid
	case errors.Is(err, ErrTimestampOutsideTolerance):
		return OutcomeTimestampOutside
	case errors.Is(err, ErrPayloadInvalid):
		return OutcomePayloadInvalid
	case errors.Is(err, store.ErrTooLarge):
		return OutcomePayloadTooLarge
	case errors.Is(err, store.ErrUnavailable):
		return OutcomeStoreUnavailable
	default:
		return OutcomeError
	}
}
