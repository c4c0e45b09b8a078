package esdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/logkey"
	"github.com/fcaudit/fcaudit/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fcauditPrefixes are the stream prefixes of everything fcaudit reads from
// $all. Claim streams (ClaimStreamPrefix) are deliberately not among them.
var fcauditPrefixes = []string{fc.AccountStreamPrefix, fc.ObjectStreamPrefix, store.SystemStreamPrefix}

// ReadStream implements store.Store.
func (s *Store) ReadStream(ctx context.Context, streamName string, from uint64, limit int) ([]store.RecordedEvent, error) {
	op := "read " + streamName
	if err := s.checkOpen(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var recs []*esdb.RecordedEvent
	var missing bool
	var err error
	if limit > 0 {
		recs, missing, err = s.readPage(ctx, streamName, from, uint64(limit))
	} else {
		recs, missing, err = s.readAllFrom(ctx, streamName, from)
	}
	if err != nil {
		return nil, err
	}
	if missing {
		return nil, fmt.Errorf("%s: %w", op, store.ErrStreamNotFound)
	}
	out := make([]store.RecordedEvent, 0, len(recs))
	for _, r := range recs {
		if isSystem(r) {
			continue
		}
		e, err := s.decode(r, true)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// EventByID implements store.Store: one read of the id's claim stream, then
// a scan of the (short) stream it names.
func (s *Store) EventByID(ctx context.Context, id string) (store.RecordedEvent, error) {
	op := "event " + id
	if err := s.checkOpen(); err != nil {
		return store.RecordedEvent{}, fmt.Errorf("%s: %w", op, err)
	}
	r, _, err := s.lookup(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrEventNotFound) {
			return store.RecordedEvent{}, fmt.Errorf("%s: %w", op, err)
		}
		return store.RecordedEvent{}, err
	}
	return *r, nil
}

// Head implements store.Store: the position of the last fcaudit event,
// found by reading $all backwards past claims and system events.
func (s *Store) Head(ctx context.Context) (store.Position, error) {
	var pos store.Position
	err := s.call(ctx, "read head of $all", func(ctx context.Context, c *esdb.Client) error {
		var from esdb.AllPosition = esdb.End{}
		const page = 64
		for {
			rs, err := c.ReadAll(ctx, esdb.ReadAllOptions{Direction: esdb.Backwards, From: from}, page)
			if err != nil {
				return err
			}
			n := 0
			for {
				ev, err := rs.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					rs.Close()
					return err
				}
				n++
				r := ev.OriginalEvent()
				from = r.Position
				if ours(r) {
					rs.Close()
					pos = s.position(r.Position)
					return nil
				}
			}
			rs.Close()
			if n < page {
				return nil
			}
		}
	})
	if err != nil {
		return 0, err
	}
	return pos, nil
}

// ours reports whether a $all event is an fcaudit event (not a claim, not a
// system event).
func ours(r *esdb.RecordedEvent) bool {
	if isSystem(r) {
		return false
	}
	for _, p := range fcauditPrefixes {
		if strings.HasPrefix(r.StreamID, p) {
			return true
		}
	}
	return false
}

// serverFilter is the narrowest server-side stream-prefix filter that keeps
// everything f can match and no claim or system stream.
func serverFilter(f *store.Filter) *esdb.SubscriptionFilter {
	within := func(name string) bool {
		for _, p := range fcauditPrefixes {
			if strings.HasPrefix(name, p) {
				return true
			}
		}
		return false
	}
	prefixes := fcauditPrefixes
	switch {
	case len(f.Streams) > 0:
		prefixes = nil
		for _, name := range f.Streams {
			if within(name) {
				prefixes = append(prefixes, name)
			}
		}
		if len(prefixes) == 0 {
			return nil // nothing can match
		}
	case f.StreamPrefix != "" && within(f.StreamPrefix):
		prefixes = []string{f.StreamPrefix}
	}
	return &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: prefixes}
}

