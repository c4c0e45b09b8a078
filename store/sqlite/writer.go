package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/fcaudit/fcaudit/internal/logkey"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/translog"
)

type requestKind int

const (
	kindAppend requestKind = iota
	kindPing
	kindExec       // tests only: run an arbitrary statement on the write connection
	kindCheckpoint // keep a signed checkpoint (merkle.go)
)

// request is one Append or Ping handed to the writer goroutine.
type request struct {
	ctx      context.Context
	kind     requestKind
	stream   string
	expected store.ExpectedRevision
	events   []store.Event
	sums     [][32]byte             // SHA-256 of each event's Data
	partial  []translog.PartialLeaf // each event's leaf hash up to its revision; nil without the tree
	sql      string

	checkpoint *translog.Checkpoint // kindCheckpoint

	// set by the writer before done is closed
	results  []store.Appended
	inserted int
	err      error
	done     chan struct{}

	// Writer-private: the stream's head after this request (valid when
	// inserted > 0) and, when subscribers are waiting, the events it
	// inserted as reads will return them.
	head     streamHead
	recorded []store.RecordedEvent
	leaves   []leafRec // the inserted events' leaves, in position order
}

// Append implements store.Store. Events are validated, queued for the writer
// goroutine and committed in the next group commit; Append returns after
// COMMIT (and its fsync) succeeded.
//
// Cancellation: while the request waits in the queue, cancelling ctx
// withdraws it (the writer skips requests whose context is done). Once the
// writer has started the transaction, cancelling ctx makes Append return at
// once with ctx's error, but the events may still be committed; callers that
// retry are safe because appends are deduplicated by event id.
func (s *Store) Append(ctx context.Context, stream string, expected store.ExpectedRevision, events ...store.Event) ([]store.Appended, error) {
	if s.opts.ReadOnly {
		return nil, fmt.Errorf("append %s: %w", stream, store.ErrReadOnly)
	}
	if err := validate(stream, expected, events); err != nil {
		return nil, fmt.Errorf("append %s: %w", stream, err)
	}
	evs := make([]store.Event, len(events))
	// Hashing needs no revision except the leaf's last member: done here,
	// in the caller's goroutine, it keeps the serial writer short.
	sums := make([][32]byte, len(events))
	var leaves []translog.PartialLeaf
	if !s.opts.withoutTree {
		leaves = make([]translog.PartialLeaf, len(events))
	}
	for i, e := range events {
		// What is stored is what the chain hashes: keep microseconds, UTC.
		e.ReceivedAt = e.ReceivedAt.Truncate(time.Microsecond).UTC()
		evs[i] = e
		sums[i] = sha256.Sum256(e.Data)
		if leaves != nil {
			leaves[i] = translog.StartLeaf(&evs[i], stream, sums[i])
		}
	}
	r := &request{ctx: ctx, kind: kindAppend, stream: stream, expected: expected, events: evs, sums: sums, partial: leaves, done: make(chan struct{})}
	if err := s.submit(r); err != nil {
		return nil, fmt.Errorf("append %s: %w", stream, err)
	}
	return r.results, nil
}

func validate(stream string, expected store.ExpectedRevision, events []store.Event) error {
	if stream == "" {
		return fmt.Errorf("%w: empty stream name", store.ErrInvalidEvent)
	}
	if expected < store.AnyRevision {
		return fmt.Errorf("%w: expected revision %s", store.ErrInvalidEvent, expected)
	}
	if len(events) == 0 {
		return fmt.Errorf("%w: no events", store.ErrInvalidEvent)
	}
	for i, e := range events {
		switch {
		case e.ID == "":
			return fmt.Errorf("%w: event %d has no ID", store.ErrInvalidEvent, i)
		case e.Type == "":
			return fmt.Errorf("%w: event %s has no type", store.ErrInvalidEvent, e.ID)
		case len(e.Data) == 0:
			return fmt.Errorf("%w: event %s has no data", store.ErrInvalidEvent, e.ID)
		case e.Source == "":
			return fmt.Errorf("%w: event %s has no source", store.ErrInvalidEvent, e.ID)
		}
	}
	return nil
}

