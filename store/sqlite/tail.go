package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/fcaudit/fcaudit/store"
)

// The tail: in-process fan-out of committed events.
//
// The writer holds every event it commits in memory. While Subscribe calls
// are running it keeps the most recent commits (tailMaxBytes of bodies at
// most) as RecordedEvents built exactly as a read decodes them, and a
// subscriber that has seen everything up to position P takes the events
// from P+1 on from there instead of re-reading them, bodies included, from
// the file. One writer per process commits positions first..last without
// gaps inside a transaction, so "the tail holds P+1" proves nothing was
// committed between P and the tail's events, by this process or another.
// Whenever that cannot be shown — another process committed in between,
// the subscriber lagged and the tail moved on, the tail was not kept — the
// subscriber reads from the database, as it does to catch up and every
// PollInterval.

// tailMaxBytes bounds the bodies kept in the tail. A subscriber further
// behind than that reads from the database, as without a tail.
const tailMaxBytes = 8 << 20

// tail is guarded by Store.notifyMu.
type tail struct {
	commits []tailCommit // oldest first; positions strictly increase
	bytes   int
	// last is the last position this process committed (kept or not).
	last store.Position
	// served counts events delivered from the tail (tests look at it).
	served int
}

// tailCommit is one group commit's events, positions first, first+1, ….
// Its events are never modified; subscribers get copies.
type tailCommit struct {
	first  store.Position
	events []store.RecordedEvent
	bytes  int
}

func (c *tailCommit) last() store.Position { return c.first + store.Position(len(c.events)) - 1 }

// publish records a commit of n events by live's requests and wakes
// subscribers. With record, the requests carry their events (see
// writer.apply) and the commit is kept in the tail.
func (s *Store) publish(live []*request, n int, record bool) {
	var (
		evs  []store.RecordedEvent
		last store.Position
	)
	for _, r := range live {
		if r.err == nil && r.inserted > 0 {
			for _, a := range r.results {
				if !a.Duplicate {
					last = max(last, a.Position)
				}
			}
		}
	}
	keep := record && s.subs.Load() > 0
	if keep {
		evs = make([]store.RecordedEvent, 0, n)
		size := 0
		for _, r := range live {
			if r.err == nil {
				evs = append(evs, r.recorded...)
				for i := range r.recorded {
					size += len(r.recorded[i].Data)
				}
			}
		}
		// The caller owns Data once Append returns: copy all bodies into
		// one allocation.
		buf := make([]byte, 0, size)
		for i := range evs {
			if evs[i].Position != evs[0].Position+store.Position(i) {
				keep = false // not contiguous (cannot happen): subscribers read the file
				break
			}
			start := len(buf)
			buf = append(buf, evs[i].Data...)
			evs[i].Data = buf[start:len(buf):len(buf)]
		}
		keep = keep && len(evs) == n
	}
	s.notifyMu.Lock()
	t := &s.tail
	t.last = max(t.last, last)
	switch {
	case keep:
		c := tailCommit{first: evs[0].Position, events: evs}
		for i := range evs {
			c.bytes += len(evs[i].Data)
		}
		t.commits = append(t.commits, c)
		t.bytes += c.bytes
		drop := 0
		for t.bytes > s.tailMax && drop < len(t.commits)-1 {
			t.bytes -= t.commits[drop].bytes
			drop++
		}
		if drop > 0 {
			clear(t.commits[:drop])
			t.commits = t.commits[drop:]
		}
	case s.subs.Load() == 0:
		// Nobody to serve; a new subscriber catches up from the file.
		clear(t.commits)
		t.commits, t.bytes = nil, 0
	}
	close(s.committed)
	s.committed = make(chan struct{})
	s.notifyMu.Unlock()
}

// fromTail returns copies of the events after `after` (at most limit) from
// the tail, and the position up to which they cover the log. ok is false
// when the tail cannot show it holds everything after `after` that this
// process committed: the caller must read the file. A nil result with ok
// means nothing new was committed by this process.
func (s *Store) fromTail(after store.Position, filter *store.Filter, limit int) (evs []store.RecordedEvent, upTo store.Position, ok bool) {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	t := &s.tail
	if t.last <= after {
		return nil, after, true
	}
	// Find the commit holding after+1.
	i := len(t.commits)
	for i > 0 && t.commits[i-1].last() > after {
		i--
	}
	if i == len(t.commits) || t.commits[i].first > after+1 {
		return nil, after, false
	}
	upTo = after
	size := 0
	var picked []*store.RecordedEvent
	for ; i < len(t.commits) && len(picked) < limit; i++ {
		c := &t.commits[i]
		if c.first != upTo+1 {
			break // a gap: someone else committed in between; the next read finds it
		}
		for j := int(upTo + 1 - c.first); j < len(c.events) && len(picked) < limit; j++ {
			e := &c.events[j]
			upTo = e.Position
			if filter.Match(e) {
				picked = append(picked, e)
				size += len(e.Data)
			}
		}
	}
	t.served += int(upTo - after)
	if len(picked) == 0 {
		return nil, upTo, true
	}
	// Copies, like a read returns: the handler may keep or modify them.
	evs = make([]store.RecordedEvent, len(picked))
	buf := make([]byte, 0, size)
	for k, e := range picked {
		evs[k] = *e
		start := len(buf)
		buf = append(buf, e.Data...)
		evs[k].Data = buf[start:len(buf):len(buf)]
		if e.Provenance != nil {
			p := *e.Provenance
			evs[k].Provenance = &p
		}
	}
	return evs, upTo, true
}

// committedChan returns the channel that is closed after the next commit.
func (s *Store) committedChan() <-chan struct{} {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	return s.committed
}

// Subscribe implements store.Store. It catches up page by page from the
// file (short read snapshots, so the WAL can reset). Once caught up it takes
// this process's commits from the tail (see tail) as the writer announces
// them, and reads the file again whenever the tail cannot vouch for
// completeness and every PollInterval (other processes' writes).
func (s *Store) Subscribe(ctx context.Context, after store.Position, filter store.Filter, h store.Handler) error {
	s.subs.Add(1)
	defer s.subs.Add(-1)
	ticker := time.NewTicker(s.opts.PollInterval)
	defer ticker.Stop()
	readFile := true
	for {
		if s.isClosed() {
			return fmt.Errorf("subscribe: %w", store.ErrClosed)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
		// Take the channel before reading so a commit during the read
		// is not missed.
		wake := s.committedChan()
		if !readFile {
			evs, upTo, ok := s.fromTail(after, &filter, defaultReadLimit)
			if !ok {
				readFile = true
			} else {
				if len(evs) > 0 {
					if err := h(ctx, evs); err != nil {
						return err
					}
				}
				if upTo > after {
					after = upTo
					continue // there may be more in the tail
				}
			}
		}
		if readFile {
			evs, head, err := s.readPage(ctx, store.ReadOptions{After: after, Limit: defaultReadLimit, Filter: filter}, true)
			if err != nil {
				return fmt.Errorf("subscribe after %d: %w", after, s.readErr(ctx, err))
			}
			if len(evs) > 0 {
				if err := h(ctx, evs); err != nil {
					return err
				}
			}
			if head > after {
				after = head
			}
			if len(evs) == defaultReadLimit {
				continue // more to catch up on
			}
			readFile = false
			// Commits between this read and taking wake are in the tail
			// (or detected as a gap): look there before sleeping.
			continue
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("subscribe: %w", ctx.Err())
		case <-s.closing:
			return fmt.Errorf("subscribe: %w", store.ErrClosed)
		case <-wake:
		case <-ticker.C:
			readFile = true
		}
	}
}
