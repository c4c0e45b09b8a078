package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sources of events. Only SourceWebhook, SourceBackfill and SourceImport are
// Stripe events; SourceFcaudit marks fcaudit's own records (replay runs, …),
// which are never re-delivered or exported as Stripe events.
const (
	SourceWebhook  = "webhook"
	SourceBackfill = "backfill"
	SourceImport   = "import"
	SourceFcaudit  = "fcaudit"
)

// SystemStreamPrefix starts the streams of fcaudit's own records (e.g.
// fcaudit-replays). Stripe events are filed by fc.StreamFor.
const SystemStreamPrefix = "fcaudit-"

// Position is an event's place in the global log. Positions strictly increase
// in store order; they need not be contiguous (EventStoreDB's are byte
// offsets). Zero means "before the first event".
type Position uint64

// ExpectedRevision is the optimistic-concurrency condition of an append:
// AnyRevision, NoStream, or the exact revision of the stream's last event.
type ExpectedRevision int64

const (
	// AnyRevision appends whatever the stream's current revision is.
	AnyRevision ExpectedRevision = -2
	// NoStream requires that the stream has no events yet.
	NoStream ExpectedRevision = -1
)

// Exact returns the expected revision "the stream's last event has revision r".
func Exact(r uint64) ExpectedRevision { return ExpectedRevision(r) }

func (e ExpectedRevision) String() string {
	switch {
	case e == AnyRevision:
		return "any"
	case e == NoStream:
		return "no_stream"
	case e >= 0:
		return fmt.Sprintf("%d", int64(e))
	default:
		return fmt.Sprintf("invalid(%d)", int64(e))
	}
}

// Provenance records how a webhook-sourced event was authenticated. It never
// holds a secret: SecretFingerprint is the hex of the first 8 bytes of the
// secret's SHA-256. For backfilled events Note says where it came from.
type Provenance struct {
	SignatureHeader   string    `json:"signature_header,omitempty"`
	SignedAt          int64     `json:"signed_at,omitempty"`
	SecretFingerprint string    `json:"secret_fingerprint,omitempty"`
	VerifiedAt        time.Time `json:"verified_at"`
	Note              string    `json:"note,omitempty"`
}

// Event is what a caller appends: a Stripe event's raw body and the metadata
// ingest extracted from it. The backend adds revision, position, body hash
// and chain hash.
type Event struct {
	// ID is the Stripe event id ("evt_…"), unique across the log.
	ID string
	// Type is the Stripe event type, e.g. financial_connections.account.created.
	Type string
	// Data is the raw body exactly as received; never re-serialised.
	Data []byte
	// ReceivedAt is when fcaudit received the event; backends keep microseconds.
	ReceivedAt time.Time
	// Created is the Stripe event's created time (Unix seconds).
	Created int64
	// Livemode, APIVersion and ConnectAccount ("" when none) come from the event.
	Livemode       bool
	APIVersion     string
	ConnectAccount string
	// Source is one of the Source* constants.
	Source string
	// Provenance is optional (nil for events without one).
	Provenance *Provenance
}

// RecordedEvent is an Event as stored in the log.
type RecordedEvent struct {
	Event
	Stream   string
	Revision uint64
	Position Position
	// BodySHA256 is SHA-256 of Data; ChainHash is the stream's hash-chain
	// value after this event (see ChainHash).
	BodySHA256 [32]byte
	ChainHash  [32]byte
}

// Appended reports the outcome of one event of an append.
type Appended struct {
	ID       string
	Stream   string
	Revision uint64
	Position Position
	// Duplicate is true when the event id was already stored; Stream,
	// Revision and Position then describe the original record and nothing
	// was appended.
	Duplicate bool
}

// Filter selects events of the global log. The zero Filter selects all.
// Fields combine with AND; values within one slice combine with OR.
type Filter struct {
	// StreamPrefix keeps events whose stream starts with it (e.g. "fcaccount-").
	StreamPrefix string
	// Streams keeps events of these exact streams.
	Streams []string
	// Types keeps events whose type matches one of these patterns; '*'
	// matches any run of characters (path.Match-like, but '*' crosses '.').
	Types []string
	// CreatedFrom/CreatedTo bound the Stripe created time, inclusive
	// (0 = unbounded; a negative CreatedTo selects nothing, since every
	// Stripe event is created after the Unix epoch).
	CreatedFrom, CreatedTo int64
	// ReceivedFrom/ReceivedTo bound ReceivedAt, inclusive (zero = unbounded).
	ReceivedFrom, ReceivedTo time.Time
	// Sources keeps events with one of these sources.
	Sources []string
}

// CreatedUntil is the CreatedTo bound of "created at or before t": t in
// Unix seconds, or -1 (nothing) for a t at or before the epoch, because 0
// means "no bound" and every Stripe event is created after the epoch. Every
// until/as_of of a created time (API, replay, export, time travel) goes
// through it, so the zero time never reads as "no bound".
func CreatedUntil(t time.Time) int64 {
	if c := t.Unix(); c > 0 {
		return c
	}
	return -1
}

