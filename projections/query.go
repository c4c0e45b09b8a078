package projections

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/fcaudit/fcaudit/store"
)

// ListOptions select accounts for Accounts. Empty fields do not filter.
type ListOptions struct {
	Status      string
	Institution string
	Livemode    *bool
	// IDPrefix keeps accounts whose id starts with it.
	IDPrefix string
	// StartingAfter: only accounts whose id sorts after it.
	StartingAfter string
	// Limit caps the result (<= 0: 10).
	Limit int
}

// Accounts returns current account statuses in account id order, and
// whether more match after the last one returned.
func (r *Runner) Accounts(ctx context.Context, o ListOptions) ([]AccountStatus, bool, error) {
	if o.Limit <= 0 {
		o.Limit = 10
	}
	tx, err := r.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, false, fmt.Errorf("list accounts: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	// The table name and the rows come from one snapshot, so a rebuild's
	// swap (which drops the old table) cannot pull it away mid-query.
	c, err := readCatalog(ctx, tx, AccountStatusName)
	if err != nil {
		return nil, false, fmt.Errorf("list accounts: %w", err)
	}
	var (
		where []string
		args  []any
	)
	if o.StartingAfter != "" {
		where, args = append(where, "id > ?"), append(args, o.StartingAfter)
	}
	if o.IDPrefix != "" {
		// A range on the primary key, not LIKE: LIKE folds ASCII case and
		// treats % and _ as wildcards. Ids compare bytewise, and 0xff
		// follows every byte of UTF-8 text.
		where, args = append(where, "id >= ? AND id < ?"), append(args, o.IDPrefix, o.IDPrefix+"\xff")
	}
	if o.Status != "" {
		where, args = append(where, "status = ?"), append(args, o.Status)
	}
	if o.Institution != "" {
		where, args = append(where, "institution_name = ?"), append(args, o.Institution)
	}
	if o.Livemode != nil {
		live := 0
		if *o.Livemode {
			live = 1
		}
		where, args = append(where, "livemode = ?"), append(args, live)
	}
	q := `SELECT state FROM ` + c.LiveTable
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY id LIMIT ?`
	rows, err := tx.QueryContext(ctx, q, append(args, o.Limit+1)...)
	if err != nil {
		return nil, false, fmt.Errorf("list accounts: %w", err)
	}
	defer rows.Close()
	var out []AccountStatus
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, false, fmt.Errorf("list accounts: %w", err)
		}
		var s AccountStatus
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, false, fmt.Errorf("list accounts: decode state: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("list accounts: %w", err)
	}
	more := len(out) > o.Limit
	if more {
		out = out[:o.Limit]
	}
	return out, more, nil
}

// StatusCounts returns how many accounts the live read model holds in each
// status (statuses without accounts are absent).
func (r *Runner) StatusCounts(ctx context.Context) (map[string]int64, error) {
	tx, err := r.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("count accounts: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	c, err := readCatalog(ctx, tx, AccountStatusName)
	if err != nil {
		return nil, fmt.Errorf("count accounts: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT status, count(*) FROM `+c.LiveTable+` GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("count accounts: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var (
			st string
			n  int64
		)
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("count accounts: %w", err)
		}
		out[st] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count accounts: %w", err)
	}
	return out, nil
}

// Account returns an account's current status: its row in the live read
// model, brought up to the head of its stream. The live projection applies
// events a batch window after they are stored; a read that reached the row
// first would miss what was already acknowledged (a webhook's 200), so
// when the stream holds events beyond the row's EventsCount (the row is a
// fold of revisions 0 … EventsCount-1) they are folded onto the row here,
// with the same Apply, reading the stream in pages. When the row is
// current this costs one indexed read of the stream. ErrAccountNotFound
// when the account has no row and no stream.
func (r *Runner) Account(ctx context.Context, id string) (*AccountStatus, error) {
	s, err := r.row(ctx, id)
	if err != nil && !errors.Is(err, ErrAccountNotFound) {
		return nil, err
	}
	var from uint64
	if s != nil {
		from = uint64(s.EventsCount)
	}
	caught, err := foldFrom(ctx, r.log, id, s, from, AsOf{})
	switch {
	case errors.Is(err, ErrAccountNotFound) && s != nil:
		// A row without a stream: the read model is all there is.
		return s, nil
	case errors.Is(err, ErrAccountNotFound):
		return nil, fmt.Errorf("account %s: %w", id, ErrAccountNotFound)
	case err != nil:
		return nil, fmt.Errorf("account %s: %w", id, err)
	}
	return caught, nil
}

// row reads an account's row from the live read model (ErrAccountNotFound
// when there is none), with the fold's private part (decodeState).
func (r *Runner) row(ctx context.Context, id string) (*AccountStatus, error) {
	tx, err := r.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", id, err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	c, err := readCatalog(ctx, tx, AccountStatusName)
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", id, err)
	}
	var b []byte
	err = tx.QueryRowContext(ctx, `SELECT state FROM `+c.LiveTable+` WHERE id = ?`, id).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("account %s: %w", id, ErrAccountNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", id, err)
	}
	s, err := decodeState(id, b)
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", id, err)
	}
	if len(s.unreadable) == 0 && bytes.Contains(b, []byte(`"undecodable_events"`)) {
		// A row written before the ranks were kept: show its count as
		// stored, as Account always did (the next write recomputes it).
		var stored struct {
			N int64 `json:"undecodable_events"`
		}
		if json.Unmarshal(b, &stored) == nil {
			s.UndecodableEvents = stored.N
		}
	}
	return s, nil
}

// AccountAt folds the account's stream on demand, keeping only the events
// selected by at, with the same fold as the live projection (FoldStream:
// one page of the stream in memory at a time). It reads the event log, not
// the read model, so it is exact even while the projection lags.
// ErrAccountNotFound when no selected event exists.
func (r *Runner) AccountAt(ctx context.Context, id string, at AsOf) (*AccountStatus, error) {
	return FoldStream(ctx, r.log, id, at)
}

// FoldAt folds the events of one account's stream that at selects with the
// same fold as FoldStream: what AccountAt answers, for a caller that has
// read the stream already (the console's account page). It returns nil
// when no event is selected; evs is not modified.
func FoldAt(evs []store.RecordedEvent, at AsOf) (*AccountStatus, error) {
	return applySelected(nil, evs, 0, at)
}
