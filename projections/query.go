package projections

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/fcaudit/fcaudit/api"
	"github.com/fcaudit/fcaudit/internal/timearg"
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
// selected by at, with the same fold as the live projection (FoldAt). It
// reads the event log, not the read model, so it is exact even while the
// projection lags. ErrAccountNotFound when no selected event exists.
func (r *Runner) AccountAt(ctx context.Context, id string, at AsOf) (*AccountStatus, error) {
	evs, err := r.log.ReadStream(ctx, store.AccountStream(id), 0, 0)
	if errors.Is(err, store.ErrStreamNotFound) {
		return nil, fmt.Errorf("account %s: %w", id, ErrAccountNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", id, err)
	}
	s, err := FoldAt(evs, at)
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", id, err)
	}
	if s == nil {
		return nil, fmt.Errorf("account %s: %w at that time", id, ErrAccountNotFound)
	}
	return s, nil
}

// FoldAt folds the events of one account's stream that at selects (Stripe
// created ≤ at.Created, received ≤ at.Received) with FoldAccount: what
// AccountAt answers, for a caller that has read the stream already. It
// returns nil when no event is selected; evs is not modified.
func FoldAt(evs []store.RecordedEvent, at AsOf) (*AccountStatus, error) {
	kept := make([]store.RecordedEvent, 0, len(evs))
	for _, ev := range evs {
		if at.Created != 0 && ev.Created > at.Created {
			continue
		}
		if !at.Received.IsZero() && ev.ReceivedAt.After(at.Received) {
			continue
		}
		kept = append(kept, ev)
	}
	return FoldAccount(kept)
}

// Routes adds GET /v1/accounts and GET /v1/accounts/{id} to the API's
// authenticated /v1 router (api.Config.Routes).
func (r *Runner) Routes(router *mux.Router, h api.Helpers) {
	router.HandleFunc("/accounts", func(w http.ResponseWriter, req *http.Request) { r.handleList(w, req, h) }).
		Methods(http.MethodGet)
	// {id} matches one path segment, so /accounts/{id}/events is untouched.
	router.HandleFunc("/accounts/{id}", func(w http.ResponseWriter, req *http.Request) { r.handleGet(w, req, h) }).
		Methods(http.MethodGet)
}

func (r *Runner) handleList(w http.ResponseWriter, req *http.Request, h api.Helpers) {
	q := req.URL.Query()
	limit, err := api.ParseLimit(q)
	if err != nil {
		h.Error(w, req, err)
		return
	}
	o := ListOptions{Status: q.Get("status"), Institution: q.Get("institution"), StartingAfter: q.Get("starting_after"), Limit: limit}
	if v := q.Get("livemode"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			h.Error(w, req, api.BadParam("livemode", "must be true or false, got %q", v))
			return
		}
		o.Livemode = &b
	}
	out, more, err := r.Accounts(req.Context(), o)
	if err != nil {
		h.Error(w, req, err)
		return
	}
	h.JSON(w, api.NewList(req.URL, out, more))
}

func (r *Runner) handleGet(w http.ResponseWriter, req *http.Request, h api.Helpers) {
	id := mux.Vars(req)["id"]
	q := req.URL.Query()
	var (
		at      AsOf
		hasTime bool
	)
	if v := q.Get("as_of"); v != "" {
		t, err := timearg.Parse(v)
		if err != nil {
			h.Error(w, req, api.BadParam("as_of", "%v", err))
			return
		}
		// created is whole seconds: "≤ 10:00:00.5" keeps 10:00:00.
		at.Created, hasTime = t.Unix(), true
		if at.Created <= 0 {
			// Every stored event has created > 0, so nothing existed yet.
			h.Error(w, req, api.NotFound(fmt.Sprintf("account %q did not exist at the time asked (no event selected)", id)))
			return
		}
	}
	if v := q.Get("known_at"); v != "" {
		if hasTime {
			h.Error(w, req, api.BadParam("known_at", "cannot be combined with as_of: ask one question at a time"))
			return
		}
		t, err := timearg.Parse(v)
		if err != nil {
			h.Error(w, req, api.BadParam("known_at", "%v", err))
			return
		}
		at.Received, hasTime = t, true
	}
	var (
		s   *AccountStatus
		err error
	)
	if hasTime {
		s, err = r.AccountAt(req.Context(), id, at)
	} else {
		s, err = r.Account(req.Context(), id)
	}
	switch {
	case errors.Is(err, ErrAccountNotFound) && hasTime:
		h.Error(w, req, api.NotFound(fmt.Sprintf("account %q did not exist at the time asked (no event selected)", id)))
	case errors.Is(err, ErrAccountNotFound):
		h.Error(w, req, api.NotFound(fmt.Sprintf("no account %q", id)))
	case err != nil:
		h.Error(w, req, err)
	default:
		h.JSON(w, s)
	}
}
