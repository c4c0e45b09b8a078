package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/fcaudit/fcaudit/internal/logkey"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/translog"
)

// Reader is the part of the event log the query API reads.
type Reader interface {
	ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]store.RecordedEvent, error)
	ReadAll(ctx context.Context, opts store.ReadOptions) ([]store.RecordedEvent, error)
	EventByID(ctx context.Context, id string) (store.RecordedEvent, error)
}

// Ingester takes one webhook delivery: the raw body and its Stripe-Signature
// header. It returns the stored (or original, for a duplicate) coordinates.
// Its errors are ingest's sentinels or store's.
type Ingester interface {
	Ingest(ctx context.Context, body []byte, sigHeader string) (store.Appended, error)
}

// DefaultMaxBodyBytes bounds webhook bodies (Stripe's are a few KiB).
const DefaultMaxBodyBytes = 1 << 20

// Config wires the server. Store and Ingest are required; the rest is
// optional: a route whose dependency is nil is not registered (404).
type Config struct {
	Store  Reader
	Ingest Ingester
	// Log serves /v1/log (log.go); nil: those routes answer 501.
	Log translog.Log
	// Tokens are the accepted bearer tokens for /v1. None: every /v1
	// request is refused with 401.
	Tokens []string
	// TokenSet, when set, replaces Tokens: a set the caller can change
	// while the server runs (token rotation on SIGHUP).
	TokenSet *TokenSet
	// Ready reports whether the event log is reachable (GET /readyz).
	Ready func(ctx context.Context) error
	// Metrics serves GET /metrics (Prometheus text format).
	Metrics http.Handler
	// Accounts, when set, serves GET /v1/accounts and /v1/accounts/{id}.
	Accounts Accounts
	// Replays, when set, serves GET /v1/replays and /v1/replays/{id}.
	Replays ReplayRuns
	// Verify, when set, serves GET /v1/accounts/{id}/verify.
	Verify AccountVerifier
	// Reconciliation, when set, serves GET /v1/reconciliation.
	Reconciliation Reconciliation
	// MaxBodyBytes bounds webhook bodies (DefaultMaxBodyBytes when 0).
	MaxBodyBytes int64
	// MaxInflightBytes bounds the bytes of webhook bodies being read or
	// held at once (DefaultMaxInflightBytes when 0); beyond it a webhook
	// is answered 503 without its body being read.
	MaxInflightBytes int64
	// MaxConnections bounds the open client connections of Open's server
	// (DefaultMaxConnections() when 0); at the limit the oldest idle
	// connection is closed to admit a new one.
	MaxConnections int
	// ObserveRequest, if set, is called after every request (metrics).
	ObserveRequest func(route string, status int, d time.Duration)
	Logger         *slog.Logger
	// Console, if set, serves /console/ (the web console); GET / and
	// GET /console redirect there.
	Console http.Handler
}

// Server owns the router and the HTTP server.
type Server struct {
	cfg      Config
	log      *slog.Logger
	router   *mux.Router
	root     http.Handler // router, observed and authenticated: what Handler and Open serve
	tokens   *TokenSet
	httpSrv  *http.Server
	ln       net.Listener
	conns    *connLimiter
	bodies   *byteBudget
	warnBusy rateLimitedWarn
}

// NewServer builds the router. It does not listen; see Open.
func NewServer(cfg Config) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxInflightBytes <= 0 {
		cfg.MaxInflightBytes = DefaultMaxInflightBytes
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = DefaultMaxConnections()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, bodies: &byteBudget{limit: cfg.MaxInflightBytes}}
	s.tokens = cfg.TokenSet
	if s.tokens == nil {
		s.tokens = NewTokenSet(cfg.Tokens)
	}
	s.router = s.routes()
	// Outside the router, so every answer (404 and 405 included) has a
	// request id and is observed (401s included), and /v1 is
	// authenticated before any route is matched: without a token, an
	// unknown path and a wrong method look the same.
	s.root = s.requestIDMiddleware(s.observeRoute(s.authMiddleware(s.router)))
	return s
}