// Match reports whether e passes the filter. Backends that cannot express a
// part of the filter natively use it to filter client side.
func (f *Filter) Match(e *RecordedEvent) bool {
	if f.StreamPrefix != "" && !strings.HasPrefix(e.Stream, f.StreamPrefix) {
		return false
	}
	if len(f.Streams) > 0 && !contains(f.Streams, e.Stream) {
		return false
	}
	if len(f.Types) > 0 {
		ok := false
		for _, p := range f.Types {
			if MatchType(p, e.Type) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if f.CreatedFrom != 0 && e.Created < f.CreatedFrom {
		return false
	}
	if f.CreatedTo != 0 && e.Created > f.CreatedTo {
		return false
	}
	if !f.ReceivedFrom.IsZero() && e.ReceivedAt.Before(f.ReceivedFrom) {
		return false
	}
	if !f.ReceivedTo.IsZero() && e.ReceivedAt.After(f.ReceivedTo) {
		return false
	}
	if len(f.Sources) > 0 && !contains(f.Sources, e.Source) {
		return false
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// MatchType reports whether typ matches pattern, where '*' matches any run of
// characters (including '.') and every other character matches itself.
func MatchType(pattern, typ string) bool {
	star := strings.IndexByte(pattern, '*')
	if star < 0 {
		return pattern == typ
	}
	if !strings.HasPrefix(typ, pattern[:star]) {
		return false
	}
	rest, typ := pattern[star+1:], typ[star:]
	for i := 0; i <= len(typ); i++ {
		if MatchType(rest, typ[i:]) {
			return true
		}
	}
	return false
}

// ReadOptions bound a read of the global log.
type ReadOptions struct {
	// After: only events with Position > After are returned.
	After Position
	// Limit caps the number of events returned (0 = a backend default of at
	// least 100).
	Limit int
	// Filter selects events.
	Filter Filter
	// WithoutData leaves RecordedEvent.Data nil (cheaper scans when only
	// metadata is needed).
	WithoutData bool
}

// Handler receives a batch of events in store order from Subscribe. A
// non-nil error stops the subscription and is returned by Subscribe.
type Handler func(ctx context.Context, batch []RecordedEvent) error

// Store is fcaudit's event log. Implementations are safe for concurrent use.
// Every method that does IO takes a context; cancelling it abandons the call
// and returns an error wrapping ctx.Err().
type Store interface {
	// Append appends events to stream atomically, all or none, if the
	// stream's last revision matches expected. Events whose ID is already
	// stored (anywhere in the log, or earlier in the same call) are skipped
	// and reported as Duplicate with their original coordinates; when every
	// event is a duplicate, Append succeeds without checking expected (an
	// idempotent re-append). The result has one entry per event, in order.
	// The backend computes BodySHA256 and ChainHash inside the append.
	//
	// Errors: ErrWrongExpectedRevision (use errors.As with
	// *WrongRevisionError for details), ErrInvalidEvent for an event without
	// ID, Type, Data or Source, ErrTooLarge when the events exceed what the
	// backend accepts in one append (retrying cannot help), ErrUnavailable
	// when the log cannot take the write or cannot confirm it (the events
	// may or may not be stored; retrying is safe, since a stored id comes
	// back as a duplicate). Once Append returns nil the events are durable.
	Append(ctx context.Context, stream string, expected ExpectedRevision, events ...Event) ([]Appended, error)

	// ReadStream returns up to limit events of stream with Revision >= from,
	// in revision order (limit <= 0: all). ErrStreamNotFound when the stream
	// has no events.
	ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]RecordedEvent, error)

	// ReadAll returns events of the global log after opts.After that match
	// opts.Filter, in store order, at most opts.Limit. An empty result means
	// the end of the log was reached.
	ReadAll(ctx context.Context, opts ReadOptions) ([]RecordedEvent, error)

	// EventByID looks an event up by its ID without scanning the log.
	// ErrEventNotFound when it is not stored.
	EventByID(ctx context.Context, id string) (RecordedEvent, error)

	// Head returns the position of the last event in the log (0 when empty).
	Head(ctx context.Context) (Position, error)

	// Subscribe delivers every event after `after` matching filter to h, in
	// store order and in batches: first those already stored (catch-up),
	// then new ones as they are appended, by this process or any other. It
	// blocks until ctx is cancelled (returning an error wrapping ctx.Err()),
	// h fails (returning h's error), or the store fails. A call of h finishes
	// before the next one starts.
	Subscribe(ctx context.Context, after Position, filter Filter, h Handler) error

	// Ping reports whether the log is reachable and writable enough to
	// accept appends (ErrUnavailable otherwise).
	Ping(ctx context.Context) error

	// Close releases resources; pending appends fail with ErrClosed.
	Close() error
}

// Sentinel errors. Backends wrap them with context; test with errors.Is.
var (
	ErrWrongExpectedRevision = errors.New("wrong expected revision")
	ErrStreamNotFound        = errors.New("stream not found")
	ErrEventNotFound         = errors.New("event not found")
	ErrInvalidEvent          = errors.New("invalid event")
	ErrTooLarge              = errors.New("events too large for one append")
	ErrUnavailable           = errors.New("event log unavailable")
	ErrClosed                = errors.New("store closed")
	ErrReadOnly              = errors.New("store opened read-only")
)

// WrongRevisionError details ErrWrongExpectedRevision. Actual is -1 when the
// stream does not exist.
type WrongRevisionError struct {
	Stream   string
	Expected ExpectedRevision
	Actual   int64
}

func (e *WrongRevisionError) Error() string {
	return fmt.Sprintf("append to %s: expected revision %s, stream is at %d", e.Stream, e.Expected, e.Actual)
}

// Unwrap makes errors.Is(err, ErrWrongExpectedRevision) hold.
func (e *WrongRevisionError) Unwrap() error { return ErrWrongExpectedRevision }
