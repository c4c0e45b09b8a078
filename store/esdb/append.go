package esdb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/fcaudit/fcaudit/internal/logkey"
	"github.com/fcaudit/fcaudit/store"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// head is a stream's last revision (-1 when empty) and chain value.
type head struct {
	rev   int64
	chain [32]byte
}

// Append implements store.Store. See the package documentation for the
// claim protocol and why the head is read before claiming.
func (s *Store) Append(ctx context.Context, streamName string, expected store.ExpectedRevision, events ...store.Event) ([]store.Appended, error) {
	op := "append " + streamName
	if streamName == "" {
		return nil, fmt.Errorf("%s: empty stream name: %w", op, store.ErrInvalidEvent)
	}
	if expected < store.AnyRevision {
		return nil, fmt.Errorf("%s: expected revision %s: %w", op, expected, store.ErrInvalidEvent)
	}
	for i := range events {
		e := &events[i]
		if e.ID == "" || e.Type == "" || len(e.Data) == 0 || e.Source == "" {
			return nil, fmt.Errorf("%s: event %d (%q) needs ID, Type, Data and Source: %w", op, i, e.ID, store.ErrInvalidEvent)
		}
	}
	// Appends to one stream from this process queue here instead of
	// conflicting on the server; other replicas are handled by the
	// expected-revision retry below.
	unlock, err := s.locks.lock(ctx, streamName)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer unlock()
	if err := s.checkOpen(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	res := make([]store.Appended, len(events))
	// first[i] is the index of the first event in this call with events[i].ID.
	first := make([]int, len(events))
	seen := make(map[string]int, len(events))
	var unique []int
	for i := range events {
		if j, ok := seen[events[i].ID]; ok {
			first[i] = j
			continue
		}
		seen[events[i].ID], first[i] = i, i
		unique = append(unique, i)
	}
	if err := s.checkSize(events, unique); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	done := make([]bool, len(events)) // result known (duplicate of a stored event)

	h, err := s.readHead(ctx, streamName)
	if err != nil {
		return nil, err
	}
	mismatch := expected != store.AnyRevision && int64(expected) != h.rev
	var toWrite []int
	needScan := false
	scanFrom := uint64(h.rev + 1)
	for _, i := range unique {
		id := events[i].ID
		if mismatch {
			// Only look: claiming would leave claims behind for an append
			// that is going to fail anyway.
			found, _, err := s.lookup(ctx, id)
			if err != nil && !errors.Is(err, store.ErrEventNotFound) {
				return nil, fmt.Errorf("%s: %w", op, err)
			}
			if found != nil {
				res[i], done[i] = dupOf(found), true
			}
			continue
		}
		won, cl, err := s.claim(ctx, id, streamName, h.rev)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if won {
			toWrite = append(toWrite, i)
			continue
		}
		claimed := cl.stream
		found, err := s.findInStream(ctx, claimed, id, cl.from())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		switch {
		case found != nil:
			res[i], done[i] = dupOf(found), true
		case claimed == streamName:
			// A pending claim for this stream: complete it, after a scan
			// from where the claim says it can be (below) proves the
			// stream does not hold the id.
			toWrite = append(toWrite, i)
			needScan = true
			scanFrom = min(scanFrom, cl.from())
		default:
			return nil, fmt.Errorf("%s: event %s is claimed by stream %s but not stored there yet; retry later: %w",
				op, id, claimed, store.ErrUnavailable)
		}
	}
	if mismatch {
		for _, i := range unique {
			if !done[i] {
				return nil, &store.WrongRevisionError{Stream: streamName, Expected: expected, Actual: h.rev}
			}
		}
		return fillDups(events, res, first), nil
	}
	if needScan {
		all, err := s.readFrom(ctx, streamName, scanFrom)
		if err != nil {
			return nil, err
		}
		if toWrite, err = s.catchUp(&h, events, toWrite, all, res, done); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if expected != store.AnyRevision && int64(expected) != h.rev && len(toWrite) > 0 {
			return nil, &store.WrongRevisionError{Stream: streamName, Expected: expected, Actual: h.rev}
		}
	}
	for attempt := 1; len(toWrite) > 0; attempt++ {
		err := s.appendAt(ctx, streamName, h, events, toWrite, res)
		if err == nil {
			break
		}
		if !isCode(err, esdb.ErrorCodeWrongExpectedVersion) {
			return nil, err
		}
		// Someone else appended since h: look at exactly those events.
		delta, rerr := s.readFrom(ctx, streamName, uint64(h.rev+1))
		if rerr != nil {
			return nil, rerr
		}
		if toWrite, err = s.catchUp(&h, events, toWrite, delta, res, done); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if len(toWrite) == 0 {
			break
		}
		if expected != store.AnyRevision {
			return nil, &store.WrongRevisionError{Stream: streamName, Expected: expected, Actual: h.rev}
		}
		if attempt >= s.opts.MaxAppendAttempts {
			return nil, fmt.Errorf("%s: still conflicting after %d attempts: %w", op, attempt, store.ErrUnavailable)
		}
		s.log.Debug("eventstoredb: append conflict, retrying", logkey.Stream, streamName, "attempt", attempt)
		if err := backoff(ctx, attempt); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
	}
	return fillDups(events, res, first), nil
}

// streamLocks serialises this process's appends per stream.
type streamLocks struct {
	mu sync.Mutex
	m  map[string]*streamLock
}

type streamLock struct {
	ch   chan struct{}
	refs int
}

func (l *streamLocks) lock(ctx context.Context, name string) (func(), error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*streamLock)
	}
	sl := l.m[name]
	if sl == nil {
		sl = &streamLock{ch: make(chan struct{}, 1)}
		l.m[name] = sl
	}
	sl.refs++
	l.mu.Unlock()
	release := func() {
		l.mu.Lock()
		if sl.refs--; sl.refs == 0 {
			delete(l.m, name)
		}
		l.mu.Unlock()
	}
	select {
	case sl.ch <- struct{}{}:
		return func() { <-sl.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

func dupOf(r *store.RecordedEvent) store.Appended {
	return store.Appended{ID: r.ID, Stream: r.Stream, Revision: r.Revision, Position: r.Position, Duplicate: true}
}

// fillDups reports repeats within one call as duplicates of their first
// occurrence.
func fillDups(events []store.Event, res []store.Appended, first []int) []store.Appended {
	for i := range events {
		if j := first[i]; j != i {
			res[i] = res[j]
			res[i].Duplicate = true
		}
	}
	return res
}

// catchUp takes in events read from the stream (recs, in order): it drops
// from toWrite those already stored and moves h to the last of recs.
func (s *Store) catchUp(h *head, events []store.Event, toWrite []int, recs []*esdb.RecordedEvent, res []store.Appended, done []bool) ([]int, error) {
	toWrite = s.dropStored(events, toWrite, recs, res, done)
	if len(recs) == 0 {
		return toWrite, nil
	}
	last := recs[len(recs)-1]
	h.rev = int64(last.EventNumber)
	var err error
	if h.chain, err = chainOf(last); err != nil {
		return nil, err
	}
	return toWrite, nil
}

// dropStored removes from toWrite the events whose EventStoreDB id occurs in
// recs, recording them as duplicates.
func (s *Store) dropStored(events []store.Event, toWrite []int, recs []*esdb.RecordedEvent, res []store.Appended, done []bool) []int {
	byID := make(map[uuid.UUID]*esdb.RecordedEvent, len(recs))
	for _, r := range recs {
		byID[r.EventID] = r
	}
	kept := toWrite[:0]
	for _, i := range toWrite {
		r, ok := byID[EventID(events[i].ID)]
		if !ok {
			kept = append(kept, i)
			continue
		}
		res[i] = store.Appended{ID: events[i].ID, Stream: r.StreamID, Revision: r.EventNumber,
			Position: s.position(r.Position), Duplicate: true}
		done[i] = true
	}
	return kept
}

// appendAt appends events[toWrite] after h with expected revision h.rev and
// fills their results. Errors are translated; a wrong expected version keeps
// its *esdb.Error in the chain for isCode.
func (s *Store) appendAt(ctx context.Context, streamName string, h head, events []store.Event, toWrite []int, res []store.Appended) error {
	data := make([]esdb.EventData, len(toWrite))
	chain := h.chain
	nonce := newNonce()
	for k, i := range toWrite {
		e := &events[i]
		body := bodyHash(e.Data)
		chain = store.ChainHash(chain, body, e.ID, e.ReceivedAt)
		d, err := encode(e, body, chain, nonce)
		if err != nil {
			return err
		}
		data[k] = d
	}
	var exp esdb.ExpectedRevision = esdb.NoStream{}
	if h.rev >= 0 {
		exp = esdb.Revision(uint64(h.rev))
	}
	if _, err := s.appendCall(ctx, "append "+streamName, streamName, exp, data); err != nil {
		return err
	}
	// The append reply carries one position for the whole batch; read the
	// new events back for each event's own position.
	firstRev := uint64(h.rev + 1)
	recs, err := s.readRange(ctx, streamName, firstRev, uint64(len(toWrite)))
	if err != nil {
		return err
	}
	if len(recs) != len(toWrite) {
		return fmt.Errorf("append %s: read back %d of %d events", streamName, len(recs), len(toWrite))
	}
	for k, i := range toWrite {
		r := recs[k]
		if r.EventID != data[k].EventID {
			return fmt.Errorf("append %s: revision %d holds %s, want %s", streamName, r.EventNumber, r.EventID, data[k].EventID)
		}
		// Another writer that appended the same events at the same head
		// got the node's idempotent success too: only the writer whose
		// bytes were stored (its nonce is in the metadata) stored them.
		res[i] = store.Appended{ID: events[i].ID, Stream: streamName, Revision: r.EventNumber, Position: s.position(r.Position),
			Duplicate: !bytes.Equal(r.UserMetadata, data[k].Metadata)}
	}
	return nil
}

func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(min(attempt, 8)) * 5 * time.Millisecond
	d += time.Duration(rand.Int64N(int64(d) + 1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// readHead reads a stream's last event.
func (s *Store) readHead(ctx context.Context, streamName string) (head, error) {
	h := head{rev: -1, chain: store.ChainSeed(streamName)}
	last, err := s.readOne(ctx, "read head of "+streamName, streamName, esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}})
	if err != nil || last == nil {
		return h, err
	}
	h.rev = int64(last.EventNumber)
	h.chain, err = chainOf(last)
	return h, err
}

// readOne reads the first event a read with opts returns (the first or,
// backwards from the end, the last), nil when the stream has none.
func (s *Store) readOne(ctx context.Context, what, streamName string, opts esdb.ReadStreamOptions) (*esdb.RecordedEvent, error) {
	var one *esdb.RecordedEvent
	err := s.call(ctx, what, func(ctx context.Context, c *esdb.Client) error {
		rs, err := c.ReadStream(leaderOnly(ctx), streamName, opts, 1)
		if err != nil {
			return err
		}
		defer rs.Close()
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) || isCode(err, esdb.ErrorCodeResourceNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		one = ev.OriginalEvent()
		return nil
	})
	return one, err
}

// claimInfo is what a claim says: the stream the id belongs to and the
// revision that stream was at before the claim (after), so the event can
// only be at after+1 or later. Claims written before after was recorded
// have after = -1: the whole stream is searched.
type claimInfo struct {
	stream string
	after  int64
}

// from is the first revision the claimed event can have.
func (c claimInfo) from() uint64 { return uint64(max(c.after, -1) + 1) }

// claim writes the claim of id for streamName, whose head was at revision
// after, with expected no_stream. won is false when the id was already
// claimed; cl then describes the existing claim. Claim event ids are
// random: a fixed id would let two racing claimers both get the server's
// idempotent success.
func (s *Store) claim(ctx context.Context, id, streamName string, after int64) (won bool, cl claimInfo, err error) {
	body, _ := json.Marshal(claimData{Stream: streamName, After: &after})
	wr, err := s.appendCall(ctx, "claim "+id, ClaimStream(id), esdb.NoStream{},
		[]esdb.EventData{{EventID: uuid.New(), EventType: ClaimEventType, ContentType: esdb.ContentTypeJson, Data: body}})
	if err == nil && wr.NextExpectedVersion == 0 {
		return true, claimInfo{stream: streamName, after: after}, nil
	}
	// A no_stream append to a soft-deleted claim stream is accepted at the
	// next revision: the id was claimed before, so this claim did not win.
	// Treat it like a lost claim: the stream it names is searched.
	if err != nil && !isCode(err, esdb.ErrorCodeWrongExpectedVersion) {
		return false, claimInfo{}, err
	}
	cl, err = s.readClaim(ctx, id)
	if err == nil && cl.stream == "" {
		// The node that answered has not seen the claim the leader refused
		// ours for: a stale read, so retry later.
		err = fmt.Errorf("claim %s: the claim stream exists but the node read holds no claim yet: %w", id, store.ErrUnavailable)
	}
	return false, cl, err
}

// readClaim returns what id's claim says (stream "" when unclaimed). The
// first claim event is authoritative: it won the no_stream append.
func (s *Store) readClaim(ctx context.Context, id string) (claimInfo, error) {
	first, err := s.readOne(ctx, "read claim "+id, ClaimStream(id), esdb.ReadStreamOptions{Direction: esdb.Forwards, From: esdb.Start{}})
	if err != nil || first == nil {
		return claimInfo{}, err
	}
	var d claimData
	if err := json.Unmarshal(first.Data, &d); err != nil {
		return claimInfo{}, fmt.Errorf("read claim %s: decode claim of %s: %w", id, id, err)
	}
	cl := claimInfo{stream: d.Stream, after: -1}
	// A claim past revision 0 was written after the claim stream was
	// soft-deleted: an earlier claim's event may sit before its after.
	if d.After != nil && first.EventNumber == 0 {
		cl.after = *d.After
	}
	return cl, nil
}

// lookup finds a stored event by Stripe id: the claim names the stream and
// where in it to look. ErrEventNotFound when unclaimed or claimed but never
// stored (a pending claim).
func (s *Store) lookup(ctx context.Context, id string) (*store.RecordedEvent, string, error) {
	cl, err := s.readClaim(ctx, id)
	if err != nil {
		return nil, "", err
	}
	if cl.stream == "" {
		return nil, "", store.ErrEventNotFound
	}
	r, err := s.findInStream(ctx, cl.stream, id, cl.from())
	if err != nil {
		return nil, cl.stream, err
	}
	if r == nil {
		return nil, cl.stream, store.ErrEventNotFound
	}
	return r, cl.stream, nil
}

// findInStream looks for the event of Stripe id in streamName from
// revision from on (nil when absent). The event is nearly always at from
// itself, so the pages start small and grow.
func (s *Store) findInStream(ctx context.Context, streamName, id string, from uint64) (*store.RecordedEvent, error) {
	want := EventID(id)
	for page := uint64(8); ; page = min(page*8, uint64(s.opts.ReadBatch)) {
		recs, err := s.readRange(ctx, streamName, from, page)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			if r.EventID == want {
				out, err := s.decode(r, true)
				if err != nil {
					return nil, err
				}
				return &out, nil
			}
		}
		if uint64(len(recs)) < page {
			return nil, nil
		}
		from = recs[len(recs)-1].EventNumber + 1
	}
}

// readFrom reads every event of a stream from revision from on (none when
// the stream does not exist).
func (s *Store) readFrom(ctx context.Context, streamName string, from uint64) ([]*esdb.RecordedEvent, error) {
	out, _, err := s.readAllFrom(ctx, streamName, from)
	return out, err
}

// readAllFrom is readFrom that also tells whether the server answered
// stream-not-found for the first page (see readPage).
func (s *Store) readAllFrom(ctx context.Context, streamName string, from uint64) ([]*esdb.RecordedEvent, bool, error) {
	var out []*esdb.RecordedEvent
	for first := true; ; first = false {
		page, missing, err := s.readPage(ctx, streamName, from, uint64(s.opts.ReadBatch))
		if err != nil {
			return nil, false, err
		}
		if first && missing {
			return nil, true, nil
		}
		out = append(out, page...)
		if len(page) < s.opts.ReadBatch {
			return out, false, nil
		}
		from = page[len(page)-1].EventNumber + 1
	}
}

// readRange reads up to count events of a stream from revision from,
// forwards; a missing stream reads as empty.
func (s *Store) readRange(ctx context.Context, streamName string, from, count uint64) ([]*esdb.RecordedEvent, error) {
	out, _, err := s.readPage(ctx, streamName, from, count)
	return out, err
}

// readPage reads up to count events of a stream from revision from,
// forwards. missing is the server's own stream-not-found answer to this one
// read: "empty" and "missing" must come from the same read, or a stream
// created between two reads looks empty.
func (s *Store) readPage(ctx context.Context, streamName string, from, count uint64) ([]*esdb.RecordedEvent, bool, error) {
	// The closure fills its own variables, read only once call returned
	// nil: a call abandoned at its deadline (or ctx's end) leaves the
	// closure running, and it must not write anything the caller reads.
	var (
		out     []*esdb.RecordedEvent
		missing bool
	)
	err := s.call(ctx, "read "+streamName, func(ctx context.Context, c *esdb.Client) error {
		out, missing = out[:0], false
		rs, err := c.ReadStream(leaderOnly(ctx), streamName, esdb.ReadStreamOptions{Direction: esdb.Forwards, From: esdb.Revision(from)}, count)
		if err != nil {
			return err
		}
		defer rs.Close()
		for {
			ev, err := rs.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if isCode(err, esdb.ErrorCodeResourceNotFound) {
				missing = true
				return nil
			}
			if err != nil {
				return err
			}
			out = append(out, ev.OriginalEvent())
		}
	})
	if err != nil {
		return nil, false, err
	}
	return out, missing, nil
}

// checkSize refuses, before anything is claimed, events whose append would
// exceed the node's MaxAppendSize, counted as the node counts it (Event.cs):
// data + metadata + 2 × type length per event.
func (s *Store) checkSize(events []store.Event, unique []int) error {
	size := 0
	for _, i := range unique {
		e := &events[i]
		d, err := encode(e, [32]byte{}, [32]byte{}, newNonce())
		if err != nil {
			return err
		}
		n := len(d.Data) + len(d.Metadata) + 2*len(d.EventType)
		if n > s.opts.MaxAppendSize {
			return fmt.Errorf("event %s is %d bytes with its metadata, over the EventStoreDB append limit of %d: %w",
				e.ID, n, s.opts.MaxAppendSize, store.ErrTooLarge)
		}
		size += n
	}
	if size > s.opts.MaxAppendSize {
		return fmt.Errorf("%d events are %d bytes with their metadata, over the EventStoreDB append limit of %d; append them separately: %w",
			len(unique), size, s.opts.MaxAppendSize, store.ErrTooLarge)
	}
	return nil
}

// appendCall appends data to streamName with the expected revision exp.
//
// A node refuses an append (ACL, size) as soon as it knows, without reading
// the rest of the request; the client's Send then fails with a bare io.EOF
// and v4.2.0 returns that instead of the node's status. Such an append was
// not stored (the node never saw the end of the request), so the adapter
// asks again with the same options and no events, which the node answers
// in full: an ACL refusal comes back as such. If that probe is accepted,
// the refusal concerned the events, so it is the size limit (the only other
// early check) once a second full try refuses early again.
func (s *Store) appendCall(ctx context.Context, op, streamName string, exp esdb.ExpectedRevision, data []esdb.EventData) (*esdb.WriteResult, error) {
	var wr *esdb.WriteResult
	do := func(data []esdb.EventData) error {
		return s.call(ctx, op, func(ctx context.Context, c *esdb.Client) error {
			r, err := c.AppendToStream(ctx, streamName, esdb.AppendToStreamOptions{ExpectedRevision: exp}, data...)
			wr = r
			return err
		})
	}
	err := do(data)
	for try := 0; try < 2 && refusedEarly(err) && ctx.Err() == nil; try++ {
		if perr := do(nil); perr != nil && !refusedEarly(perr) && !isCode(perr, esdb.ErrorCodeWrongExpectedVersion) {
			return nil, perr // the node's real answer (access denied, unavailable, …)
		}
		if try == 1 {
			return nil, fmt.Errorf("%s: the node refused the events before reading them although it accepts this stream; "+
				"its MaxAppendSize is probably below the adapter's (%d): %w", op, s.opts.MaxAppendSize, store.ErrTooLarge)
		}
		err = do(data)
	}
	if err != nil {
		return nil, err
	}
	return wr, nil
}

// refusedEarly reports a bare io.EOF from an append's Send.
func refusedEarly(err error) bool {
	return err != nil && errors.Is(err, io.EOF) && status.Code(err) == codes.Unknown
}
