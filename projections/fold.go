package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/store"
)

// StreamReader is the part of the event log that folding one account's
// stream needs (store.Store implements it).
type StreamReader interface {
	// ReadStream returns up to limit events of stream with Revision >=
	// from, in revision order; store.ErrStreamNotFound when the stream has
	// no events.
	ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]store.RecordedEvent, error)
}

// FoldPageSize is how many events of a stream FoldStream reads at once: the
// most it holds in memory, however long the stream.
const FoldPageSize = 256

// AsOf selects the events a time-travel query folds. The zero AsOf selects
// every event. Build it with AsOfCreated or KnownAt, which also handle the
// times before any event (nothing is selected then).
type AsOf struct {
	// Created: events whose Stripe created time is ≤ Created (what was
	// true then). Unix seconds; 0 = no bound; negative selects nothing
	// (every Stripe event is created after the Unix epoch).
	Created int64
	// Received: events fcaudit received at or before Received (what
	// fcaudit knew then). Zero = no bound.
	Received time.Time
}

// AsOfCreated selects the events whose Stripe created time is at or before
// t: what was true at t. created is whole seconds, so the fraction of t is
// dropped ("≤ 10:00:00.5" keeps 10:00:00). A t at or before the Unix epoch
// (the zero time included) selects nothing.
func AsOfCreated(t time.Time) AsOf { return AsOf{Created: store.CreatedUntil(t)} }

// KnownAt selects the events fcaudit received at or before t: what it knew
// at t. The zero time (0001-01-01T00:00:00Z) is a time like any other, at
// which nothing had been received, not "no bound".
func KnownAt(t time.Time) AsOf {
	if t.IsZero() {
		// The zero Received means "no bound"; one nanosecond later
		// selects the same events the zero time does: none.
		t = t.Add(time.Nanosecond)
	}
	return AsOf{Received: t}
}

// Includes reports whether at selects ev.
func (at AsOf) Includes(ev *store.RecordedEvent) bool {
	if at.Created != 0 && ev.Created > at.Created {
		return false
	}
	if !at.Received.IsZero() && ev.ReceivedAt.After(at.Received) {
		return false
	}
	return true
}

// FoldStream folds account id's stream, keeping the events at selects, with
// Apply (the live projection's fold), reading FoldPageSize events at a
// time: memory stays bounded by one page however long the stream is.
// ErrAccountNotFound when the account has no stream or no event is
// selected.
func FoldStream(ctx context.Context, r StreamReader, id string, at AsOf) (*AccountStatus, error) {
	s, err := foldFrom(ctx, r, id, nil, 0, at)
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", id, err)
	}
	if s == nil {
		return nil, fmt.Errorf("account %s: %w at that time", id, ErrAccountNotFound)
	}
	return s, nil
}

// foldFrom applies the selected events of id's stream from revision from
// onwards to s (nil: a fresh state, returned nil when nothing was applied).
// Event ids are unique in the log (the store deduplicates them), so each
// event is applied once. ErrAccountNotFound when the stream does not exist.
func foldFrom(ctx context.Context, r StreamReader, id string, s *AccountStatus, from uint64, at AsOf) (*AccountStatus, error) {
	if at.Created < 0 {
		if s == nil {
			// Nothing can be selected: do not read at all.
			return nil, nil
		}
		return s, nil
	}
	stream := fc.AccountStream(id)
	// Reading from the last event already applied (when there is one)
	// finds it, so an up-to-date row costs one read: an empty answer after
	// the stream's end would make the store look again to tell "nothing
	// new" from "no such stream".
	read := from
	if from > 0 {
		read = from - 1
	}
	for {
		page, err := r.ReadStream(ctx, stream, read, FoldPageSize)
		if errors.Is(err, store.ErrStreamNotFound) {
			return nil, ErrAccountNotFound
		}
		if err != nil {
			return nil, err
		}
		if s, err = applySelected(s, page, from, at); err != nil {
			return nil, err
		}
		if len(page) < FoldPageSize {
			return s, nil
		}
		read = page[len(page)-1].Revision + 1
	}
}

// applySelected applies the events of evs from revision from onwards that
// at selects to s (nil: a fresh state, returned nil when nothing was
// applied): the one selection and fold of FoldStream, Account and FoldAt.
func applySelected(s *AccountStatus, evs []store.RecordedEvent, from uint64, at AsOf) (*AccountStatus, error) {
	for i := range evs {
		ev := &evs[i]
		if ev.Revision < from || !at.Includes(ev) {
			continue
		}
		if s == nil {
			s = new(AccountStatus)
		}
		if err := s.Apply(ev); err != nil {
			return nil, err
		}
	}
	return s, nil
}
