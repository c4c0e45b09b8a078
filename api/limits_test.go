package api_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/api"
	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/internal/fcevents"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

// openServer runs a Server built from cfg (with a real SQLite store and
// ingest service filled in) on a loopback port through Open, the way serve
// runs it (the connection limit lives in Open's listener), behind the
// conformance check (newOpenServer).
func openServer(t *testing.T, cfg api.Config) (openedServer, string) {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), sqlite.FileName), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	v, err := ingest.NewVerifier([]string{secret}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store = st
	cfg.Ingest = ingest.NewService(v, st, ingest.ServiceOptions{})
	if cfg.Tokens == nil {
		cfg.Tokens = []string{token}
	}
	s := newOpenServer(t, cfg)
	return s, s.Addr()
}

// rawConn is a client connection driven by hand, to hold it idle in
// keep-alive or to stop half way through a body.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, br: bufio.NewReader(c)}
}

// roundTrip sends one GET /healthz on c and reads the answer.
func (c *rawConn) healthz() error {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz: %s", resp.Status)
	}
	return nil
}

// closedByServer waits (bounded) for the server to close c.
func (c *rawConn) closedByServer() bool {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.br.ReadByte()
	return err == io.EOF || (err != nil && !isTimeout(err))
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// postSigned posts a signed fixture on a fresh connection.
func postSigned(t *testing.T, addr string, body []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/stripe", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", sign(body, time.Now()))
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("signed webhook: %v", err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// TestConnectionLimitShedsOldestIdle: with twice the
// limit in idle keep-alive connections, the oldest idle ones are closed, a
// fresh client's signed webhook is served, and the kept connections still
// work.
func TestConnectionLimitShedsOldestIdle(t *testing.T) {
	const limit = 8
	s, addr := openServer(t, api.Config{MaxConnections: limit})
	conns := make([]*rawConn, 2*limit)
	for i := range conns {
		conns[i] = dialRaw(t, addr)
		if err := conns[i].healthz(); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		// "Oldest idle" is the server's order: wait until it has seen this
		// connection go idle before opening the next.
		waitFor(t, func() bool { return s.ConnStats().Idle == int64(min(i+1, limit)) }, "the connection to go idle")
	}
	for i := range limit {
		if !conns[i].closedByServer() {
			t.Fatalf("connection %d of %d (idle, among the oldest) is still open with the limit at %d", i, len(conns), limit)
		}
	}
	if code, m := postSigned(t, addr, fixtures(t)[0]); code != http.StatusOK {
		t.Fatalf("signed webhook beside %d idle connections: %d %v", len(conns), code, m)
	}
	// The webhook's connection took the slot of the oldest idle one left.
	if !conns[limit].closedByServer() {
		t.Fatalf("connection %d (the oldest idle) was not closed to admit the webhook", limit)
	}
	for i := limit + 1; i < len(conns); i++ {
		if err := conns[i].healthz(); err != nil {
			t.Fatalf("connection %d (not among the oldest idle) no longer works: %v", i, err)
		}
	}
	st := s.ConnStats()
	if st.Open > limit || st.Shed != limit+1 {
		t.Fatalf("ConnStats = %+v, want Open ≤ %d and Shed = %d", st, limit, limit+1)
	}
}

// TestConnectionLimitWaitsWhenAllBusy: when every connection is in the
// middle of a request, a new one waits (nothing is shed, and the limit
// holds) until one ends.
func TestConnectionLimitWaitsWhenAllBusy(t *testing.T) {
	const limit = 2
	s, addr := openServer(t, api.Config{MaxConnections: limit})
	// Two connections inside a webhook request: headers sent, body not.
	busy := make([]*rawConn, limit)
	for i := range busy {
		busy[i] = dialRaw(t, addr)
		fmt.Fprintf(busy[i], "POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{")
	}
	waitFor(t, func() bool { return s.ConnStats().InflightBodyBytes == 20 }, "both requests to be in their handlers")
	answered := make(chan int, 1)
	go func() {
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + addr + "/healthz")
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	// Let one busy request end (its body completes: unsigned, so 400).
	if st := s.ConnStats(); st.Shed != 0 || st.Open > limit {
		t.Fatalf("with every connection busy: %+v", st)
	}
	fmt.Fprint(busy[0], "123456789")
	if code := <-answered; code != http.StatusOK {
		t.Fatalf("new client after a busy connection freed up: %d", code)
	}
	if st := s.ConnStats(); st.Open > limit {
		t.Fatalf("limit exceeded: %+v", st)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readAnswer reads one response from c (bounded).
func (c *rawConn) readAnswer(t *testing.T) (*http.Response, map[string]any) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp, m
}

// TestInflightBodyBudget: webhook bodies reserve their
// bytes before being read; beyond the budget a webhook is answered 503
// server_busy with Retry-After without its body being read.
func TestInflightBodyBudget(t *testing.T) {
	const budget = 1 << 20
	const half = budget / 2
	s, addr := openServer(t, api.Config{MaxInflightBytes: budget})

	// Two requests hold the whole budget: headers and one byte of body sent.
	held := make([]*rawConn, 2)
	for i := range held {
		held[i] = dialRaw(t, addr)
		fmt.Fprintf(held[i], "POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", half)
	}
	waitFor(t, func() bool { return s.ConnStats().InflightBodyBytes == budget }, "the budget to be reserved")

	// A third, with a declared length and then chunked: answered before
	// its body is sent, so it was not read.
	for _, h := range []string{fmt.Sprintf("Content-Length: %d", half), "Transfer-Encoding: chunked"} {
		c := dialRaw(t, addr)
		fmt.Fprintf(c, "POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s\r\n\r\n", h)
		resp, m := c.readAnswer(t)
		if resp.StatusCode != http.StatusServiceUnavailable || errType(m) != api.TypeServerBusy || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%s beyond the budget: %d %v Retry-After %q", h, resp.StatusCode, m, resp.Header.Get("Retry-After"))
		}
	}
	if st := s.ConnStats(); st.Busy != 2 || st.InflightBodyBytes != budget {
		t.Fatalf("ConnStats after refusing two: %+v", st)
	}

	// A declared length over the body limit is refused unread too.
	c := dialRaw(t, addr)
	fmt.Fprintf(c, "POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", api.DefaultMaxBodyBytes+1)
	if resp, m := c.readAnswer(t); resp.StatusCode != http.StatusRequestEntityTooLarge || errType(m) != api.TypePayloadTooLarge {
		t.Fatalf("declared length over the body limit: %d %v", resp.StatusCode, m)
	}

	// When a held body completes (unsigned: 400), its bytes return to the
	// budget and a signed webhook is stored.
	rest := strings.Repeat(" ", half-2) + "}"
	for _, h := range held {
		if _, err := io.WriteString(h, rest); err != nil {
			t.Fatal(err)
		}
		if resp, m := h.readAnswer(t); resp.StatusCode != http.StatusBadRequest || errType(m) != api.TypeSignatureInvalid {
			t.Fatalf("held unsigned body: %d %v", resp.StatusCode, m)
		}
	}
	if st := s.ConnStats(); st.InflightBodyBytes != 0 {
		t.Fatalf("budget not returned: %+v", st)
	}
	if code, m := postSigned(t, addr, fixtures(t)[0]); code != http.StatusOK {
		t.Fatalf("signed webhook after the budget freed: %d %v", code, m)
	}
}

// TestUnauthenticatedV1RevealsNothing: without a token
// every /v1 request is 401 before routing, so an unknown path and a wrong
// method answer the same as a real route; every answer, errors included,
// carries X-Request-Id.
func TestUnauthenticatedV1RevealsNothing(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/v1/events"},
		{http.MethodGet, "/v1/nope"},
		{http.MethodGet, "/v1"},
		{http.MethodDelete, "/v1/events/evt_1"},
		{http.MethodPost, "/v1/events"},
		{http.MethodGet, "/x/../v1/events"},
	} {
		req, _ := http.NewRequest(tc.method, e.srv.URL+tc.path, nil)
		req.URL.Opaque = tc.path // keep the path as written (no client cleaning)
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Allow") != "" || resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("%s %s without a token: %d, Allow %q, X-Request-Id %q; want 401, no Allow, an id",
				tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), resp.Header.Get("X-Request-Id"))
		}
	}
	// With a token, the router's answers (and their ids) are as before.
	for _, tc := range []struct {
		method, path string
		auth         bool
		want         int
	}{
		{http.MethodGet, "/v1/nope", true, 404},
		{http.MethodDelete, "/v1/events/evt_1", true, 405},
		{http.MethodGet, "/v1/events?limit=0", true, 400},
		{http.MethodGet, "/nope", false, 404},
		{http.MethodGet, "/webhooks/stripe", false, 405},
		{http.MethodPost, "/webhooks/stripe", false, 400},
		{http.MethodGet, "/healthz", false, 200},
	} {
		req, _ := http.NewRequest(tc.method, e.srv.URL+tc.path, nil)
		if tc.auth {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want || !strings.HasPrefix(resp.Header.Get("X-Request-Id"), "req_") {
			t.Errorf("%s %s: %d X-Request-Id %q, want %d and an id", tc.method, tc.path, resp.StatusCode, resp.Header.Get("X-Request-Id"), tc.want)
		}
	}
}

