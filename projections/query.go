package projections

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/store"
)

// ListOptions select accounts for Accounts. Empty fields do not filter.
type ListOptions struct {
	Status      string
	Institution string
	Livemode    *bool
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

// Account returns an account's current status from the live read model
// (ErrAccountNotFound when the projection has no row for it).
func (r *Runner) Account(ctx context.Context, id string) (*AccountStatus, error) {
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
	s := new(AccountStatus)
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("account %s: decode state: %w", id, err)
	}
	return s, nil
}

// AsOf selects the events a time-travel query folds.
type AsOf struct {
	// Created: events whose Stripe created time is ≤ Created (what was
	// true then). Unix seconds; 0 = no bound.
	Created int64
	// Received: events fcaudit received at or before Received (what
	// fcaudit knew then). Zero = no bound.
	Received time.Time
}

// AccountAt folds the account's stream on demand, keeping only the events
// selected by at, with the same fold as the live projection. It reads the
// event log, not the read model, so it is exact even while the projection
// lags. ErrAccountNotFound when no selected event exists.
func (r *Runner) AccountAt(ctx context.Context, id string, at AsOf) (*AccountStatus, error) {
	evs, err := r.log.ReadStream(ctx, fc.AccountStream(id), 0, 0)
	if errors.Is(err, store.ErrStreamNotFound) {
		return nil, fmt.Errorf("account %s: %w", id, ErrAccountNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", id, err)
	}
	kept := evs[:0]
	for _, ev := range evs {
		if at.Created != 0 && ev.Created > at.Created {
			continue
		}
		if !at.Received.IsZero() && ev.ReceivedAt.After(at.Received) {
			continue
		}
		kept = append(kept, ev)
	}
	s, err := FoldAccount(kept)
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", id, err)
	}
	if s == nil {
		return nil, fmt.Errorf("account %s: %w at that time", id, ErrAccountNotFound)
	}
	return s, nil
}
