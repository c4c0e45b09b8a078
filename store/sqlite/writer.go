package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/fcaudit/fcaudit/store"
)

type requestKind int

const (
	kindAppend requestKind = iota
	kindPing
	kindExec // tests only: run an arbitrary statement on the write connection
)

// request is one Append or Ping handed to the writer goroutine.
type request struct {
	ctx      context.Context
	kind     requestKind
	stream   string
	expected store.ExpectedRevision
	events   []store.Event
	sql      string

	// set by the writer before done is closed
	results  []store.Appended
	inserted int
	err      error
	done     chan struct{}
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
	for i, e := range events {
		// What is stored is what the chain hashes: keep microseconds, UTC.
		e.ReceivedAt = e.ReceivedAt.Truncate(time.Microsecond).UTC()
		evs[i] = e
	}
	r := &request{ctx: ctx, kind: kindAppend, stream: stream, expected: expected, events: evs, done: make(chan struct{})}
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

	byID, head, insert, ping *sql.Stmt
}

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
	prep(&w.insert, `INSERT INTO events (event_id, stream, revision, type, created, received_at, livemode,
		api_version, connect_account, source, body_sha256, chain_hash, provenance, body)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
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

// commit runs one group commit: BEGIN IMMEDIATE, one SAVEPOINT per request,
// COMMIT, then answers every request.
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
			r.results, r.err = nil, err
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
		w.s.log.Error("begin group commit", "err", err)
		fail(fmt.Errorf("begin: %w", err))
		return
	}
	for _, r := range live {
		if _, err := w.conn.ExecContext(ctx, "SAVEPOINT req"); err != nil {
			w.rollback()
			fail(fmt.Errorf("savepoint: %w", err))
			return
		}
		err := w.apply(ctx, r)
		if err != nil && isUnavailable(err) {
			// A storage failure may have rolled the whole transaction
			// back already; nothing of this batch can be trusted.
			w.rollback()
			w.s.log.Error("group commit", "err", err)
			fail(err)
			return
		}
		if err != nil {
			r.err, r.results, r.inserted = err, nil, 0
			_, err = w.conn.ExecContext(ctx, "ROLLBACK TO req")
		}
		if err == nil {
			_, err = w.conn.ExecContext(ctx, "RELEASE req")
		}
		if err != nil {
			w.rollback()
			fail(fmt.Errorf("savepoint: %w", err))
			return
		}
		stats.Events += r.inserted
	}
	if _, err := w.conn.ExecContext(ctx, "COMMIT"); err != nil {
		w.rollback()
		w.s.log.Error("commit", "err", err)
		fail(fmt.Errorf("commit: %w", err))
		return
	}
	for _, r := range live {
		close(r.done)
	}
	if stats.Events > 0 {
		w.s.broadcastCommit()
	}
}

func (w *writer) rollback() {
	// Fails harmlessly when SQLite already rolled back after an I/O error.
	_, _ = w.conn.ExecContext(context.Background(), "ROLLBACK")
}

// apply runs one request inside its savepoint.
func (w *writer) apply(ctx context.Context, r *request) error {
	switch r.kind {
	case kindPing:
		_, err := w.ping.ExecContext(ctx, time.Now().UTC().Format(time.RFC3339Nano))
		return err
	case kindExec:
		_, err := w.conn.ExecContext(ctx, r.sql)
		return err
	}
	res := make([]store.Appended, len(r.events))
	dupOf := make([]int, len(r.events)) // index of an earlier event of this request with the same id, or -1
	firstNew := make(map[string]int, len(r.events))
	fresh := 0
	for i, e := range r.events {
		dupOf[i] = -1
		res[i].ID = e.ID
		var pos int64
		err := w.byID.QueryRowContext(ctx, e.ID).Scan(&res[i].Stream, &res[i].Revision, &pos)
		switch {
		case err == nil:
			res[i].Position, res[i].Duplicate = store.Position(pos), true
			continue
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("look up event %s: %w", e.ID, err)
		}
		if j, ok := firstNew[e.ID]; ok {
			dupOf[i] = j
			continue
		}
		firstNew[e.ID] = i
		fresh++
	}
	if fresh == 0 {
		// Every event is already stored: an idempotent re-append, which
		// succeeds whatever the expected revision.
		r.results = res
		return nil
	}
	// Read the head inside the transaction, never from a cache: another
	// process may have appended to this stream since our last commit.
	var (
		last   int64 = -1
		chain  []byte
		rev    int64
		prev   [32]byte
		exists bool
	)
	err := w.head.QueryRowContext(ctx, r.stream).Scan(&rev, &chain)
	switch {
	case err == nil:
		last, exists = rev, true
		if len(chain) != 32 {
			return fmt.Errorf("stream %s revision %d: corrupt chain hash (%d bytes)", r.stream, rev, len(chain))
		}
		copy(prev[:], chain)
	case errors.Is(err, sql.ErrNoRows):
		prev = store.ChainSeed(r.stream)
	default:
		return fmt.Errorf("read head of %s: %w", r.stream, err)
	}
	switch exp := r.expected; {
	case exp == store.AnyRevision:
	case exp == store.NoStream && !exists:
	case exp >= 0 && exists && int64(exp) == last:
	default:
		return &store.WrongRevisionError{Stream: r.stream, Expected: exp, Actual: last}
	}
	next := last + 1
	for i, e := range r.events {
		if res[i].Duplicate || dupOf[i] >= 0 {
			continue
		}
		body := sha256.Sum256(e.Data)
		prev = store.ChainHash(prev, body, e.ID, e.ReceivedAt)
		var ca, prov any
		if e.ConnectAccount != "" {
			ca = e.ConnectAccount
		}
		if e.Provenance != nil {
			b, err := json.Marshal(e.Provenance)
			if err != nil {
				return fmt.Errorf("encode provenance of %s: %w", e.ID, err)
			}
			prov = string(b)
		}
		out, err := w.insert.ExecContext(ctx, e.ID, r.stream, next, e.Type, e.Created, e.ReceivedAt.UnixMicro(),
			boolInt(e.Livemode), e.APIVersion, ca, e.Source, body[:], prev[:], prov, e.Data)
		if err != nil {
			return fmt.Errorf("insert event %s: %w", e.ID, err)
		}
		pos, err := out.LastInsertId()
		if err != nil {
			return fmt.Errorf("insert event %s: %w", e.ID, err)
		}
		res[i].Stream, res[i].Revision, res[i].Position = r.stream, uint64(next), store.Position(pos)
		next++
		r.inserted++
	}
	for i, j := range dupOf {
		if j >= 0 {
			res[i] = res[j]
			res[i].Duplicate = true
		}
	}
	r.results = res
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
