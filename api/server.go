package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

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

// Config wires the server. Store and Ingest are required; the rest is optional.
type Config struct {
	Store  Reader
	Ingest Ingester
	// Log serves /v1/log (log.go); nil: those routes answer 501.
	Log translog.Log
	// Tokens are the accepted bearer tokens for /v1. None: every /v1
	// request is refused with 401.
	Tokens []string
	// Ready reports whether the event log is reachable (GET /readyz).
	Ready func(ctx context.Context) error
	// Metrics serves GET /metrics (Prometheus text format).
	Metrics http.Handler
	// Routes lets other packages (projections, replay, audit) add /v1
	// routes; the router they get is already behind authentication.
	Routes []func(r *mux.Router, h Helpers)
	// MaxBodyBytes bounds webhook bodies (DefaultMaxBodyBytes when 0).
	MaxBodyBytes int64
	// ObserveRequest, if set, is called after every request (metrics).
	ObserveRequest func(route string, status int, d time.Duration)
	Logger         *slog.Logger
}

// Server owns the router and the HTTP server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	router  *mux.Router
	tokens  [][32]byte
	httpSrv *http.Server
	ln      net.Listener
}

// NewServer builds the router. It does not listen; see Open.
func NewServer(cfg Config) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	for _, t := range cfg.Tokens {
		if t != "" {
			s.tokens = append(s.tokens, sha256.Sum256([]byte(t)))
		}
	}
	s.router = s.routes()
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
		s.writeError(w, req, errMethodNotAllowed)
	})
	r.Use(s.requestIDMiddleware)

	r.Handle("/webhooks/stripe", s.observe("webhook", http.HandlerFunc(s.handleWebhook))).Methods(http.MethodPost)
	r.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/readyz", s.handleReady).Methods(http.MethodGet, http.MethodHead)
	if s.cfg.Metrics != nil {
		r.Handle("/metrics", s.cfg.Metrics).Methods(http.MethodGet)
	}

	s.publicLogRoutes(r) // before /v1's authentication: witnesses fetch checkpoints without a token
	v1 := r.PathPrefix("/v1").Subrouter()
	v1.Use(s.authMiddleware)
	h := Helpers{s: s}
	v1.Handle("/events", s.observe("list_events", http.HandlerFunc(s.handleListEvents))).Methods(http.MethodGet)
	v1.Handle("/events/{id}", s.observe("get_event", http.HandlerFunc(s.handleGetEvent))).Methods(http.MethodGet)
	v1.Handle("/events/{id}/body", s.observe("get_event_body", http.HandlerFunc(s.handleGetEventBody))).Methods(http.MethodGet)
	v1.Handle("/accounts/{id}/events", s.observe("account_events", http.HandlerFunc(s.handleAccountEvents))).Methods(http.MethodGet)
	s.logRoutes(v1)
	for _, add := range s.cfg.Routes {
		add(v1, h)
	}
	// Unknown /v1 paths still answer 404 after authentication.
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
		var match mux.RouteMatch
		if s.router.Match(probe, &match) && match.MatchErr == nil {
			out = append(out, m)
		}
	}
	return out
}

// Handler returns the root handler (for httptest and embedding).
func (s *Server) Handler() http.Handler { return s.router }

// Open listens on addr and serves in the background. Timeouts bound slow
// clients: a slowloris can hold a connection for ReadHeaderTimeout at most.
func (s *Server) Open(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	s.ln = ln
	s.httpSrv = &http.Server{
		Handler:           s.router,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := s.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "error", err)
		}
	}()
	return nil
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

// authMiddleware admits requests carrying one of the configured tokens. The
// comparison is constant-time over SHA-256 digests so neither the token nor
// its length leaks through timing.
func (s *Server) authMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" || !s.tokenOK(tok) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="fcaudit"`)
			s.writeError(w, r, errUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) tokenOK(tok string) bool {
	sum := sha256.Sum256([]byte(tok))
	ok := 0
	for i := range s.tokens {
		ok |= subtle.ConstantTimeCompare(sum[:], s.tokens[i][:])
	}
	return ok == 1
}

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

// Helpers gives route packages the server's shared behaviour: the error
// envelope, JSON encoding, list parameters.
type Helpers struct{ s *Server }

// Error answers with the error envelope (and logs 5xx).
func (h Helpers) Error(w http.ResponseWriter, r *http.Request, err error) { h.s.writeError(w, r, err) }

// JSON answers 200 with v as JSON.
func (h Helpers) JSON(w http.ResponseWriter, v any) { writeJSON(w, http.StatusOK, v) }

// BadParam returns an error that answers 400 invalid_request naming param.
func BadParam(param, format string, args ...any) error { return badParam(param, format, args...) }

// NotFound returns an error that answers 404 with msg.
func NotFound(msg string) error { return &notFoundError{msg: msg} }
