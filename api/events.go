package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/gorilla/mux"

	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/internal/record"
	"github.com/fcaudit/fcaudit/internal/timearg"
	"github.com/fcaudit/fcaudit/store"
)

// webhookResponse is the 200 answer to a delivery.
type webhookResponse struct {
	ID        string         `json:"id"`
	Stream    string         `json:"stream"`
	Revision  uint64         `json:"revision"`
	Position  store.Position `json:"position"`
	Duplicate bool           `json:"duplicate"`
}

// errSignatureRepeated answers 400 signature_invalid.
var errSignatureRepeated = fmt.Errorf("%w: Stripe-Signature header repeated", ingest.ErrSignatureInvalid)

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request) {
	// Stripe always sends application/json; anything else declared is a
	// misrouted request. No Content-Type at all is tolerated (curl users).
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			s.writeError(w, r, errUnsupportedContent)
			return
		}
	}
	// Stripe sends exactly one Stripe-Signature header. With several, which
	// one is checked would depend on the proxy or library in front, so a
	// request could pass here and fail elsewhere (or the reverse): refuse.
	if len(r.Header.Values("Stripe-Signature")) > 1 {
		s.writeError(w, r, errSignatureRepeated)
		return
	}
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 64<<10 { // don't pin rare huge buffers
			bodyPool.Put(buf)
		}
	}()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.writeError(w, r, err)
			return
		}
		s.writeError(w, r, BadParam("body", "reading request body: %v", err))
		return
	}
	// The store has persisted (or rejected) the body by the time Ingest
	// returns, so the pooled buffer can be reused afterwards.
	res, err := s.cfg.Ingest.Ingest(r.Context(), buf.Bytes(), r.Header.Get("Stripe-Signature"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, webhookResponse{ID: res.ID, Stream: res.Stream, Revision: res.Revision,
		Position: res.Position, Duplicate: res.Duplicate})
}

// List is Stripe's list envelope.
type List[T any] struct {
	Object  string `json:"object"`
	Data    []T    `json:"data"`
	HasMore bool   `json:"has_more"`
	URL     string `json:"url"`
}

// NewList builds a list envelope; data is never encoded as null.
func NewList[T any](u *url.URL, data []T, hasMore bool) List[T] {
	if data == nil {
		data = []T{}
	}
	return List[T]{Object: "list", Data: data, HasMore: hasMore, URL: u.Path}
}

// ParseLimit reads the limit parameter: 1–100, default 10.
func ParseLimit(q url.Values) (int, error) {
	s := q.Get("limit")
	if s == "" {
		return 10, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 100 {
		return 0, badParam("limit", "must be an integer from 1 to 100, got %q", s)
	}
	return n, nil
}

// ParseTimeParam parses an optional time parameter (RFC 3339 or Unix
// seconds) into Unix seconds; 0 when absent.
func ParseTimeParam(q url.Values, name string) (int64, error) {
	s := q.Get(name)
	if s == "" {
		return 0, nil
	}
	t, err := timearg.Parse(s)
	if err != nil {
		return 0, badParam(name, "%v", err)
	}
	return t.Unix(), nil
}

// listParams reads what every event list takes: limit, type, since, until.
func listParams(q url.Values) (int, store.Filter, error) {
	limit, err := ParseLimit(q)
	if err != nil {
		return 0, store.Filter{}, err
	}
	f, err := eventFilter(q)
	return limit, f, err
}

// eventFilter reads the type/since/until parameters shared by event lists.
func eventFilter(q url.Values) (store.Filter, error) {
	f := store.Filter{Sources: []string{store.SourceWebhook, store.SourceBackfill, store.SourceImport}}
	for _, t := range q["type"] {
		for _, p := range strings.Split(t, ",") {
			if p = strings.TrimSpace(p); p != "" {
				f.Types = append(f.Types, p)
			}
		}
	}
	var err error
	if f.CreatedFrom, err = ParseTimeParam(q, "since"); err != nil {
		return f, err
	}
	if f.CreatedTo, err = ParseTimeParam(q, "until"); err != nil {
		return f, err
	}
	if f.CreatedFrom != 0 && f.CreatedTo != 0 && f.CreatedFrom > f.CreatedTo {
		return f, badParam("since", "is after until")
	}
	return f, nil
}

func (s *Server) handleListEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, f, err := listParams(q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var after store.Position
	if p := q.Get("after_position"); p != "" {
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			s.writeError(w, r, badParam("after_position", "must be a non-negative integer, got %q", p))
			return
		}
		after = store.Position(n)
	}
	if id := q.Get("starting_after"); id != "" {
		ev, err := s.cfg.Store.EventByID(r.Context(), id)
		if errors.Is(err, store.ErrEventNotFound) {
			s.writeError(w, r, badParam("starting_after", "no stored event %q", id))
			return
		} else if err != nil {
			s.writeError(w, r, err)
			return
		}
		after = max(after, ev.Position)
	}
	evs, err := s.cfg.Store.ReadAll(r.Context(), store.ReadOptions{After: after, Limit: limit + 1, Filter: f})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeRecords(w, r, evs, limit)
}

