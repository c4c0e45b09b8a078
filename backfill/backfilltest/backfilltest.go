// Package backfilltest is a fake of Stripe's Events API list endpoint for
// tests: GET /v1/events with Stripe's list envelope, honouring types[] (and
// type, with '*'), created[gt|gte|lt|lte], limit and starting_after, newest
// first, checking the bearer key, with hooks for injecting failures. It
// imports the standard library and store (for type matching) only.
package backfilltest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/fcaudit/fcaudit/store"
)

// Request is what the server saw in one GET /v1/events.
type Request struct {
	Authorization string
	// Types lists the types[] values in order; Type the single type param.
	Types         []string
	Type          string
	CreatedGTE    string
	Limit         string
	StartingAfter string
	StripeVersion string
	// StripeAccount is the Stripe-Account header (Connect).
	StripeAccount string
	Query         url.Values
}

// Server is a fake Events API. Add events before or while it runs; it is
// safe for concurrent use.
type Server struct {
	*httptest.Server
	// Key is the accepted API key (Authorization: Bearer Key).
	Key string

	mu     sync.Mutex
	events []stored
	reqs   []Request
	fail   func(n int, r Request) (status int, body string)
}

type stored struct {
	id      string
	typ     string
	created int64
	body    []byte
	seq     int
}

// New starts a server that accepts key; it is closed when t ends.
func New(t testing.TB, key string) *Server {
	t.Helper()
	s := &Server{Key: key}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// Add stores Stripe event bodies (full event JSON) for listing. It panics on
// a body without id, type or created: that is a broken test.
func (s *Server) Add(bodies ...[]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range bodies {
		var e struct {
			ID      string `json:"id"`
			Type    string `json:"type"`
			Created int64  `json:"created"`
		}
		if err := json.Unmarshal(b, &e); err != nil || e.ID == "" || e.Type == "" || e.Created == 0 {
			panic(fmt.Sprintf("backfilltest: not an event body (%v): %.80s", err, b))
		}
		s.events = append(s.events, stored{id: e.ID, typ: e.Type, created: e.Created, body: bytes.TrimSpace(b), seq: len(s.events)})
	}
}

// FailWith installs a hook called for every request (n counts requests
// from 1); a non-zero status is answered with body instead of the list.
func (s *Server) FailWith(f func(n int, r Request) (status int, body string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = f
}

// Requests returns the requests seen so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// ErrorBody is a Stripe API error body.
func ErrorBody(typ, msg string) string {
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"type": typ, "message": msg}})
	return string(b)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || r.URL.Path != "/v1/events" {
		writeJSON(w, http.StatusNotFound, ErrorBody("invalid_request_error", "Unrecognized request URL ("+r.Method+": "+r.URL.Path+")"))
		return
	}
	q := r.URL.Query()
	req := Request{
		Authorization: r.Header.Get("Authorization"),
		Type:          q.Get("type"),
		CreatedGTE:    q.Get("created[gte]"),
		Limit:         q.Get("limit"),
		StartingAfter: q.Get("starting_after"),
		StripeVersion: r.Header.Get("Stripe-Version"),
		StripeAccount: r.Header.Get("Stripe-Account"),
		Query:         q,
	}
	req.Types = arrayParam(q, "types")

	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	n, fail := len(s.reqs), s.fail
	events := slices.Clone(s.events)
	s.mu.Unlock()

	if fail != nil {
		if status, body := fail(n, req); status != 0 {
			writeJSON(w, status, body)
			return
		}
	}
	if req.Authorization != "Bearer "+s.Key {
		writeJSON(w, http.StatusUnauthorized, ErrorBody("invalid_request_error", "Invalid API Key provided: "+redact(strings.TrimPrefix(req.Authorization, "Bearer "))))
		return
	}
	limit := 10
	if req.Limit != "" {
		l, err := strconv.Atoi(req.Limit)
		if err != nil || l < 1 || l > 100 {
			writeJSON(w, http.StatusBadRequest, ErrorBody("invalid_request_error", "Invalid integer: "+req.Limit))
			return
		}
		limit = l
	}
	if req.Type != "" && len(req.Types) > 0 {
		writeJSON(w, http.StatusBadRequest, ErrorBody("invalid_request_error", "You may pass either `type` or `types`, but not both."))
		return
	}
	if len(req.Types) > 20 {
		writeJSON(w, http.StatusBadRequest, ErrorBody("invalid_request_error", "types: at most 20"))
		return
	}
	bounds := map[string]int64{}
	for _, op := range []string{"gt", "gte", "lt", "lte"} {
		if v := q.Get("created[" + op + "]"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, ErrorBody("invalid_request_error", "Invalid integer: "+v))
				return
			}
			bounds[op] = n
		}
	}

	// Newest first, like Stripe; same-second events newest-added first.
	slices.SortStableFunc(events, func(a, b stored) int {
		if a.created != b.created {
			return int(b.created - a.created)
		}
		return b.seq - a.seq
	})
	var sel []stored
	for _, e := range events {
		if !typeMatches(req, e.typ) || !inRange(bounds, e.created) {
			continue
		}
		sel = append(sel, e)
	}
	if req.StartingAfter != "" {
		i := slices.IndexFunc(sel, func(e stored) bool { return e.id == req.StartingAfter })
		if i < 0 {
			writeJSON(w, http.StatusBadRequest, ErrorBody("invalid_request_error", "No such event: '"+req.StartingAfter+"'"))
			return
		}
		sel = sel[i+1:]
	}
	hasMore := len(sel) > limit
	if hasMore {
		sel = sel[:limit]
	}
	// Pretty-printed like Stripe: the raw bodies are embedded verbatim.
	var b bytes.Buffer
	b.WriteString("{\n  \"object\": \"list\",\n  \"data\": [")
	for i, e := range sel {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("\n    ")
		b.Write(e.body)
	}
	fmt.Fprintf(&b, "\n  ],\n  \"has_more\": %t,\n  \"url\": \"/v1/events\"\n}\n", hasMore)
	writeJSON(w, http.StatusOK, b.String())
}

func typeMatches(req Request, typ string) bool {
	switch {
	case len(req.Types) > 0:
		return slices.Contains(req.Types, typ)
	case req.Type != "":
		return store.MatchType(req.Type, typ)
	}
	return true
}

func inRange(b map[string]int64, created int64) bool {
	if v, ok := b["gt"]; ok && created <= v {
		return false
	}
	if v, ok := b["gte"]; ok && created < v {
		return false
	}
	if v, ok := b["lt"]; ok && created >= v {
		return false
	}
	if v, ok := b["lte"]; ok && created > v {
		return false
	}
	return true
}

// arrayParam collects name[]=v and name[N]=v (stripe-go sends the indexed
// form), ordered by index.
func arrayParam(q url.Values, name string) []string {
	out := slices.Clone(q[name+"[]"])
	type iv struct {
		i int
		v string
	}
	var idx []iv
	for k, vs := range q {
		rest, ok := strings.CutPrefix(k, name+"[")
		if !ok || !strings.HasSuffix(rest, "]") {
			continue
		}
		i, err := strconv.Atoi(strings.TrimSuffix(rest, "]"))
		if err != nil {
			continue
		}
		for _, v := range vs {
			idx = append(idx, iv{i, v})
		}
	}
	slices.SortFunc(idx, func(a, b iv) int { return a.i - b.i })
	for _, e := range idx {
		out = append(out, e.v)
	}
	return out
}

func redact(key string) string {
	if len(key) <= 4 {
		return "***"
	}
	return "***" + key[len(key)-4:]
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", "req_fake")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
