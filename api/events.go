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
		status, errType = s.writeError(w, r, err)
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
	// Reserve the body's bytes before reading any: beyond the budget the
	// request is refused unread (Stripe retries), so however many clients
	// send at once, the bodies held stay bounded.
	// A body refused unread ends the connection: otherwise the server
	// would wait to read and discard it before answering.
	if r.ContentLength > s.cfg.MaxBodyBytes {
		w.Header().Set("Connection", "close")
		return store.Appended{}, &http.MaxBytesError{Limit: s.cfg.MaxBodyBytes}
	}
	reserved := s.cfg.MaxBodyBytes
	if r.ContentLength >= 0 {
		reserved = r.ContentLength
	}
	if !s.bodies.reserve(reserved) {
		if n, ok := s.warnBusy.allow(1); ok {
			s.log.Warn("webhook refused unread: the in-flight body budget is spent",
				slog.Int64("max_inflight_bytes", s.cfg.MaxInflightBytes), slog.Int64("suppressed", n))
		}
		w.Header().Set("Connection", "close")
		return store.Appended{}, errBusy
	}
	defer s.bodies.release(reserved)
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	// Room for the whole body up front: growing by doubling could hold
	// twice what was reserved.
	buf.Grow(int(reserved) + bytes.MinRead)
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
	// The same forms as replay --type: comma lists, short names, globs; a
	// type matching no known one is a 400, not an empty list.
	types, err := fc.ParseTypes(q["type"])
	if err != nil {
		return f, badParam("type", "%v", err)
	}
	f.Types = types
	if f.CreatedFrom, err = parseTimeParam(q, "since"); err != nil {
		return f, err
	}
	if f.CreatedTo, err = parseUntilParam(q, "until"); err != nil {
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
	// Read in small batches and encode as we go: a page holds what fits
	// in MaxListBytes, and memory holds one batch, whatever the events'
	// size and the limit.
	p := newPage(page.Limit)
	for {
		n := min(readBatch, page.Limit-p.n+1) // one more than the page tells has_more
		evs, err := s.cfg.Store.ReadAll(r.Context(), store.ReadOptions{After: after, Limit: n, Filter: f})
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if done, err := addRecords(p, evs, nil); err != nil {
			s.writeError(w, r, err)
			return
		} else if done {
			break
		}
		if len(evs) < n {
			break
		}
		after = evs[len(evs)-1].Position
	}
	p.write(w, r, false)
}

// readBatch is how many events a list route reads per store round trip:
// with events of up to a MiB, what a request holds stays small.
const readBatch = 16

// addRecords adds the events that match (all when match is nil) to p, and
// reports whether the page is complete.
func addRecords(p *page, evs []store.RecordedEvent, match *store.Filter) (bool, error) {
	for i := range evs {
		if match != nil && !match.Match(&evs[i]) {
			continue
		}
		ok, err := p.add(record.From(&evs[i]))
		if err != nil || !ok {
			return true, err
		}
	}
	return false, nil
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

func (s *Server) handleAccountEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, f, err := listParams(q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	order := q.Get("order")
	switch order {
	case "", orderStore, orderCreated:
	default:
		s.writeError(w, r, badParam("order", "must be %s (the default) or %s, got %q", orderStore, orderCreated, order))
		return
	}
	stream := fc.AccountStream(mux.Vars(r)["id"])
	var (
		from   uint64
		cursor *store.RecordedEvent
	)
	if id := page.StartingAfter; id != "" {
		ev, err := s.cfg.Store.EventByID(r.Context(), id)
		if errors.Is(err, store.ErrEventNotFound) || (err == nil && ev.Stream != stream) {
			s.writeError(w, r, badParam("starting_after", "no event %q in this account's history", id))
			return
		} else if err != nil {
			s.writeError(w, r, err)
			return
		}
		from, cursor = ev.Revision+1, &ev
	}
	if order == orderCreated {
		out, err := readByCreated(r.Context(), s.cfg.Store, stream, &f, cursor, page.Limit+1)
		if errors.Is(err, store.ErrStreamNotFound) {
			s.writeError(w, r, &notFoundError{msg: "no events for account " + strconv.Quote(mux.Vars(r)["id"])})
			return
		} else if err != nil {
			s.writeError(w, r, err)
			return
		}
		p := newPage(page.Limit)
		if _, err := addRecords(p, out, nil); err != nil {
			s.writeError(w, r, err)
			return
		}
		p.write(w, r, false)
		return
	}
	p := newPage(page.Limit)
	for {
		evs, err := s.cfg.Store.ReadStream(r.Context(), stream, from, readBatch)
		if errors.Is(err, store.ErrStreamNotFound) {
			s.writeError(w, r, &notFoundError{msg: "no events for account " + strconv.Quote(mux.Vars(r)["id"])})
			return
		} else if err != nil {
			s.writeError(w, r, err)
			return
		}
		if done, err := addRecords(p, evs, &f); err != nil {
			s.writeError(w, r, err)
			return
		} else if done {
			break
		}
		if len(evs) < readBatch {
			break
		}
		from = evs[len(evs)-1].Revision + 1
	}
	p.write(w, r, false)
}
