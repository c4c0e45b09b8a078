package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fcaudit/fcaudit/store"
)

// Column lists; body is last in the table so metadata-only scans never read
// its overflow pages.
const (
	metaCols = `position, event_id, stream, revision, type, created, received_at, livemode,
		api_version, connect_account, source, body_sha256, chain_hash, provenance`
	allCols = metaCols + `, body`
)

func (s *Store) readErr(ctx context.Context, err error) error {
	if s.isClosed() {
		return store.ErrClosed
	}
	return mapErr(ctx, err)
}

// scanEvent reads the current row of rows (selected with metaCols, or
// allCols when withData). The hash and provenance columns are scanned as
// RawBytes (no copy) and decoded in place.
func scanEvent(rows *sql.Rows, withData bool) (store.RecordedEvent, error) {
	var (
		e                    store.RecordedEvent
		pos, recv, live      int64
		ca                   sql.NullString
		bodySum, chain, prov sql.RawBytes
		dest                 = [15]any{&pos, &e.ID, &e.Stream, &e.Revision, &e.Type, &e.Created, &recv, &live, &e.APIVersion, &ca, &e.Source, &bodySum, &chain, &prov, &e.Data}
	)
	n := len(dest)
	if !withData {
		n--
	}
	if err := rows.Scan(dest[:n]...); err != nil {
		return e, err
	}
	e.Position = store.Position(pos)
	e.ReceivedAt = time.UnixMicro(recv).UTC()
	e.Livemode = live != 0
	e.ConnectAccount = ca.String
	if len(bodySum) != 32 || len(chain) != 32 {
		return e, fmt.Errorf("event %s: corrupt hash columns", e.ID)
	}
	copy(e.BodySHA256[:], bodySum)
	copy(e.ChainHash[:], chain)
	if prov != nil {
		p, err := decodeProvenance(prov)
		if err != nil {
			return e, provenanceErr(e.ID, err)
		}
		e.Provenance = p
	}
	return e, nil
}

func collect(rows *sql.Rows, withData bool, hint int) ([]store.RecordedEvent, error) {
	defer rows.Close()
	out := make([]store.RecordedEvent, 0, hint)
	for rows.Next() {
		e, err := scanEvent(rows, withData)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// ReadStream implements store.Store using the (stream, revision) index.
func (s *Store) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]store.RecordedEvent, error) {
	if s.isClosed() {
		return nil, fmt.Errorf("read stream %s: %w", stream, store.ErrClosed)
	}
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.query(ctx, nil, `SELECT `+allCols+` FROM events
		WHERE stream = ? AND revision >= ? ORDER BY revision LIMIT ?`, stream, int64(from), limit)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, s.readErr(ctx, err))
	}
	evs, err := collect(rows, true, 16)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, s.readErr(ctx, err))
	}
	if len(evs) == 0 && from == 0 {
		return nil, fmt.Errorf("read stream %s: %w", stream, store.ErrStreamNotFound)
	}
	if len(evs) == 0 {
		// Distinguish "no such stream" from "nothing at or after from".
		// (Another snapshot: if the stream appeared meanwhile, an empty
		// result is still a true answer for the first one.)
		var one int
		err := s.rdb.QueryRowContext(ctx, `SELECT 1 FROM events WHERE stream = ? LIMIT 1`, stream).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("read stream %s: %w", stream, store.ErrStreamNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("read stream %s: %w", stream, s.readErr(ctx, err))
		}
	}
	return evs, nil
}

// EventByID implements store.Store using the unique event_id index.
func (s *Store) EventByID(ctx context.Context, id string) (store.RecordedEvent, error) {
	if s.isClosed() {
		return store.RecordedEvent{}, fmt.Errorf("event %s: %w", id, store.ErrClosed)
	}
	rows, err := s.query(ctx, nil, `SELECT `+allCols+` FROM events WHERE event_id = ?`, id)
	if err != nil {
		return store.RecordedEvent{}, fmt.Errorf("event %s: %w", id, s.readErr(ctx, err))
	}
	evs, err := collect(rows, true, 1)
	if err != nil {
		return store.RecordedEvent{}, fmt.Errorf("event %s: %w", id, s.readErr(ctx, err))
	}
	if len(evs) == 0 {
		return store.RecordedEvent{}, fmt.Errorf("event %s: %w", id, store.ErrEventNotFound)
	}
	return evs[0], nil
}

// Head implements store.Store.
func (s *Store) Head(ctx context.Context) (store.Position, error) {
	if s.isClosed() {
		return 0, fmt.Errorf("head: %w", store.ErrClosed)
	}
	var h sql.NullInt64
	if err := s.rdb.QueryRowContext(ctx, `SELECT max(position) FROM events`).Scan(&h); err != nil {
		return 0, fmt.Errorf("head: %w", s.readErr(ctx, err))
	}
	return store.Position(h.Int64), nil
}

// ReadAll implements store.Store. The filter is translated to SQL; Limit
// defaults to 1000 and is capped at 10000 so no single query holds a read
// snapshot for long.
func (s *Store) ReadAll(ctx context.Context, opts store.ReadOptions) ([]store.RecordedEvent, error) {
	if s.isClosed() {
		return nil, fmt.Errorf("read all: %w", store.ErrClosed)
	}
	evs, _, err := s.readPage(ctx, opts, false)
	if err != nil {
		return nil, fmt.Errorf("read all after %d: %w", opts.After, s.readErr(ctx, err))
	}
	return evs, nil
}