func (s *Server) writeRecords(w http.ResponseWriter, r *http.Request, evs []store.RecordedEvent, limit int) {
	hasMore := len(evs) > limit
	if hasMore {
		evs = evs[:limit]
	}
	out := make([]record.Record, len(evs))
	for i := range evs {
		out[i] = record.From(&evs[i])
	}
	writeJSON(w, http.StatusOK, NewList(r.URL, out, hasMore))
}

func (s *Server) handleGetEvent(w http.ResponseWriter, r *http.Request) {
	ev, err := s.lookup(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.withLeafIndex(&ev))
}

// handleGetEventBody serves the stored body byte for byte, so auditors can
// check body_sha256 themselves.
func (s *Server) handleGetEventBody(w http.ResponseWriter, r *http.Request) {
	ev, err := s.lookup(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(ev.Data)))
	_, _ = io.Copy(w, bytes.NewReader(ev.Data))
}

func (s *Server) lookup(r *http.Request) (store.RecordedEvent, error) {
	id := mux.Vars(r)["id"]
	ev, err := s.cfg.Store.EventByID(r.Context(), id)
	if errors.Is(err, store.ErrEventNotFound) {
		return ev, &notFoundError{msg: "no stored event " + strconv.Quote(id)}
	}
	return ev, err
}

// accountPageSize is how many events of a stream are read per round trip
// while filtering an account's history.
const accountPageSize = 500

func (s *Server) handleAccountEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, f, err := listParams(q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	stream := store.AccountStream(mux.Vars(r)["id"])
	var from uint64
	if id := q.Get("starting_after"); id != "" {
		ev, err := s.cfg.Store.EventByID(r.Context(), id)
		if errors.Is(err, store.ErrEventNotFound) || (err == nil && ev.Stream != stream) {
			s.writeError(w, r, badParam("starting_after", "no event %q in this account's history", id))
			return
		} else if err != nil {
			s.writeError(w, r, err)
			return
		}
		from = ev.Revision + 1
	}
	var out []store.RecordedEvent
	for len(out) <= limit {
		page, err := s.cfg.Store.ReadStream(r.Context(), stream, from, accountPageSize)
		if errors.Is(err, store.ErrStreamNotFound) {
			s.writeError(w, r, &notFoundError{msg: "no events for account " + strconv.Quote(mux.Vars(r)["id"])})
			return
		} else if err != nil {
			s.writeError(w, r, err)
			return
		}
		for i := range page {
			if f.Match(&page[i]) {
				out = append(out, page[i])
			}
		}
		if len(page) < accountPageSize {
			break
		}
		from = page[len(page)-1].Revision + 1
	}
	s.writeRecords(w, r, out, limit)
}