func (s *Server) routes() *mux.Router {
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// gorilla/mux v1.8.1 loses a method mismatch when another route of a
		// subrouter matches part of the path, answering 404 where 405 is
		// right (e.g. DELETE /v1/events/{id}). Ask the router directly.
		if allowed := s.allowedMethods(req); len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			s.writeError(w, req, errMethodNotAllowed)
			return
		}
		s.writeError(w, req, &notFoundError{msg: "no such route: " + req.URL.Path})
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// A 405 names the methods the path takes (RFC 9110, 15.5.6).
		if allowed := s.allowedMethods(req); len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
		}
		s.writeError(w, req, errMethodNotAllowed)
	})
	// Every route has a name: the route label of the request metrics
	// (observeRoute).

	r.HandleFunc("/webhooks/stripe", s.handleWebhook).Methods(http.MethodPost).Name("webhook")
	r.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}).Methods(http.MethodGet, http.MethodHead).Name("healthz")
	r.HandleFunc("/readyz", s.handleReady).Methods(http.MethodGet, http.MethodHead).Name("readyz")
	if s.cfg.Metrics != nil {
		r.Handle("/metrics", s.cfg.Metrics).Methods(http.MethodGet).Name("metrics")
	}

	if s.cfg.Console != nil {
		r.PathPrefix("/console/").Handler(s.cfg.Console).Name("console")
		r.Handle("/console", http.RedirectHandler("/console/", http.StatusSeeOther)).Methods(http.MethodGet, http.MethodHead).Name("console_redirect")
		r.Handle("/", http.RedirectHandler("/console/", http.StatusSeeOther)).Methods(http.MethodGet, http.MethodHead).Name("root_redirect")
	}
	// The API's description is public (authMiddleware lets it through), so
	// it is registered outside the /v1 subrouter; like every /v1 route it
	// refuses query parameters (it takes none).
	r.Handle("/v1/openapi.json", s.checkParams(serveDocument("application/json", openapiJSON))).Methods(http.MethodGet).Name("openapi_json")
	r.Handle("/v1/openapi.yaml", s.checkParams(serveDocument("application/yaml", openapiYAML))).Methods(http.MethodGet).Name("openapi_yaml")
	s.publicLogRoutes(r) // witnesses fetch checkpoints without a token

	v1 := r.PathPrefix("/v1").Subrouter()
	v1.Use(s.checkParams)
	v1.HandleFunc("/events", s.handleListEvents).Methods(http.MethodGet).Name("list_events")
	v1.HandleFunc("/events/{id}", s.handleGetEvent).Methods(http.MethodGet).Name("get_event")
	v1.HandleFunc("/events/{id}/body", s.handleGetEventBody).Methods(http.MethodGet).Name("get_event_body")
	v1.HandleFunc("/accounts/{id}/events", s.handleAccountEvents).Methods(http.MethodGet).Name("account_events")
	s.logRoutes(v1)
	if s.cfg.Accounts != nil {
		v1.HandleFunc("/accounts", s.handleListAccounts).Methods(http.MethodGet).Name("list_accounts")
		// {id} matches one path segment, so /accounts/{id}/events is untouched.
		v1.HandleFunc("/accounts/{id}", s.handleGetAccount).Methods(http.MethodGet).Name("get_account")
	}
	if s.cfg.Replays != nil {
		v1.HandleFunc("/replays", s.handleListReplays).Methods(http.MethodGet).Name("list_replays")
		v1.HandleFunc("/replays/{id}", s.handleGetReplay).Methods(http.MethodGet).Name("get_replay")
	}
	if s.cfg.Verify != nil {
		v1.HandleFunc("/accounts/{id}/verify", s.handleVerifyAccount).Methods(http.MethodGet).Name("verify_account")
	}
	if s.cfg.Reconciliation != nil {
		v1.HandleFunc("/reconciliation", s.handleReconciliation).Methods(http.MethodGet).Name("reconciliation")
	}
	// Unknown /v1 paths answer 404 (after authentication, in s.root).
	v1.NotFoundHandler = r.NotFoundHandler
	v1.MethodNotAllowedHandler = r.MethodNotAllowedHandler
	return r
}

