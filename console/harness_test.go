package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/api"
	"github.com/fcaudit/fcaudit/audit"
	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/internal/fcevents"
	"github.com/fcaudit/fcaudit/projections"
	"github.com/fcaudit/fcaudit/replay"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

const (
	testSecret = "whsec_console_test_secret"
	testToken  = "tok_console_test"
)

// stack is serve's wiring in-process: a real SQLite event log and read
// models in a temporary directory, the live projection, the webhook ingest
// and the API router with the console mounted, behind a real HTTP server.
type stack struct {
	t       testing.TB
	dir     string
	store   *sqlite.Store
	runner  *projections.Runner
	console *Console
	srv     *httptest.Server
	gen     *fcevents.Generator
	logs    *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type stackOptions struct {
	now        func() time.Time
	trustProxy bool
}

func newStack(tb testing.TB, o stackOptions) *stack {
	tb.Helper()
	dir := tb.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, sqlite.FileName), sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	r, err := projections.Open(filepath.Join(dir, projections.FileName), st, projections.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done; r.Close() })

	v, err := ingest.NewVerifier([]string{testSecret}, 5*time.Minute)
	if err != nil {
		tb.Fatal(err)
	}
	logs := &syncBuffer{}
	logger := slogText(logs)
	c, err := New(Config{Accounts: r, Projections: r, Log: st, Signatures: v, Tokens: []string{testToken},
		KeyFile: filepath.Join(dir, "console-session.key"), Backend: "embedded SQLite", Version: "test",
		TrustProxy: o.trustProxy, Logger: logger, Now: o.now})
	if err != nil {
		tb.Fatal(err)
	}
	srv := api.NewServer(api.Config{Store: st, Ingest: ingest.NewService(v, st, ingest.ServiceOptions{}),
		Tokens: []string{testToken}, Logger: logger, Console: c,
		Accounts: r, Replays: replay.NewRunLog(st), Verify: audit.NewAccountChecker(st, v)})
	ts := httptest.NewServer(srv.Handler())
	tb.Cleanup(ts.Close)
	return &stack{t: tb, dir: dir, store: st, runner: r, console: c, srv: ts, gen: &fcevents.Generator{}, logs: logs}
}

// body makes a realistic event body; edit, when set, changes data.object.
func (s *stack) body(typ, account string, created int64, edit func(obj map[string]any)) []byte {
	b := s.gen.Event(typ, account, created)
	if edit == nil {
		return b
	}
	var ev map[string]any
	if err := json.Unmarshal(b, &ev); err != nil {
		s.t.Fatal(err)
	}
	edit(ev["data"].(map[string]any)["object"].(map[string]any))
	// Stripe does not escape <, > and & in JSON strings: neither do we.
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		s.t.Fatal(err)
	}
	return out.Bytes()
}

// deliver posts a signed webhook and fails unless it is stored; it
// returns the event id.
func (s *stack) deliver(body []byte) string {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.srv.URL+"/webhooks/stripe", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", fcevents.Sign(body, testSecret, time.Now()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("webhook: %d %s", resp.StatusCode, b)
	}
	var out struct{ ID string }
	_ = json.Unmarshal(b, &out)
	return out.ID
}

func (s *stack) send(typ, account string, created int64, edit func(map[string]any)) string {
	s.t.Helper()
	return s.deliver(s.body(typ, account, created, edit))
}

// caughtUp waits until the live projection has applied the whole log.
func (s *stack) caughtUp() {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		sts, err := s.runner.Status(context.Background())
		if err != nil {
			s.t.Fatal(err)
		}
		if sts[0].EventsBehind == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("projection did not catch up: %+v", sts[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// client is a browser-like HTTP client with a cookie jar that does not
// follow redirects (tests look at them).
func (s *stack) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// signIn signs c in and fails unless it is sent on to next.
func (s *stack) signIn(c *http.Client) {
	s.t.Helper()
	resp := s.post(c, "/console/signin", url.Values{"token": {testToken}, "next": {"/console/accounts"}}, nil)
	if resp.code != http.StatusSeeOther || resp.header.Get("Location") != "/console/accounts" {
		s.t.Fatalf("sign-in: %d %s", resp.code, resp.header.Get("Location"))
	}
}

type response struct {
	code   int
	header http.Header
	body   string
}

func (s *stack) get(c *http.Client, path string) response {
	s.t.Helper()
	resp, err := c.Get(s.srv.URL + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

func (s *stack) post(c *http.Client, path string, form url.Values, hdr map[string]string) response {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

// apiGet reads a /v1 answer with the bearer token.
func (s *stack) apiGet(path string, out any) int {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			s.t.Fatal(fmt.Errorf("GET %s: %w", path, err))
		}
	}
	return resp.StatusCode
}
