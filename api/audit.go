package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/fcaudit/fcaudit/audit"
	"github.com/fcaudit/fcaudit/store"
)

// AccountVerifier checks an account's stream for GET
// /v1/accounts/{id}/verify (audit.AccountChecker). (No route of fcaudit
// updates or deletes an event; write methods get 405.)
type AccountVerifier interface {
	// VerifyAccount checks the account's chain (and stored signatures); the
	// error wraps store.ErrStreamNotFound when the account has no events.
	VerifyAccount(ctx context.Context, id string) (audit.AccountVerification, error)
}

func (s *Server) handleVerifyAccount(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	v, err := s.cfg.Verify.VerifyAccount(r.Context(), id)
	if errors.Is(err, store.ErrStreamNotFound) {
		s.writeError(w, r, notFound("no events for account %q", id))
		return
	} else if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}
