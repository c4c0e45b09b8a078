package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/fcaudit/fcaudit/internal/timearg"
	"github.com/fcaudit/fcaudit/projections"
)

// Accounts is the account read model that GET /v1/accounts and
// GET /v1/accounts/{id} read (projections.Runner).
type Accounts interface {
	// Accounts lists current statuses in account id order, and whether
	// more match after the last one returned.
	Accounts(ctx context.Context, o projections.ListOptions) ([]projections.AccountStatus, bool, error)
	// Account is an account's current status, reflecting every event
	// stored before the call (projections.ErrAccountNotFound when the
	// account has no events).
	Account(ctx context.Context, id string) (*projections.AccountStatus, error)
	// AccountAt folds the account's history as selected by at
	// (projections.ErrAccountNotFound when no event is selected).
	AccountAt(ctx context.Context, id string, at projections.AsOf) (*projections.AccountStatus, error)
}

func (s *Server) handleListAccounts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, err := parsePage(q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	o := projections.ListOptions{Status: q.Get("status"), Institution: q.Get("institution"),
		StartingAfter: page.StartingAfter, Limit: page.Limit}
	if v := q.Get("livemode"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.writeError(w, r, badParam("livemode", "must be true or false, got %q", v))
			return
		}
		o.Livemode = &b
	}
	out, more, err := s.cfg.Accounts.Accounts(r.Context(), o)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeList(s, w, r, out, more)
}

// handleGetAccount answers the account's current status or, with as_of
// (Stripe's created time) or known_at (fcaudit's receipt time), its status
// folded from the history as it stood then.
func (s *Server) handleGetAccount(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	q := r.URL.Query()
	var (
		at      projections.AsOf
		hasTime bool
	)
	didNotExist := notFound("account %q did not exist at the time asked (no event selected)", id)
	if v := q.Get("as_of"); v != "" {
		t, err := timearg.Parse(v)
		if err != nil {
			s.writeError(w, r, badParam("as_of", "%v", err))
			return
		}
		// A time at or before the Unix epoch selects nothing: 404.
		at, hasTime = projections.AsOfCreated(t), true
	}
	if v := q.Get("known_at"); v != "" {
		if hasTime {
			s.writeError(w, r, badParam("known_at", "cannot be combined with as_of: ask one question at a time"))
			return
		}
		t, err := timearg.Parse(v)
		if err != nil {
			s.writeError(w, r, badParam("known_at", "%v", err))
			return
		}
		// The zero time is a time at which nothing was known, not "no
		// bound": 404.
		at, hasTime = projections.KnownAt(t), true
	}
	var (
		st  *projections.AccountStatus
		err error
	)
	if hasTime {
		st, err = s.cfg.Accounts.AccountAt(r.Context(), id, at)
	} else {
		st, err = s.cfg.Accounts.Account(r.Context(), id)
	}
	switch {
	case errors.Is(err, projections.ErrAccountNotFound) && hasTime:
		s.writeError(w, r, didNotExist)
	case errors.Is(err, projections.ErrAccountNotFound):
		s.writeError(w, r, notFound("no account %q", id))
	case err != nil:
		s.writeError(w, r, err)
	default:
		writeJSON(w, http.StatusOK, st)
	}
}