// ReadAll implements store.Store. The v4 client cannot filter a plain $all
// read, so it runs a filtered catch-up subscription from opts.After and stops
// at caught_up, at the limit, or at the $all head read at the start.
func (s *Store) ReadAll(ctx context.Context, opts store.ReadOptions) ([]store.RecordedEvent, error) {
	limit := opts.Limit
	if limit <= 0 {
		limit = s.opts.ReadBatch
	}
	sf := serverFilter(&opts.Filter)
	out := []store.RecordedEvent{}
	if sf == nil {
		if err := s.checkOpen(); err != nil {
			return nil, fmt.Errorf("read $all: %w", err)
		}
		return out, nil
	}
	err := s.call(ctx, "read $all", func(ctx context.Context, c *esdb.Client) error {
		last, err := lastAll(ctx, c)
		if err != nil || last == nil {
			return err
		}
		end := last.Position.Commit
		if uint64(opts.After) > end {
			return nil
		}
		sub, err := c.SubscribeToAll(ctx, esdb.SubscribeToAllOptions{From: allFrom(opts.After), Filter: sf})
		if err != nil {
			return err
		}
		defer sub.Close()
		for len(out) < limit {
			ev := sub.Recv()
			switch {
			case ev.SubscriptionDropped != nil:
				return ev.SubscriptionDropped.Error
			case ev.CaughtUp != nil:
				return nil
			case ev.CheckPointReached != nil:
				if ev.CheckPointReached.Commit >= end {
					return nil
				}
			case ev.EventAppeared != nil:
				r := ev.EventAppeared.OriginalEvent()
				if ours(r) {
					e, err := s.decode(r, !opts.WithoutData)
					if err != nil {
						s.skipForeign(r, err)
					} else if opts.Filter.Match(&e) {
						out = append(out, e)
					}
				}
				if r.Position.Commit >= end {
					return nil
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, badPosition("read $all", opts.After, err)
	}
	return out, nil
}

// badPosition explains the node's refusal of a $all start position: it is
// not where an event starts in this log.
func badPosition(op string, p store.Position, err error) error {
	if p == 0 || status.Code(err) != codes.InvalidArgument {
		return err
	}
	return fmt.Errorf("%s: position %d (EventStoreDB commit position %d) is not where an event starts in this log; "+
		"positions from another backend cannot be used here: %w: %w", op, p, uint64(p)-1, ErrInvalidPosition, err)
}

// Subscribe implements store.Store with a filtered catch-up subscription to
// $all. Events are read by a pump goroutine and handed to h in batches of
// whatever has arrived (at most Options.ReadBatch). On a transient drop it
// resubscribes from the last delivered position, so h sees every event once.
func (s *Store) Subscribe(ctx context.Context, after store.Position, filter store.Filter, h store.Handler) error {
	op := "subscribe $all"
	sf := serverFilter(&filter)
	if sf == nil {
		// Nothing can match: wait for the end like a live subscription would.
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", op, ctx.Err())
		case <-s.done:
			return fmt.Errorf("%s: %w", op, store.ErrClosed)
		}
	}
	pos := after
	failures := 0
	for {
		delivered, err := s.subscribeOnce(ctx, &pos, filter, sf, h)
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", op, ctx.Err())
		}
		var herr handlerError
		if errors.As(err, &herr) {
			return herr.err
		}
		if cerr := s.checkOpen(); cerr != nil {
			return fmt.Errorf("%s: %w", op, cerr)
		}
		terr := s.translate(ctx, op, err)
		if !errors.Is(terr, store.ErrUnavailable) {
			return badPosition(op, pos, terr)
		}
		if delivered {
			failures = 0
		}
		failures++
		s.log.Warn("eventstoredb: subscription dropped; resubscribing", "after", pos, "attempt", failures, logkey.Err(err))
		d := time.Duration(min(failures, 20)) * 100 * time.Millisecond
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w", op, ctx.Err())
		case <-s.done:
			t.Stop()
			return fmt.Errorf("%s: %w", op, store.ErrClosed)
		case <-t.C:
		}
	}
}

// handlerError marks an error returned by the caller's handler.
type handlerError struct{ err error }

func (e handlerError) Error() string { return e.err.Error() }

// subscribeOnce runs one subscription until it drops. It advances *pos past
// every delivered event and reports whether it delivered any.
func (s *Store) subscribeOnce(ctx context.Context, pos *store.Position, filter store.Filter, sf *esdb.SubscriptionFilter, h store.Handler) (bool, error) {
	r, err := s.conn()
	if err != nil {
		return false, err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type item struct {
		ev  *esdb.RecordedEvent
		err error
	}
	var sub *esdb.Subscription
	errc := make(chan error, 1)
	// Read *pos here, not in the goroutine: an abandoned start outlives
	// this call, and the caller moves *pos on afterwards.
	from := allFrom(*pos)
	go func() {
		errc <- guard(func() error {
			var err error
			sub, err = r.c.SubscribeToAll(sctx, esdb.SubscribeToAllOptions{From: from, Filter: sf})
			return err
		})
	}()
	// abandon leaves the start to finish on its own and then lets the
	// client go.
	abandon := func() {
		go func() {
			if err := <-errc; err == nil {
				_ = sub.Close()
			}
			s.release(r)
		}()
	}
	// Starting a subscription is bounded like every call: a v4.2.0 client
	// can block in it forever (see replace).
	start := time.NewTimer(s.opts.Timeout)
	defer start.Stop()
	select {
	case err = <-errc:
	case <-start.C:
		abandon()
		err = fmt.Errorf("start subscription: %w", context.DeadlineExceeded)
		s.replace(r, "a subscription did not start within the operation timeout", err)
		return false, err
	case <-sctx.Done():
		abandon()
		return false, sctx.Err()
	case <-s.done:
		abandon()
		return false, store.ErrClosed
	}
	if err != nil {
		s.release(r)
		s.noteError(r, err) // the retry loop in Subscribe resubscribes on the new client
		return false, err
	}
	defer sub.Close()
	items := make(chan item, s.opts.ReadBatch)
	go func() {
		defer s.release(r)
		for {
			var ev *esdb.SubscriptionEvent
			if err := guard(func() error { ev = sub.Recv(); return nil }); err != nil {
				ev = &esdb.SubscriptionEvent{SubscriptionDropped: &esdb.SubscriptionDropped{Error: err}}
			}
			var it item
			switch {
			case ev.SubscriptionDropped != nil:
				it.err = ev.SubscriptionDropped.Error
				if it.err == nil {
					it.err = io.EOF
				}
			case ev.EventAppeared != nil:
				it.ev = ev.EventAppeared.OriginalEvent()
			default:
				continue // checkpoints, caught_up, fell_behind
			}
			select {
			case items <- it:
			case <-sctx.Done():
				return
			}
			if it.err != nil {
				return
			}
		}
	}()
	delivered := false
	// A node shutting down, or hung, can leave a subscription open and
	// silent while its connection stays up. While nothing arrives, check
	// now and then that the subscription's client is still the current one
	// and that a node answers through it; otherwise resubscribe.
	idle := time.NewTicker(3 * s.opts.Timeout)
	defer idle.Stop()
	for {
		var batch []store.RecordedEvent
		var first item
		select {
		case first = <-items:
		case <-idle.C:
			if err := s.checkSubscription(sctx, r); err != nil {
				return delivered, err
			}
			continue
		case <-sctx.Done():
			return delivered, sctx.Err()
		case <-s.done:
			return delivered, store.ErrClosed
		}
		idle.Reset(3 * s.opts.Timeout)
		pending := []item{first}
	drain:
		for len(pending) < s.opts.ReadBatch && first.err == nil {
			select {
			case it := <-items:
				pending = append(pending, it)
				if it.err != nil {
					break drain
				}
			default:
				break drain
			}
		}
		var dropErr error
		last := *pos
		for _, it := range pending {
			if it.err != nil {
				dropErr = it.err
				break
			}
			if !ours(it.ev) {
				continue
			}
			e, err := s.decode(it.ev, true)
			if err != nil {
				s.skipForeign(it.ev, err)
				last = s.position(it.ev.Position)
				continue
			}
			last = e.Position
			if filter.Match(&e) {
				batch = append(batch, e)
			}
		}
		if len(batch) > 0 {
			if err := h(ctx, batch); err != nil {
				return delivered, handlerError{err}
			}
			delivered = true
		}
		*pos = last
		if dropErr != nil {
			return delivered, dropErr
		}
	}
}

// checkSubscription reports why a quiet subscription on client r should
// be given up: r was replaced (another call found it dead), or a probe
// through r gets no answer within the timeout.
func (s *Store) checkSubscription(ctx context.Context, r *clientRef) error {
	s.mu.Lock()
	replaced := s.client != r
	s.mu.Unlock()
	if replaced {
		return fmt.Errorf("subscription client was replaced: %w", errClientGone)
	}
	pctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	errc := make(chan error, 1)
	s.mu.Lock()
	r.calls++
	s.mu.Unlock()
	go func() {
		defer s.release(r)
		errc <- guard(func() error { _, err := lastAll(pctx, r.c); return err })
	}()
	select {
	case err := <-errc:
		if err != nil && isTransient(err) {
			return err
		}
		return nil
	case <-pctx.Done():
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.replace(r, "a quiet subscription's node did not answer a probe", pctx.Err())
		return fmt.Errorf("probe subscription node: %w", pctx.Err())
	}
}