// TestQueryParamBounds: every /v1 parameter is
// declared and bounded. Unknown parameters, a single-valued one given
// twice, over-long values and too many list values answer 400
// invalid_request naming the parameter (1,000 types made SQLite fail with
// "Expression tree is too large", a 500).
func TestQueryParamBounds(t *testing.T) {
	e := newEnv(t)
	e.ingestAll(t, fixtures(t))
	many := func(n int) string {
		v := make([]string, n)
		for i := range v {
			// Valid type forms (the parser refuses unknown ones), repeated.
			v[i] = fc.Types()[i%len(fc.Types())]
		}
		return strings.Join(v, ",")
	}
	long := strings.Repeat("x", api.MaxParamBytes+1)
	bad := []struct{ path, param string }{
		{"/v1/events?type=" + many(1000), "type"},
		{"/v1/events?type=" + many(api.MaxListValues+1), "type"},
		{"/v1/events?type=" + long, "type"},
		{"/v1/events?limt=5", "limt"},
		{"/v1/events?limit=5&limit=6", "limit"},
		{"/v1/events?starting_after=" + long, "starting_after"},
		{"/v1/events/evt_x?expand=payload", "expand"},
		{"/v1/accounts/" + account + "/events?after_position=3", "after_position"},
		{"/v1/accounts/" + account + "/events?type=" + many(1000), "type"},
		{"/v1/accounts/" + account + "/events?order=received", "order"},
		// The public documents are /v1 routes too: they take no parameters.
		{"/v1/openapi.json?v=2", "v"},
		{"/v1/openapi.yaml?format=json", "format"},
	}
	for _, tt := range bad {
		code, m := e.get(tt.path)
		detail, _ := m["error"].(map[string]any)
		if code != 400 || detail["type"] != api.TypeInvalidRequest || detail["param"] != tt.param ||
			!strings.HasPrefix(fmt.Sprint(detail["message"]), tt.param+":") {
			t.Errorf("%.80s: %d %v, want 400 invalid_request naming %s", tt.path, code, detail, tt.param)
		}
	}
	good := []string{
		"/v1/events?type=" + many(api.MaxListValues),
		"/v1/events?type=created&type=refreshed_*&since=1&until=2000000000&after_position=0&limit=1",
		"/v1/accounts/" + account + "/events?type=" + many(api.MaxListValues) + "&since=1&until=2000000000&limit=1",
	}
	for _, p := range good {
		if code, m := e.get(p); code != 200 {
			t.Errorf("%.80s: %d %v", p, code, m)
		}
	}
}

