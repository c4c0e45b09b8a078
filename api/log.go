package api

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/fcaudit/fcaudit/internal/record"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/translog"
)

// TypeNotSupported answers /v1/log routes on a backend without a Merkle
// tree; TypeLogNotReady a tree that does not cover the log (yet).
const (
	TypeNotSupported = "not_supported"
	TypeLogNotReady  = "log_not_ready"
)

// publicLogRoutes registers the routes witnesses use without a token.
func (s *Server) publicLogRoutes(r *mux.Router) {
	r.Handle("/v1/log/checkpoint", s.checkParams(http.HandlerFunc(s.handleCheckpoint))).Methods(http.MethodGet, http.MethodHead).Name("log_checkpoint")
}

// logRoutes registers the proof routes (behind /v1's authentication).
func (s *Server) logRoutes(v1 *mux.Router) {
	v1.HandleFunc("/log/proof/inclusion", s.handleInclusion).Methods(http.MethodGet).Name("log_inclusion")
	v1.HandleFunc("/log/proof/consistency", s.handleConsistency).Methods(http.MethodGet).Name("log_consistency")
}

func (s *Server) verifiableLog() (translog.Log, error) {
	if s.cfg.Log == nil {
		return nil, translog.ErrNotSupported
	}
	return s.cfg.Log, nil
}

// handleCheckpoint serves the latest signed checkpoint note as text/plain.
func (s *Server) handleCheckpoint(w http.ResponseWriter, r *http.Request) {
	l, err := s.verifiableLog()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	cp, err := l.LatestCheckpoint(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(cp.Note)))
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(cp.Note)
}

// treeSizeParam parses a tree size; absent (when optional) means the latest
// checkpoint's.
func (s *Server) treeSizeParam(r *http.Request, l translog.Log, name string) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		cp, err := l.LatestCheckpoint(r.Context())
		if err != nil {
			return 0, err
		}
		return cp.Size, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 && name != "from" {
		return 0, badParam(name, "want a tree size (a positive integer), got %q", v)
	}
	return n, nil
}

// InclusionProof is GET /v1/log/proof/inclusion's answer. LeafData is the
// exact leaf bytes (translog.LeafData); byte slices encode as base64.
type InclusionProof struct {
	LeafIndex uint64   `json:"leaf_index"`
	TreeSize  uint64   `json:"tree_size"`
	LeafData  []byte   `json:"leaf_data"`
	Hashes    [][]byte `json:"hashes"`
}

// ConsistencyProof is GET /v1/log/proof/consistency's answer.
type ConsistencyProof struct {
	From   uint64   `json:"from"`
	To     uint64   `json:"to"`
	Hashes [][]byte `json:"hashes"`
}

func (s *Server) handleInclusion(w http.ResponseWriter, r *http.Request) {
	l, err := s.verifiableLog()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id := r.URL.Query().Get("event")
	if !strings.HasPrefix(id, "evt_") {
		s.writeError(w, r, badParam("event", "want a Stripe event id (evt_…), got %q", id))
		return
	}
	size, err := s.treeSizeParam(r, l, "tree_size")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ev, err := s.cfg.Store.EventByID(r.Context(), id)
	if errors.Is(err, store.ErrEventNotFound) {
		err = &notFoundError{msg: "no stored event " + strconv.Quote(id)}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	idx, err := l.LeafIndex(&ev)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if idx >= size {
		s.writeError(w, r, badParam("tree_size", "event %s is leaf %d: not in a tree of size %d", id, idx, size))
		return
	}
	p, err := l.InclusionProof(r.Context(), idx, size)
	if errors.Is(err, translog.ErrTreeSize) {
		err = badParam("tree_size", "%v", err)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, InclusionProof{LeafIndex: idx, TreeSize: size, LeafData: translog.LeafData(&ev), Hashes: nonNil(p)})
}

func (s *Server) handleConsistency(w http.ResponseWriter, r *http.Request) {
	l, err := s.verifiableLog()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if r.URL.Query().Get("from") == "" {
		s.writeError(w, r, badParam("from", "required: the older tree size"))
		return
	}
	from, err := s.treeSizeParam(r, l, "from")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	to, err := s.treeSizeParam(r, l, "to")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if from > to {
		s.writeError(w, r, badParam("from", "%d is larger than to (%d)", from, to))
		return
	}
	p, err := l.ConsistencyProof(r.Context(), from, to)
	if errors.Is(err, translog.ErrTreeSize) {
		err = badParam("to", "%v", err)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ConsistencyProof{From: from, To: to, Hashes: nonNil(p)})
}

func nonNil(p [][]byte) [][]byte {
	if p == nil {
		return [][]byte{}
	}
	return p
}

// eventWithLeaf is GET /v1/events/{id}'s answer: the stored event record
// and, on a verifiable log, its leaf index.
type eventWithLeaf struct {
	record.Record
	LeafIndex *uint64 `json:"leaf_index,omitempty"`
}

func (s *Server) withLeafIndex(ev *store.RecordedEvent) eventWithLeaf {
	out := eventWithLeaf{Record: record.From(ev)}
	if s.cfg.Log != nil {
		if idx, err := s.cfg.Log.LeafIndex(ev); err == nil {
			out.LeafIndex = &idx
		}
	}
	return out
}
