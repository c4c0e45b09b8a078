package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/fcaudit/fcaudit/replay"
)

// ReplayRuns is the audit log of replay runs that GET /v1/replays and
// GET /v1/replays/{id} read (replay.RunLog). Runs are stored JSON, served
// byte for byte.
type ReplayRuns interface {
	// List returns runs oldest first and whether more follow
	// (replay.ErrRunNotFound when StartingAfter names no run).
	List(ctx context.Context, o replay.RunListOptions) ([]json.RawMessage, bool, error)
	// Get returns one run (replay.ErrRunNotFound when no run has that id).
	Get(ctx context.Context, id string) (json.RawMessage, error)
}

func (s *Server) handleListReplays(w http.ResponseWriter, r *http.Request) {
	page, err := parsePage(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out, more, err := s.cfg.Replays.List(r.Context(), replay.RunListOptions{StartingAfter: page.StartingAfter, Limit: page.Limit})
	if errors.Is(err, replay.ErrRunNotFound) {
		s.writeError(w, r, badParam("starting_after", "no replay run %q", page.StartingAfter))
		return
	} else if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeList(s, w, r, out, more)
}

func (s *Server) handleGetReplay(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	run, err := s.cfg.Replays.Get(r.Context(), id)
	if errors.Is(err, replay.ErrRunNotFound) {
		s.writeError(w, r, notFound("no replay run %q", id))
		return
	} else if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, run)
}