// TestListResponsesBounded: limit=100 of events near the
// 1 MiB body limit answers a page of at most MaxListBytes with has_more,
// and paging walks every event once, in order (it built a response of
// limit × 1 MiB before).
func TestListResponsesBounded(t *testing.T) {
	e := newEnv(t)
	gen := &fcevents.Generator{Size: api.DefaultMaxBodyBytes - 4096}
	const n = 12
	var want []string
	for i := range n {
		typ := fc.TypeRefreshedBalance
		if i == 0 {
			typ = fc.TypeCreated
		}
		body := gen.Event(typ, account, time.Now().Unix())
		code, m := e.post(body, sign(body, time.Now()))
		if code != 200 {
			t.Fatalf("event %d: %d %v", i, code, m)
		}
		want = append(want, m["id"].(string))
	}
	for _, base := range []string{"/v1/events?limit=100", "/v1/accounts/" + account + "/events?limit=100"} {
		var got []string
		after := ""
		for pages := 0; ; pages++ {
			if pages > n {
				t.Fatalf("%s: more than %d pages", base, n)
			}
			path := base
			if after != "" {
				path += "&starting_after=" + after
			}
			req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || len(raw) > api.MaxListBytes+1024 {
				t.Fatalf("%s: %d, %d bytes (bound %d)", path, resp.StatusCode, len(raw), api.MaxListBytes)
			}
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			page := ids(m)
			if len(page) == 0 {
				t.Fatalf("%s: empty page with has_more %v", path, m["has_more"])
			}
			got = append(got, page...)
			if m["has_more"] != (len(got) < n) {
				t.Fatalf("%s: has_more %v after %d of %d", path, m["has_more"], len(got), n)
			}
			if m["has_more"] == false {
				break
			}
			after = page[len(page)-1]
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: walked %v, want %v", base, got, want)
		}
	}
}