// Ping implements store.Store. On a writable store it sends a one-row write
// through the writer queue, so it joins the next group commit and fails, with
// store.ErrUnavailable, exactly when appends would (full disk, I/O errors,
// a lock held too long); it succeeds again once the cause clears. On a
// read-only store it runs a query.
func (s *Store) Ping(ctx context.Context) error {
	if s.isClosed() {
		return fmt.Errorf("ping: %w", store.ErrClosed)
	}
	if s.opts.ReadOnly {
		var n int64
		if err := s.rdb.QueryRowContext(ctx, "SELECT count(*) FROM meta").Scan(&n); err != nil {
			return fmt.Errorf("ping: %w", s.readErr(ctx, err))
		}
		return nil
	}
	r := &request{ctx: ctx, kind: kindPing, done: make(chan struct{})}
	if err := s.submit(r); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// execWrite runs a statement on the write connection inside the writer's
// next transaction; tests use it to inject faults (e.g. max_page_count).
func (s *Store) execWrite(ctx context.Context, query string) error {
	r := &request{ctx: ctx, kind: kindExec, sql: query, done: make(chan struct{})}
	return s.submit(r)
}

// submit queues r for the writer and waits for its answer.
func (s *Store) submit(r *request) error {
	if s.isClosed() {
		return store.ErrClosed
	}
	select {
	case s.reqs <- r:
	case <-r.ctx.Done():
		return r.ctx.Err()
	case <-s.closing:
		return store.ErrClosed
	}
	select {
	case <-r.done:
		return r.err
	case <-r.ctx.Done():
		return r.ctx.Err()
	case <-s.writerDone:
		// The writer may have answered just before exiting; if not, the
		// request arrived after it drained the queue and was never run.
		select {
		case <-r.done:
			return r.err
		default:
			return store.ErrClosed
		}
	}
}

// writer owns the write connection and its prepared statements.
type writer struct {
	s    *Store
	conn *sql.Conn

	byID, head, insert, ping, dataVersion *sql.Stmt
	putTree                               map[int]*sql.Stmt // merkle_tree upserts by row count (merkle.go)

	// tree is the Merkle tree as committed (merkle.go); nil means "load it
	// from the file in the next transaction": after another connection
	// wrote, or after a transaction that changed it failed.
	tree *translog.Tree

	// committed caches stream heads this writer committed, sparing the
	// random read of the head row's chain hash — a page that is rarely in
	// cache once there are many streams. It is trusted only while no other
	// connection has written the file: each transaction first reads PRAGMA
	// data_version, which SQLite changes exactly when another connection
	// (in any process) committed since this one last looked, and empties
	// the cache when it moved.
	committed map[string]streamHead
	version   int64 // data_version when committed was last known valid
}

// maxCachedHeads bounds the committed-head cache (≈100 bytes an entry).
const maxCachedHeads = 100_000

func (s *Store) newWriter() (*writer, error) {
	ctx := context.Background()
	conn, err := s.wdb.Conn(ctx)
	if err != nil {
		return nil, mapErr(nil, err)
	}
	w := &writer{s: s, conn: conn}
	prep := func(dst **sql.Stmt, q string) {
		if err == nil {
			*dst, err = conn.PrepareContext(ctx, q)
		}
	}
	prep(&w.byID, `SELECT stream, revision, position FROM events WHERE event_id = ?`)
	prep(&w.head, `SELECT revision, chain_hash FROM events WHERE stream = ? ORDER BY revision DESC LIMIT 1`)
	prep(&w.dataVersion, `PRAGMA data_version`)
	// ON CONFLICT(event_id) DO NOTHING makes the UNIQUE index the
	// duplicate check (one statement per event instead of a SELECT first);
	// any other constraint violation still fails the statement.
	prep(&w.insert, `INSERT INTO events (event_id, stream, revision, type, created, received_at, livemode,
		api_version, connect_account, source, body_sha256, chain_hash, provenance, body)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (event_id) DO NOTHING`)
	prep(&w.ping, `INSERT INTO meta (key, value) VALUES ('last_ping', ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`)
	if err != nil {
		conn.Close()
		return nil, mapErr(nil, err)
	}
	return w, nil
}

func (w *writer) run() {
	s := w.s
	defer close(s.writerDone)
	defer w.conn.Close()
	batch := make([]*request, 0, 64)
	for {
		var first *request
		select {
		case first = <-s.reqs:
		case <-s.closing:
			w.failQueued()
			return
		}
		batch = append(batch[:0], first)
		n := len(first.events)
	drain:
		for n < s.opts.MaxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
				n += len(r.events)
			default:
				break drain
			}
		}
		w.commit(batch)
		clear(batch) // drop references to answered requests
	}
}