// readPage runs one ReadAll query. With withHead it also returns the log's
// head in the same snapshot, so a filtered subscriber can skip past
// non-matching events: when the page is not full, everything up to head has
// been seen.
func (s *Store) readPage(ctx context.Context, opts store.ReadOptions, withHead bool) ([]store.RecordedEvent, store.Position, error) {
	limit := opts.Limit
	switch {
	case limit <= 0:
		limit = defaultReadLimit
	case limit > maxReadLimit:
		limit = maxReadLimit
	}
	where, args := filterSQL(opts.Filter)
	cols := allCols
	if opts.WithoutData {
		cols = metaCols
	}
	if !withHead {
		q := `SELECT ` + cols + ` FROM events WHERE position > ?` + where + ` ORDER BY position LIMIT ?`
		rows, err := s.query(ctx, nil, q, append(append([]any{int64(opts.After)}, args...), limit)...)
		if err != nil {
			return nil, 0, err
		}
		evs, err := collect(rows, !opts.WithoutData, min(limit, 256))
		return evs, 0, err
	}
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, err
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	var h sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT max(position) FROM events`).Scan(&h); err != nil {
		return nil, 0, err
	}
	q := `SELECT ` + cols + ` FROM events WHERE position > ? AND position <= ?` + where + ` ORDER BY position LIMIT ?`
	rows, err := s.query(ctx, tx, q, append(append([]any{int64(opts.After), h.Int64}, args...), limit)...)
	if err != nil {
		return nil, 0, err
	}
	evs, err := collect(rows, !opts.WithoutData, min(limit, 256))
	if err != nil {
		return nil, 0, err
	}
	head := store.Position(h.Int64)
	if len(evs) == limit {
		head = evs[len(evs)-1].Position
	}
	return evs, head, nil
}

// filterSQL translates f into " AND …" conditions with their arguments.
func filterSQL(f store.Filter) (string, []any) {
	var (
		b    strings.Builder
		args []any
	)
	if f.StreamPrefix != "" {
		// A byte range (upper bound: the prefix with its last byte
		// incremented). The unary + keeps SQLite off the (stream, revision)
		// index: a prefix usually matches most of the log, and walking
		// that index would sort every matching row by position for each
		// page (a temp B-tree), where the rowid walk stops at LIMIT.
		b.WriteString(" AND +stream >= ?")
		args = append(args, f.StreamPrefix)
		if hi, ok := prefixUpper(f.StreamPrefix); ok {
			b.WriteString(" AND +stream < ?")
			args = append(args, hi)
		}
	}
	in := func(col string, vals []string) {
		b.WriteString(" AND " + col + " IN (")
		for i, v := range vals {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("?")
			args = append(args, v)
		}
		b.WriteString(")")
	}
	if len(f.Streams) > 0 {
		in("stream", f.Streams)
	}
	if len(f.Types) > 0 {
		b.WriteString(" AND (")
		for i, p := range f.Types {
			if i > 0 {
				b.WriteString(" OR ")
			}
			if strings.Contains(p, "*") {
				b.WriteString("type GLOB ?")
				args = append(args, typeGlob(p))
			} else {
				b.WriteString("type = ?")
				args = append(args, p)
			}
		}
		b.WriteString(")")
	}
	if f.CreatedFrom != 0 {
		b.WriteString(" AND created >= ?")
		args = append(args, f.CreatedFrom)
	}
	if f.CreatedTo != 0 {
		b.WriteString(" AND created <= ?")
		args = append(args, f.CreatedTo)
	}
	if !f.ReceivedFrom.IsZero() {
		// Stored times are whole microseconds: round the lower bound up.
		from := f.ReceivedFrom.UnixMicro()
		if f.ReceivedFrom.After(time.UnixMicro(from)) {
			from++
		}
		b.WriteString(" AND received_at >= ?")
		args = append(args, from)
	}
	if !f.ReceivedTo.IsZero() {
		to := f.ReceivedTo.UnixMicro()
		if f.ReceivedTo.Before(time.UnixMicro(to)) {
			to-- // UnixMicro truncates toward zero for times before 1970
		}
		b.WriteString(" AND received_at <= ?")
		args = append(args, to)
	}
	if len(f.Sources) > 0 {
		in("source", f.Sources)
	}
	return b.String(), args
}

// prefixUpper returns the smallest string greater than every string with
// prefix p, or false when there is none (p is all 0xff bytes).
func prefixUpper(p string) (string, bool) {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

// typeGlob turns a Filter type pattern ('*' = any run) into an SQLite GLOB
// pattern, escaping GLOB's other metacharacters ('?', '[') by bracketing.
func typeGlob(p string) string {
	var b strings.Builder
	for _, r := range p {
		switch r {
		case '?':
			b.WriteString("[?]")
		case '[':
			b.WriteString("[[]")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// maxStmts bounds the prepared-statement cache; filters with many values
// make distinct statements, and those beyond the bound run unprepared.
const maxStmts = 64

// query runs q (on tx when not nil) through a prepared statement cached by
// its text, so hot reads (EventByID, ReadStream, pages) skip SQLite's parse
// and plan on every call. database/sql prepares it once per connection.
func (s *Store) query(ctx context.Context, tx *sql.Tx, q string, args ...any) (*sql.Rows, error) {
	st, err := s.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	if st == nil {
		if tx != nil {
			return tx.QueryContext(ctx, q, args...)
		}
		return s.rdb.QueryContext(ctx, q, args...)
	}
	if tx != nil {
		return tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return st.QueryContext(ctx, args...)
}

func (s *Store) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	if st, ok := s.stmts[q]; ok {
		return st, nil
	}
	if len(s.stmts) >= maxStmts || s.isClosed() {
		return nil, nil
	}
	st, err := s.rdb.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if s.stmts == nil {
		s.stmts = make(map[string]*sql.Stmt)
	}
	s.stmts[q] = st
	return st, nil
}
