package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/fcaudit/fcaudit/backfill"
	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/internal/tokenset"
	"github.com/fcaudit/fcaudit/projections"
	"github.com/fcaudit/fcaudit/store"
)

// Prefix is the path the console is served under.
const Prefix = "/console/"

// Accounts is the account_status read model, as *projections.Runner
// provides it (the same calls GET /v1/accounts and GET /v1/accounts/{id}
// make).
type Accounts interface {
	// Accounts lists current statuses in id order and whether more match.
	Accounts(ctx context.Context, o projections.ListOptions) ([]projections.AccountStatus, bool, error)
	// StatusCounts counts the accounts in each status.
	StatusCounts(ctx context.Context) (map[string]int64, error)
	// Account is the current status (projections.ErrAccountNotFound when
	// the read model has no row). Time travel folds the stream the account
	// page reads anyway with projections.FoldAt, AccountAt's own fold.
	Account(ctx context.Context, id string) (*projections.AccountStatus, error)
}

// Projections reports the read models' checkpoints and lag.
type Projections interface {
	Status(ctx context.Context) ([]projections.Status, error)
}

// EventLog is the part of the event log the console reads: account streams
// (history, verification, exports), the replay-run stream, events by id and
// the log head.
type EventLog interface {
	ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]store.RecordedEvent, error)
	EventByID(ctx context.Context, id string) (store.RecordedEvent, error)
	Head(ctx context.Context) (store.Position, error)
}

// Reconciliation reports the background backfill's last run
// (*backfill.Reconciler).
type Reconciliation interface {
	Last() (backfill.Result, bool)
}

// Config wires the console. Accounts, Log and KeyFile are required; without
// Tokens nobody can sign in.
type Config struct {
	Accounts    Accounts
	Projections Projections
	Log         EventLog
	// Signatures, when set, re-checks stored webhook signatures on the
	// account page's verification card (serve's webhook secrets).
	Signatures *ingest.Verifier
	// Reconciliation, when set, shows the last reconciliation on the
	// system page.
	Reconciliation Reconciliation
	// Tokens are the API tokens accepted at sign-in (the same as /v1).
	// TokenSet, when set, is used instead: serve's live set, so a token
	// rotated out of the token file (SIGHUP) can no longer sign in, and
	// the sessions signed in with it end.
	Tokens   []string
	TokenSet *tokenset.TokenSet
	// KeyFile holds the session-signing key; it is created (mode 0600)
	// with a random key when missing.
	KeyFile string
	// TrustProxy believes X-Forwarded-Proto (Secure cookies behind a TLS
	// terminating proxy) and X-Forwarded-For (sign-in rate limits).
	TrustProxy bool
	// Backend and Version are shown on the system page.
	Backend, Version string
	// IdleTimeout and MaxAge bound a session (DefaultIdleTimeout,
	// DefaultMaxAge when 0).
	IdleTimeout, MaxAge time.Duration
	Logger              *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Session lifetimes.
const (
	DefaultIdleTimeout = 30 * time.Minute
	DefaultMaxAge      = 12 * time.Hour
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Console serves the pages. Build it with New.
type Console struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	sessions *sessions
	limiter  *limiter
	pages    map[string]*template.Template
	mux      *http.ServeMux
}

// New builds the console handler; it serves paths under Prefix (the API's
// router mounts it there and redirects GET / to it). It reads (or creates)
// the session key file.
func New(cfg Config) (*Console, error) {
	if cfg.Accounts == nil || cfg.Log == nil {
		return nil, errors.New("console: Accounts and Log are required")
	}
	if cfg.KeyFile == "" {
		return nil, errors.New("console: KeyFile is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	key, err := loadOrCreateKey(cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	tokens := cfg.TokenSet
	if tokens == nil {
		tokens = tokenset.NewTokenSet(cfg.Tokens)
	}
	c := &Console{cfg: cfg, log: cfg.Logger.With("component", "console"), now: cfg.Now,
		sessions: newSessions(key, tokens, cfg.IdleTimeout, cfg.MaxAge),
		limiter:  newLimiter(cfg.Now), pages: pages}
	c.mux = c.routes()
	return c, nil
}

func (c *Console) routes() *http.ServeMux {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/console/static/", http.FileServerFS(static))
	m.HandleFunc("GET /console/static/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") { // no directory listings
			http.NotFound(w, r)
			return
		}
		files.ServeHTTP(w, r)
	})
	m.HandleFunc("GET /console/signin", c.handleSignInForm)
	m.HandleFunc("POST /console/signin", c.handleSignIn)
	m.HandleFunc("POST /console/signout", c.handleSignOut)

	auth := func(pattern string, h func(http.ResponseWriter, *http.Request, *session)) {
		m.Handle(pattern, c.requireSession(h))
	}
	auth("GET /console/{$}", func(w http.ResponseWriter, r *http.Request, _ *session) {
		http.Redirect(w, r, "/console/accounts", http.StatusSeeOther)
	})
	auth("GET /console/accounts", c.handleAccounts)
	auth("GET /console/accounts/{id}", c.handleAccount)
	auth("GET /console/accounts/{id}/evidence.zip", c.handleBundle)
	auth("GET /console/accounts/{id}/history.csv", c.handleCSV)
	auth("GET /console/accounts/{id}/history.ndjson", c.handleNDJSON)
	auth("GET /console/events/{id}", c.handleEvent)
	auth("GET /console/events/{id}/body", c.handleEventBody)
	auth("GET /console/replays", c.handleReplays)
	auth("GET /console/replays/{id}", c.handleReplay)
	auth("GET /console/system", c.handleSystem)
	// Anything else under /console/: signed in, a 404 page; otherwise the
	// sign-in page first, so the console's layout is not probed anonymously.
	auth("/console/", func(w http.ResponseWriter, r *http.Request, s *session) {
		c.renderError(w, r, s, http.StatusNotFound, "There is no console page at this address.")
	})
	return m
}

// ServeHTTP serves the console with its security headers on every answer.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	c.mux.ServeHTTP(w, r)
}

// requireSession admits requests with a valid session, refreshing its idle
// expiry; others are sent to the sign-in page with the page they asked for.
func (c *Console) requireSession(h func(http.ResponseWriter, *http.Request, *session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := c.sessions.fromRequest(r, c.now())
		if s == nil {
			next := r.URL.Path
			if r.URL.RawQuery != "" {
				next += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, "/console/signin?next="+url.QueryEscape(next), http.StatusSeeOther)
			return
		}
		c.sessions.refresh(w, s, c.now(), c.secure(r))
		h(w, r, s)
	})
}

// secure reports whether the client reached us over https.
func (c *Console) secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	return c.cfg.TrustProxy && strings.EqualFold(strings.TrimSpace(strings.Split(r.Header.Get("X-Forwarded-Proto"), ",")[0]), "https")
}

// sameOrigin refuses cross-site form posts. Browsers send Sec-Fetch-Site
// with every request (same-origin for the console's own forms); older ones
// send at least Origin, which under Referrer-Policy no-referrer is "null"
// even for our own forms, so "null" is only trusted when Sec-Fetch-Site
// vouches for it. Clients sending neither (curl) are not browsers and carry
// no victim's ambient cookie; SameSite=Strict covers the rest.
func (c *Console) sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return false
	}
	scheme := "http"
	if c.secure(r) {
		scheme = "https"
	}
	return strings.EqualFold(u.Host, r.Host) && u.Scheme == scheme
}