func (w *writer) failQueued() {
	for {
		select {
		case r := <-w.s.reqs:
			r.err = store.ErrClosed
			close(r.done)
		default:
			return
		}
	}
}

// streamHead is a stream's last revision and chain value inside the
// writer's transaction.
type streamHead struct {
	exists bool
	last   int64 // -1 when !exists
	chain  [32]byte
}

// needsSavepoint reports whether r can leave partial changes behind when it
// fails. A one-event append writes with a single INSERT, and an SQLite
// statement is atomic, so it runs without SAVEPOINT/RELEASE: two statements
// fewer for the common webhook append.
func needsSavepoint(r *request) bool {
	return r.kind == kindExec || r.kind == kindCheckpoint || (r.kind == kindAppend && len(r.events) > 1)
}

// commit runs one group commit: BEGIN IMMEDIATE, each request (in its own
// SAVEPOINT when it needs one), COMMIT, then answers every request and hands
// the committed events to in-process subscribers.
func (w *writer) commit(batch []*request) {
	ctx := context.Background() // statements are never interrupted halfway; requests' contexts are checked between them
	start := time.Now()
	var live []*request
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			close(r.done)
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	stats := CommitStats{Requests: len(live)}
	fail := func(err error) {
		err = mapErr(nil, err)
		if !errors.Is(err, store.ErrUnavailable) {
			err = &unavailableError{err: err}
		}
		stats.Err, stats.Events = err, 0
		for _, r := range live {
			r.results, r.err, r.recorded = nil, err, nil
			close(r.done)
		}
	}
	defer func() {
		stats.Duration = time.Since(start)
		if w.s.opts.OnCommit != nil {
			w.s.opts.OnCommit(stats)
		}
	}()
	if _, err := w.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		w.s.log.Error("begin group commit", logkey.Err(err))
		fail(fmt.Errorf("begin: %w", err))
		return
	}
	if err := w.checkCache(ctx); err != nil {
		w.rollback()
		w.s.log.Error("group commit", logkey.Err(err))
		fail(err)
		return
	}
	// Any failure from here on may leave the in-memory tree ahead of the
	// file; reload it in the next transaction.
	committed := false
	defer func() {
		if !committed {
			w.tree = nil
		}
	}()
	// Stream heads written by this transaction, by requests that succeeded
	// (a request rolled back to its savepoint leaves none). They join the
	// committed-head cache only once COMMIT succeeds.
	heads := make(map[string]streamHead)
	record := w.s.subs.Load() > 0
	for _, r := range live {
		sp := needsSavepoint(r)
		if sp {
			if _, err := w.conn.ExecContext(ctx, "SAVEPOINT req"); err != nil {
				w.rollback()
				fail(fmt.Errorf("savepoint: %w", err))
				return
			}
		}
		err := w.apply(ctx, r, heads, record)
		if err != nil && isUnavailable(err) {
			// A storage failure may have rolled the whole transaction
			// back already; nothing of this batch can be trusted.
			w.rollback()
			w.s.log.Error("group commit", logkey.Err(err))
			fail(err)
			return
		}
		if err != nil {
			partial := r.inserted > 0
			r.err, r.results, r.inserted, r.recorded, r.leaves = err, nil, 0, nil, nil
			switch {
			case sp:
				_, err = w.conn.ExecContext(ctx, "ROLLBACK TO req")
			case partial:
				// Cannot happen: a one-event request fails before or in
				// its only INSERT. Never commit half a request.
				err = fmt.Errorf("request failed after writing: %w", r.err)
			default:
				err = nil
			}
		} else if r.inserted > 0 {
			heads[r.stream] = r.head
		}
		if err == nil && sp {
			_, err = w.conn.ExecContext(ctx, "RELEASE req")
		}
		if err != nil {
			w.rollback()
			fail(fmt.Errorf("savepoint: %w", err))
			return
		}
		stats.Events += r.inserted
	}
	if err := w.extendTree(ctx, live); err != nil {
		w.rollback()
		w.s.log.Error("group commit: merkle tree", logkey.Err(err))
		fail(err)
		return
	}
	if _, err := w.conn.ExecContext(ctx, "COMMIT"); err != nil {
		w.rollback()
		w.s.log.Error("commit", logkey.Err(err))
		fail(fmt.Errorf("commit: %w", err))
		return
	}
	committed = true
	w.remember(heads)
	if stats.Events > 0 {
		w.s.nudgeCheckpointer()
		// Publish before answering, so an appender that subscribes right
		// after its Append returns finds its events in the log or the tail.
		w.s.publish(live, stats.Events, record)
	}
	for _, r := range live {
		r.recorded = nil
		close(r.done)
	}
}

