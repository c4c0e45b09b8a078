package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/internal/logkey"
	"github.com/fcaudit/fcaudit/internal/record"
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
	start := time.Now()
	res, err := s.ingestWebhook(w, r)
	status, errType := http.StatusOK, ""
	if err != nil {
		var detail errorDetail
		status, detail = classify(err)
		errType = detail.Type
		s.writeError(w, r, err)
	} else {
		writeJSON(w, http.StatusOK, webhookResponse{ID: res.ID, Stream: res.Stream, Revision: res.Revision,
			Position: res.Position, Duplicate: res.Duplicate})
	}
	s.logWebhook(r, status, errType, res, time.Since(start))
}

// logWebhook writes the webhook access log: one INFO line per delivery
// with its outcome and, for a refusal, the error type the sender got (so a
// wrong signing secret shows as signature_invalid at once). It never holds
// the body, the signature header or a secret.
func (s *Server) logWebhook(r *http.Request, status int, errType string, res store.Appended, d time.Duration) {
	outcome := "stored"
	switch {
	case errType != "":
		outcome = "rejected"
		if status >= 500 {
			outcome = "failed"
		}
	case res.Duplicate:
		outcome = "duplicate"
	}
	attrs := []slog.Attr{slog.String("outcome", outcome), slog.Int("status", status)}
	if errType != "" {
		attrs = append(attrs, slog.String("error_type", errType))
	}
	if res.ID != "" {
		attrs = append(attrs, slog.String(logkey.EventID, res.ID), slog.String(logkey.Stream, res.Stream))
	}
	attrs = append(attrs, slog.String("request_id", requestID(r.Context())), slog.String("remote", r.RemoteAddr),
		slog.Duration("duration", d))
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "webhook", attrs...)
}

// ingestWebhook reads, verifies and stores one delivery; the caller answers.
func (s *Server) ingestWebhook(w http.ResponseWriter, r *http.Request) (store.Appended, error) {
	// Stripe always sends application/json; anything else declared is a
	// misrouted request. No Content-Type at all is tolerated (curl users).
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return store.Appended{}, errUnsupportedContent
		}
	}
	// Stripe sends exactly one Stripe-Signature header. With several, which
	// one is checked would depend on the proxy or library in front, so a
	// request could pass here and fail elsewhere (or the reverse): refuse.
	if len(r.Header.Values("Stripe-Signature")) > 1 {
		return store.Appended{}, errSignatureRepeated
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
			return store.Appended{}, err
		}
		return store.Appended{}, badParam("body", "reading request body: %v", err)
	}
	// The store has persisted (or rejected) the body by the time Ingest
	// returns, so the pooled buffer can be reused afterwards.
	return s.cfg.Ingest.Ingest(r.Context(), buf.Bytes(), r.Header.Get("Stripe-Signature"))
}

// listParams reads what every event list takes: the page (limit,
// starting_after) and type, since, until.
func listParams(q url.Values) (listPage, store.Filter, error) {
	p, err := parsePage(q)
	if err != nil {
		return p, store.Filter{}, err
	}
	f, err := eventFilter(q)
	return p, f, err
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
	if f.CreatedFrom, err = parseTimeParam(q, "since"); err != nil {
		return f, err
	}
	if f.CreatedTo, err = parseTimeParam(q, "until"); err != nil {
		return f, err
	}
	if f.CreatedFrom != 0 && f.CreatedTo != 0 && f.CreatedFrom > f.CreatedTo {
		return f, badParam("since", "is after until")
	}
	return f, nil
}

func (s *Server) handleListEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, f, err := listParams(q)
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
	if id := page.StartingAfter; id != "" {
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
	evs, err := s.cfg.Store.ReadAll(r.Context(), store.ReadOptions{After: after, Limit: page.Limit + 1, Filter: f})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeRecords(w, r, evs, page)
}

// writeRecords answers with the list of records; evs may hold one event
// more than the page (telling that more follow).
func writeRecords(w http.ResponseWriter, r *http.Request, evs []store.RecordedEvent, page listPage) {
	evs, hasMore := cutPage(evs, page)
	out := make([]record.Record, len(evs))
	for i := range evs {
		out[i] = record.From(&evs[i])
	}
	writeList(w, r, out, hasMore)
}

func (s *Server) handleGetEvent(w http.ResponseWriter, r *http.Request) {
	ev, err := s.lookup(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, record.From(&ev))
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
	page, f, err := listParams(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	stream := fc.AccountStream(mux.Vars(r)["id"])
	var from uint64
	if id := page.StartingAfter; id != "" {
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
	for len(out) <= page.Limit {
		evs, err := s.cfg.Store.ReadStream(r.Context(), stream, from, accountPageSize)
		if errors.Is(err, store.ErrStreamNotFound) {
			s.writeError(w, r, &notFoundError{msg: "no events for account " + strconv.Quote(mux.Vars(r)["id"])})
			return
		} else if err != nil {
			s.writeError(w, r, err)
			return
		}
		for i := range evs {
			if f.Match(&evs[i]) {
				out = append(out, evs[i])
			}
		}
		if len(evs) < accountPageSize {
			break
		}
		from = evs[len(evs)-1].Revision + 1
	}
	writeRecords(w, r, out, page)
}
