package audit

import (
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/fcaudit/fcaudit/api"
	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/ingest"
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
	// Signatures counts the webhooks whose stored Stripe-Signature was
	// re-checked with serve's webhook secrets, and those signed with a
	// secret serve no longer has.
	Signatures SignatureCounts `json:"signatures"`
}

// BrokenEvent names a stream's first broken event in API answers.
type BrokenEvent struct {
	ID       string  `json:"id"`
	Revision uint64  `json:"revision"`
	Problem  Problem `json:"problem"`
	Reason   string  `json:"reason"`
}

// Routes returns the audit routes for api.Config.Routes:
// GET /v1/accounts/{id}/verify, the account stream's chain check and, when
// signatures is not nil (serve passes the verifier holding its webhook
// secrets), a re-check of every stored webhook's Stripe-Signature against
// its stored body, as `fcaudit verify --webhook-secret` does. (No route of
// fcaudit updates or deletes an event; write methods get 405 from api.)
func Routes(r StreamReader, signatures *ingest.Verifier) func(*mux.Router, api.Helpers) {
	return func(m *mux.Router, h api.Helpers) {
		m.HandleFunc("/accounts/{id}/verify", func(w http.ResponseWriter, req *http.Request) {
			id := mux.Vars(req)["id"]
			rep, err := VerifyStream(req.Context(), r, fc.AccountStream(id), VerifyOptions{Signatures: signatures})
			if errors.Is(err, store.ErrStreamNotFound) {
				h.Error(w, req, api.NotFound("no events for account "+strconv.Quote(id)))
				return
			}
			if err != nil {
				h.Error(w, req, err)
				return
			}
			out := AccountVerification{Account: id, Stream: rep.Stream, Events: rep.Events, Intact: rep.FirstBroken == nil,
				LastRevision: rep.LastRevision, ChainHash: hex.EncodeToString(rep.ChainHash[:]), Signatures: rep.Signatures}
			if b := rep.FirstBroken; b != nil {
				out.FirstBroken = &BrokenEvent{ID: b.ID, Revision: b.Revision, Problem: b.Problem, Reason: b.Reason}
			}
			h.JSON(w, out)
		}).Methods(http.MethodGet)
	}
}