func (w *writer) rollback() {
	// Fails harmlessly when SQLite already rolled back after an I/O error.
	_, _ = w.conn.ExecContext(context.Background(), "ROLLBACK")
}

// remember adds the heads of a committed transaction to the cache.
func (w *writer) remember(heads map[string]streamHead) {
	if w.committed == nil {
		w.committed = make(map[string]streamHead, len(heads))
	}
	if len(w.committed)+len(heads) > maxCachedHeads {
		// Drop about a tenth, arbitrary entries (map order is random):
		// a miss costs one extra read, never a wrong answer.
		n := maxCachedHeads / 10
		for k := range w.committed {
			delete(w.committed, k)
			if n--; n == 0 {
				break
			}
		}
	}
	for k, h := range heads {
		w.committed[k] = h
	}
}

// checkCache runs first in every write transaction (so under the write
// lock): it empties the committed-head cache when another connection has
// committed since the last check.
func (w *writer) checkCache(ctx context.Context) error {
	var v int64
	if err := w.dataVersion.QueryRowContext(ctx).Scan(&v); err != nil {
		return fmt.Errorf("read data_version: %w", err)
	}
	if v != w.version {
		clear(w.committed)
		w.tree = nil
		w.version = v
	}
	return nil
}

// readHead reads a stream's head inside the transaction: from heads when
// this transaction already wrote to the stream; else from the committed-head
// cache (valid: checkCache ran at the start of the transaction); else from
// the database.
func (w *writer) readHead(ctx context.Context, stream string, heads map[string]streamHead) (streamHead, error) {
	if h, ok := heads[stream]; ok {
		return h, nil
	}
	if h, ok := w.committed[stream]; ok {
		return h, nil
	}
	w.s.headReads.Add(1)
	var (
		h     = streamHead{last: -1}
		chain sql.RawBytes
	)
	rows, err := w.head.QueryContext(ctx, stream)
	if err != nil {
		return h, fmt.Errorf("read head of %s: %w", stream, err)
	}
	defer rows.Close()
	if rows.Next() {
		if err := rows.Scan(&h.last, &chain); err != nil {
			return h, fmt.Errorf("read head of %s: %w", stream, err)
		}
		if len(chain) != 32 {
			return h, fmt.Errorf("stream %s revision %d: corrupt chain hash (%d bytes)", stream, h.last, len(chain))
		}
		h.exists = true
		copy(h.chain[:], chain)
	} else {
		h.chain = store.ChainSeed(stream)
	}
	if err := rows.Err(); err != nil {
		return h, fmt.Errorf("read head of %s: %w", stream, err)
	}
	return h, nil
}

// lookup returns the coordinates of a stored event, ok=false when the id is
// not stored.
func (w *writer) lookup(ctx context.Context, id string) (store.Appended, bool, error) {
	a := store.Appended{ID: id, Duplicate: true}
	var pos int64
	err := w.byID.QueryRowContext(ctx, id).Scan(&a.Stream, &a.Revision, &pos)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return a, false, nil
	case err != nil:
		return a, false, fmt.Errorf("look up event %s: %w", id, err)
	}
	a.Position = store.Position(pos)
	return a, true, nil
}

