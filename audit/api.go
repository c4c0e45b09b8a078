package audit

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/fcaudit/fcaudit/api"
	"github.com/fcaudit/fcaudit/store"
)

// AccountVerification is the answer of GET /v1/accounts/{id}/verify.
type AccountVerification struct {
	Account string `json:"account"`
	Stream  string `json:"stream"`
	Events  int64  `json:"events"`
	Intact  bool   `json:"intact"`
	// FirstBroken is null when the stream is intact.
	FirstBroken  *BrokenEvent `json:"first_broken"`
	LastRevision uint64       `json:"last_revision"`
	// ChainHash is the stored chain value of the last revision.
	ChainHash string `json:"chain_hash"`
}

// BrokenEvent names a stream's first broken event in API answers.
type BrokenEvent struct {
	ID       string  `json:"id"`
	Revision uint64  `json:"revision"`
	Problem  Problem `json:"problem"`
	Reason   string  `json:"reason"`
}

// Routes returns the audit routes for api.Config.Routes:
// GET /v1/accounts/{id}/verify, the account stream's chain check, and a
// guard that answers every PUT, PATCH and DELETE under /v1 with 405 and the
// error envelope: nothing in fcaudit updates or deletes an event.
//
// The guard is needed, not decorative: gorilla/mux v1.8.1 forgets a method
// mismatch when a later route of the same subrouter matches part of the
// request (the /v1 prefix), so DELETE /v1/events/{id} would answer 404 rather
// than 405. Register Routes after the other /v1 routes that accept writes
// (none do today).
func Routes(r StreamReader) func(*mux.Router, api.Helpers) {
	return func(m *mux.Router, h api.Helpers) {
		m.HandleFunc("/accounts/{id}/verify", func(w http.ResponseWriter, req *http.Request) {
			id := mux.Vars(req)["id"]
			rep, err := VerifyStream(req.Context(), r, store.AccountStream(id), VerifyOptions{})
			if errors.Is(err, store.ErrStreamNotFound) {
				h.Error(w, req, api.NotFound("no events for account "+strconv.Quote(id)))
				return
			}
			if err != nil {
				h.Error(w, req, err)
				return
			}
			out := AccountVerification{Account: id, Stream: rep.Stream, Events: rep.Events, Intact: rep.FirstBroken == nil,
				LastRevision: rep.LastRevision, ChainHash: hex.EncodeToString(rep.ChainHash[:])}
			if b := rep.FirstBroken; b != nil {
				out.FirstBroken = &BrokenEvent{ID: b.ID, Revision: b.Revision, Problem: b.Problem, Reason: b.Reason}
			}
			h.JSON(w, out)
		}).Methods(http.MethodGet)
		// Last, so that routes above still answer 405 for their own paths.
		m.MatcherFunc(func(req *http.Request, _ *mux.RouteMatch) bool {
			return req.Method == http.MethodPut || req.Method == http.MethodPatch || req.Method == http.MethodDelete
		}).HandlerFunc(refuseWrite)
	}
}

// refuseWrite answers a write method with 405 and the error envelope.
func refuseWrite(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Allow", "GET, HEAD")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusMethodNotAllowed)
	_ = json.NewEncoder(w).Encode(map[string]map[string]string{"error": {"type": api.TypeMethodNotAllowed,
		"message": req.Method + " is not allowed: fcaudit never updates or deletes stored events"}})
}