// allowedMethods lists the methods some route would accept for req's path.
func (s *Server) allowedMethods(req *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if m == req.Method {
			continue
		}
		probe := req.Clone(req.Context())
		probe.Method = m
		// A method mismatch inside the /v1 subrouter matches the subrouter's
		// own route (which has no methods) without an error: only a route
		// registered with methods counts.
		var match mux.RouteMatch
		if s.router.Match(probe, &match) && match.MatchErr == nil && match.Route != nil {
			if _, err := match.Route.GetMethods(); err == nil {
				out = append(out, m)
			}
		}
	}
	return out
}

// Handler returns the root handler (for httptest and embedding).
func (s *Server) Handler() http.Handler { return s.root }

// Open listens on addr and serves in the background. Timeouts bound slow
// clients: a slowloris can hold a connection for ReadHeaderTimeout at most.
// At most MaxConnections are open at once (see connLimiter).
func (s *Server) Open(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	s.conns = newConnLimiter(ln, s.cfg.MaxConnections, s.log)
	s.ln = s.conns
	s.httpSrv = &http.Server{
		ConnState:         s.conns.connState,
		Handler:           s.root,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := s.httpSrv.Serve(s.conns); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", logkey.Err(err))
		}
	}()
	return nil
}

// ConnStats counts the connections of the server Open started (zero
// before Open).
func (s *Server) ConnStats() ConnStats {
	var st ConnStats
	if s.conns != nil {
		st = s.conns.stats()
	}
	st.InflightBodyBytes, st.Busy = s.bodies.stats()
	return st
}

// Addr is the address Open listens on.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close stops accepting connections and waits for in-flight requests (each
// webhook answers only after its append is durable or failed) until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	if s.httpSrv == nil {
		return nil
	}
	return s.httpSrv.Shutdown(ctx)
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: errorDetail{
				Type: TypeStoreUnavailable, Message: "event log not ready: " + err.Error()}})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// authMiddleware admits /v1 requests carrying one of the configured tokens
// and passes every other path through. The comparison is constant-time over
// SHA-256 digests so neither the token nor its length leaks through timing.
func (s *Server) authMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isV1(r.URL.Path) || isPublic(r) {
			next.ServeHTTP(w, r)
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" || !s.tokenOK(tok) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="fcaudit"`)
			s.writeError(w, r, errUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isV1 reports whether p is under /v1 as the router sees it (the router
// cleans paths: "//v1/x" and "/a/../v1/x" are /v1 too).
func isV1(p string) bool {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	p = path.Clean(p)
	return p == "/v1" || strings.HasPrefix(p, "/v1/")
}

// isPublic reports whether r is for one of the /v1 documents anyone may
// read without a token (the API's description; a wrong method on them is
// answered 405 by the router, as on any public path).
func isPublic(r *http.Request) bool {
	switch r.URL.Path {
	case "/v1/openapi.json", "/v1/openapi.yaml", "/v1/log/checkpoint":
		return true
	}
	return false
}

func (s *Server) tokenOK(tok string) bool { return s.tokens.Match(tok) }

type ctxKey int

const requestIDKey ctxKey = 0

// requestIDMiddleware gives every request an id (the caller's X-Request-Id
// when it is sane, else a random one), echoed in the response for support.
func (s *Server) requestIDMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if len(id) == 0 || len(id) > 64 || strings.ContainsFunc(id, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = "req_" + hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// statusRecorder captures the status for metrics.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// routeUnmatched labels requests that match no route (404, 405): one
// series for all of them, never the raw path, which would let clients
// create series.
const routeUnmatched = "unmatched"

// observeRoute observes every request under the name of the route it
// matches (routeUnmatched for none). It asks the router itself, so it works
// wherever it sits in front of it.
func (s *Server) observeRoute(next http.Handler) http.Handler {
	if s.cfg.ObserveRequest == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := routeUnmatched
		var m mux.RouteMatch
		if s.router.Match(r, &m) && m.MatchErr == nil && m.Route != nil && m.Route.GetName() != "" {
			name = m.Route.GetName()
		}
		s.observe(name, next).ServeHTTP(w, r)
	})
}

func (s *Server) observe(route string, h http.Handler) http.Handler {
	if s.cfg.ObserveRequest == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		s.cfg.ObserveRequest(route, rec.status, time.Since(start))
	})
}