// apply runs one request inside the transaction (and its savepoint, if any).
// Events are inserted with ON CONFLICT(event_id) DO NOTHING; an insert that
// changed nothing is a duplicate — of an event stored earlier or earlier in
// this request — whose original coordinates are then looked up.
func (w *writer) apply(ctx context.Context, r *request, heads map[string]streamHead, record bool) error {
	switch r.kind {
	case kindPing:
		_, err := w.ping.ExecContext(ctx, time.Now().UTC().Format(time.RFC3339Nano))
		return err
	case kindExec:
		_, err := w.conn.ExecContext(ctx, r.sql)
		return err
	case kindCheckpoint:
		return w.addCheckpoint(ctx, r.checkpoint)
	}
	h, err := w.readHead(ctx, r.stream, heads)
	if err != nil {
		return err
	}
	switch exp := r.expected; {
	case exp == store.AnyRevision:
	case exp == store.NoStream && !h.exists:
	case exp >= 0 && h.exists && int64(exp) == h.last:
	default:
		// Still a success when every event is already stored (an
		// idempotent re-append); the lookups only run on this rare path.
		res := make([]store.Appended, len(r.events))
		for i, e := range r.events {
			a, ok, err := w.lookup(ctx, e.ID)
			if err != nil {
				return err
			}
			if !ok {
				return &store.WrongRevisionError{Stream: r.stream, Expected: exp, Actual: h.last}
			}
			res[i] = a
		}
		r.results = res
		return nil
	}
	res := make([]store.Appended, len(r.events))
	for i, e := range r.events {
		body := r.sums[i]
		chain := store.ChainHash(h.chain, body, e.ID, e.ReceivedAt)
		var ca, prov any
		if e.ConnectAccount != "" {
			ca = e.ConnectAccount
		}
		if e.Provenance != nil {
			prov = encodeProvenance(e.Provenance)
		}
		next := h.last + 1
		out, err := w.insert.ExecContext(ctx, e.ID, r.stream, next, e.Type, e.Created, e.ReceivedAt.UnixMicro(),
			boolInt(e.Livemode), e.APIVersion, ca, e.Source, body[:], chain[:], prov, e.Data)
		if err != nil {
			return fmt.Errorf("insert event %s: %w", e.ID, err)
		}
		n, err := out.RowsAffected()
		if err != nil {
			return fmt.Errorf("insert event %s: %w", e.ID, err)
		}
		if n == 0 {
			a, ok, err := w.lookup(ctx, e.ID)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("insert event %s: nothing inserted and no event with that id", e.ID)
			}
			res[i] = a
			continue
		}
		pos, err := out.LastInsertId()
		if err != nil {
			return fmt.Errorf("insert event %s: %w", e.ID, err)
		}
		res[i] = store.Appended{ID: e.ID, Stream: r.stream, Revision: uint64(next), Position: store.Position(pos)}
		h = streamHead{exists: true, last: next, chain: chain}
		r.inserted++
		if r.partial != nil {
			r.leaves = append(r.leaves, leafRec{pos: store.Position(pos), hash: r.partial[i].Finish(uint64(next))})
		}
		if record {
			r.recorded = append(r.recorded, recordedAs(e, r.stream, uint64(next), store.Position(pos), body, chain, prov))
		}
	}
	r.head = h
	r.results = res
	return nil
}

// recordedAs builds the RecordedEvent a read of the inserted row returns:
// ReceivedAt as decoded from its microseconds, Provenance as decoded from its
// stored encoding. Data still aliases the caller's body; publish copies it.
func recordedAs(e store.Event, stream string, rev uint64, pos store.Position, body, chain [32]byte, prov any) store.RecordedEvent {
	e.ReceivedAt = time.UnixMicro(e.ReceivedAt.UnixMicro()).UTC()
	e.Provenance = nil
	if b, ok := prov.([]byte); ok {
		p, err := decodeProvenance(b)
		if err == nil {
			e.Provenance = p
		}
	}
	return store.RecordedEvent{Event: e, Stream: stream, Revision: rev, Position: pos, BodySHA256: body, ChainHash: chain}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
