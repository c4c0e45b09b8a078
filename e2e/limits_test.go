package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/fcevents"
)

// Black-box tests of serve's limits on hostile traffic, against the real
// binary: every assertion is on outcomes (served or refused, counts,
// memory), never on durations; every wait is bounded.

// scrape reads one fcaudit metric (no labels) from /metrics.
func scrape(t *testing.T, baseURL, name string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code, body, err := get(ctx, newClient(1), baseURL+"/metrics", "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %q", name, line)
			}
			return f
		}
	}
	t.Fatalf("metric %s not in /metrics", name)
	return 0
}

// logged reports whether the child's JSON log has a record at level with
// a message containing msg.
func (s *server) logged(level, msg string) bool {
	for _, line := range strings.Split(s.stderr.String(), "\n") {
		var rec struct{ Level, Msg string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Level == level && strings.Contains(rec.Msg, msg) {
			return true
		}
	}
	return false
}

// waitLogged waits (bounded) for a log record.
func (s *server) waitLogged(t *testing.T, level, msg string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !s.logged(level, msg) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s log %q; stderr:\n%s", level, msg, s.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// idleConns opens n connections, each after one GET /healthz, and leaves
// them idle in keep-alive (the attack the connection limit answers).
func idleConns(t *testing.T, host string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range n {
		c, err := net.DialTimeout("tcp", host, 10*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: "+host+"\r\n\r\n"); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		_ = c.SetDeadline(time.Time{})
	}
	return conns
}

// closedCount counts the connections the server has closed, giving each
// (concurrently) a bounded time to show it.
func closedCount(conns []net.Conn) int {
	var n atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			var b [1]byte
			_, err := c.Read(b[:])
			if ne, ok := err.(net.Error); err != nil && !(ok && ne.Timeout()) {
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return int(n.Load())
}

// TestLimitConnections: an attacker holding twice
// --max-connections in idle keep-alive connections does not keep a fresh
// client with a signed webhook out: the oldest idle ones are shed, with a
// WARN log, and /metrics counts open and shed connections.
func TestLimitConnections(t *testing.T) {
	t.Parallel()
	const limit = 50
	srv := startServe(t, serveConfig{dataDir: t.TempDir(), extra: []string{"--max-connections", strconv.Itoa(limit)}})
	host := strings.TrimPrefix(srv.url, "http://")
	conns := idleConns(t, host, 2*limit)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}
	ev := newEvent(fc.TypeCreated, "")
	code, a, err := postWebhook(ctx, c, srv.url, ev.body, testSecret)
	if err != nil || code != http.StatusOK {
		t.Fatalf("signed webhook while %d idle connections are held: %d %+v %v", len(conns), code, a, err)
	}
	if code, body, err := get(ctx, c, srv.url+"/v1/events/"+ev.id, testToken); err != nil || code != http.StatusOK {
		t.Fatalf("GET the stored event: %d %.200s %v", code, body, err)
	}
	// 100 held + the webhook + the GET, with 50 slots: at least 52 shed.
	if n := closedCount(conns); n < limit+1 {
		t.Fatalf("the server closed %d of the %d idle connections, want at least %d", n, len(conns), limit+1)
	}
	if open := scrape(t, srv.url, "fcaudit_http_connections_open"); open > limit {
		t.Errorf("fcaudit_http_connections_open = %v, want ≤ %d", open, limit)
	}
	if shed := scrape(t, srv.url, "fcaudit_http_connections_shed_total"); shed < limit+2 {
		t.Errorf("fcaudit_http_connections_shed_total = %v, want ≥ %d", shed, limit+2)
	}
	srv.waitLogged(t, "WARN", "connection limit reached")
}

// TestLimitConnectionsDefaultAndAcceptErrors: the default limit is
// derived from the file descriptor limit, and when accepting fails anyway
// (a --max-connections above what the descriptors allow) the failure is
// logged at WARN and counted in /metrics.
func TestLimitConnectionsDefaultAndAcceptErrors(t *testing.T) {
	t.Parallel()
	def := startServe(t, serveConfig{dataDir: t.TempDir(), noFile: 1024})
	if !strings.Contains(def.stderr.String(), `"max_connections":896`) {
		t.Errorf("with RLIMIT_NOFILE 1024 the start-up log does not say max_connections 896 (1024 less 128):\n%s", def.stderr.String())
	}

	srv := startServe(t, serveConfig{dataDir: t.TempDir(), noFile: 64, extra: []string{"--max-connections", "1000"}})
	host := strings.TrimPrefix(srv.url, "http://")
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	// The kernel completes these handshakes whether or not serve can
	// accept them; past its 64 descriptors, accept fails with EMFILE.
	for range 100 {
		c, err := net.DialTimeout("tcp", host, 10*time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	srv.waitLogged(t, "WARN", "accepting a connection failed")
	// Out of descriptors, serve sheds its oldest idle connection to accept
	// the next: a signed webhook behind the silent ones is still served.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Minute}
	ev := newEvent(fc.TypeCreated, "")
	if code, a, err := postWebhook(ctx, c, srv.url, ev.body, testSecret); err != nil || code != http.StatusOK {
		t.Fatalf("signed webhook with serve out of descriptors: %d %+v %v", code, a, err)
	}
	if n := scrape(t, srv.url, "fcaudit_http_accept_errors_total"); n < 1 {
		t.Errorf("fcaudit_http_accept_errors_total = %v, want ≥ 1", n)
	}
}

// vmHWM reads a process's peak resident set size in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM: %q", line)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}

// Figures of the memory test, recorded in docs/reliability.md.
const (
	attackSenders  = 2500
	attackBodySize = 1 << 20
	// attackBudget is the --max-inflight-bytes the test runs with.
	attackBudget = 16 << 20
	// perConnOverhead bounds what one open connection costs serve beyond
	// the body bytes it reserved (goroutine stack, buffers, TLS-free
	// bookkeeping), and fixedOverhead what the attack costs beyond that
	// (GC headroom over the live bodies, runtime structures).
	perConnOverhead = 32 << 10
	fixedOverhead   = 48 << 20
)

// TestLimitInflightBytes: 2,500 concurrent unsigned 1 MiB bodies
// take serve's peak RSS up by no more than the body budget plus a bounded
// overhead; beyond the budget webhooks are answered 503 server_busy with
// Retry-After; nothing unsigned is stored, and a signed webhook is served
// afterwards.
func TestLimitInflightBytes(t *testing.T) {
	t.Parallel()
	srv := startServe(t, serveConfig{dataDir: t.TempDir(),
		extra: []string{"--max-inflight-bytes", strconv.Itoa(attackBudget)}})
	host := strings.TrimPrefix(srv.url, "http://")
	pid := srv.cmd.Process.Pid

	// Baseline: serving, after one signed webhook and one query.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	warm := newEvent(fc.TypeCreated, "")
	if code, a, err := postWebhook(ctx, newClient(1), srv.url, warm.body, testSecret); err != nil || code != http.StatusOK {
		t.Fatalf("warm-up webhook: %d %+v %v", code, a, err)
	}
	before := vmHWM(t, pid)

	body := []byte(strings.Repeat("a", attackBodySize)) // never parsed: the signature fails first
	head := fmt.Sprintf("POST /webhooks/stripe HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"+
		"Stripe-Signature: t=%d,v1=%s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		host, time.Now().Unix(), strings.Repeat("0", 64), len(body))

	// Every sender sends its headers and one body byte, then waits for the
	// release: by then the budget is full (serve holds the bodies it
	// admitted, waiting for their bytes), so refusals are certain.
	release := make(chan struct{})
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		outcomes = map[string]int{}
		headsOut sync.WaitGroup
	)
	count := func(k string) {
		mu.Lock()
		outcomes[k]++
		mu.Unlock()
	}
	headsOut.Add(attackSenders)
	for range attackSenders {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", host, 30*time.Second)
			if err != nil {
				headsOut.Done()
				count("dial error")
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
			_, err = io.WriteString(c, head+string(body[:1]))
			headsOut.Done()
			<-release
			if err == nil {
				_, _ = c.Write(body[1:]) // fails when serve refused and closed: fine
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				count("closed") // refused and closed before the answer could be read
				return
			}
			var a answer
			_ = json.NewDecoder(resp.Body).Decode(&a)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
				count("503 without Retry-After")
				return
			}
			count(fmt.Sprintf("%d %s", resp.StatusCode, a.errType()))
		})
	}
	headsOut.Wait()
	// Release once serve holds the full budget and has refused some.
	deadline := time.Now().Add(2 * time.Minute)
	for scrape(t, srv.url, "fcaudit_http_inflight_body_bytes") < attackBudget-attackBodySize ||
		scrape(t, srv.url, "fcaudit_http_busy_total") < 100 {
		if time.Now().After(deadline) {
			close(release)
			t.Fatalf("serve never held its body budget with %d senders", attackSenders)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	peak := vmHWM(t, pid)
	t.Logf("outcomes: %v", outcomes)
	t.Logf("VmHWM before %.1f MiB, after %.1f MiB (budget %d MiB, %d senders of %d MiB)",
		float64(before)/(1<<20), float64(peak)/(1<<20), attackBudget>>20, attackSenders, attackBodySize>>20)

	for k, n := range outcomes {
		switch k {
		case "400 signature_invalid", "503 server_busy", "closed":
		default:
			t.Errorf("%d senders got %q", n, k)
		}
	}
	if outcomes["503 server_busy"]+outcomes["closed"] == 0 || outcomes["400 signature_invalid"] == 0 {
		t.Errorf("want some bodies read and refused for their signature, and some refused unread: %v", outcomes)
	}
	bound := before + attackBudget + attackSenders*perConnOverhead + fixedOverhead
	if peak > bound {
		t.Fatalf("peak RSS %d MiB under the attack, want ≤ %d MiB (baseline %d + budget %d + %d×%d KiB + %d MiB)",
			peak>>20, bound>>20, before>>20, attackBudget>>20, attackSenders, perConnOverhead>>10, fixedOverhead>>20)
	}
	if n := scrape(t, srv.url, "fcaudit_http_inflight_body_bytes"); n != 0 {
		t.Errorf("inflight body bytes after the attack = %v, want 0", n)
	}
	ev := newEvent(fc.TypeCreated, "")
	if code, a, err := postWebhook(ctx, newClient(1), srv.url, ev.body, testSecret); err != nil || code != http.StatusOK {
		t.Fatalf("signed webhook after the attack: %d %+v %v", code, a, err)
	}
	if got := storedIDs(t, srv.dataDir); len(got) != 2 {
		t.Errorf("stored %d events, want the 2 signed ones", len(got))
	}
}

// TestLimitUnauthenticatedV1: without a token, /v1 reveals no
// routes (unknown path, wrong method: 401), and every answer carries
// X-Request-Id.
func TestLimitUnauthenticatedV1(t *testing.T) {
	t.Parallel()
	srv := startServe(t, serveConfig{dataDir: t.TempDir()})
	c := newClient(1)
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/v1/no/such/route", 401},
		{http.MethodDelete, "/v1/events/evt_1", 401},
		{http.MethodPut, "/v1/accounts", 401},
		{http.MethodGet, "/v1/events", 401},
		{http.MethodGet, "/nope", 404},
		{http.MethodGet, "/webhooks/stripe", 405},
		{http.MethodGet, "/healthz", 200},
	} {
		req, _ := http.NewRequest(tc.method, srv.url+tc.path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want || resp.Header.Get("Allow") != "" && tc.want == 401 || resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("%s %s: %d Allow %q X-Request-Id %q, want %d with an id", tc.method, tc.path,
				resp.StatusCode, resp.Header.Get("Allow"), resp.Header.Get("X-Request-Id"), tc.want)
		}
	}
}

// TestLimitListParameters: a
// type filter of 1,000 values and an unknown parameter answer 400
// invalid_request naming the parameter, and log no error.
func TestLimitListParameters(t *testing.T) {
	t.Parallel()
	srv := startServe(t, serveConfig{dataDir: t.TempDir()})
	types := make([]string, 1000)
	for i := range types {
		types[i] = "created" // valid, so the count bound (not the type parser) refuses it
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct{ path, param string }{
		{"/v1/events?type=" + strings.Join(types, ","), "type"},
		{"/v1/accounts/fca_x/events?type=" + strings.Join(types, ","), "type"},
		{"/v1/events?limt=10", "limt"},
		{"/v1/accounts?status=active&bogus=1", "bogus"},
	} {
		code, body, err := get(ctx, newClient(1), srv.url+tc.path, testToken)
		var a struct {
			Error struct{ Type, Param string } `json:"error"`
		}
		_ = json.Unmarshal(body, &a)
		if err != nil || code != http.StatusBadRequest || a.Error.Type != "invalid_request" || a.Error.Param != tc.param {
			t.Errorf("%.60s…: %d %.200s %v, want 400 invalid_request naming %s", tc.path, code, body, err, tc.param)
		}
	}
	if srv.logged("ERROR", "") {
		t.Errorf("client mistakes logged at ERROR:\n%s", srv.stderr.String())
	}
}

// TestLimitPprofLoopbackOnly: --pprof on a non-loopback address
// is a usage error (exit 2 naming the flag); loopback is served.
func TestLimitPprofLoopbackOnly(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "example.com:6060"} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, binPath, "serve", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0",
			"--webhook-secret", testSecret, "--pprof", addr)
		out, err := cmd.CombinedOutput()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "--pprof") {
			t.Errorf("serve --pprof %s: %v, want exit 2 naming --pprof; output:\n%s", addr, err, out)
		}
	}
	srv := startServe(t, serveConfig{dataDir: t.TempDir(), extra: []string{"--pprof", "127.0.0.1:0"}})
	srv.waitLogged(t, "INFO", "pprof listening")
}

// TestLimitListResponseSize: limit=100 over events near the 1 MiB
// body limit answers at most 4 MiB a page, with has_more, and paging
// returns every event once.
func TestLimitListResponseSize(t *testing.T) {
	t.Parallel()
	srv := startServe(t, serveConfig{dataDir: t.TempDir()})
	big := &fcevents.Generator{Size: 1<<20 - 4096}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newClient(1)
	const n = 10
	var want []string
	account := ""
	for i := range n {
		typ := fc.TypeRefreshedBalance
		if i == 0 {
			typ = fc.TypeCreated
		}
		body := big.Event(typ, account, time.Now().Unix())
		code, a, err := postWebhook(ctx, c, srv.url, body, testSecret)
		if err != nil || code != http.StatusOK {
			t.Fatalf("event %d (%d bytes): %d %+v %v", i, len(body), code, a, err)
		}
		want = append(want, a.ID)
		account = strings.TrimPrefix(a.Stream, "fcaccount-")
	}
	for _, base := range []string{"/v1/events?limit=100", "/v1/accounts/" + account + "/events?limit=100"} {
		var got []string
		after := ""
		for pages := 0; pages <= n; pages++ {
			url := srv.url + base
			if after != "" {
				url += "&starting_after=" + after
			}
			code, body, err := get(ctx, c, url, testToken)
			if err != nil || code != http.StatusOK || len(body) > 4<<20 {
				t.Fatalf("%s: %d, %d bytes, %v; want 200 within 4 MiB", base, code, len(body), err)
			}
			var page struct {
				Data    []struct{ ID string } `json:"data"`
				HasMore bool                  `json:"has_more"`
			}
			if err := json.Unmarshal(body, &page); err != nil || len(page.Data) == 0 {
				t.Fatalf("%s: %v, %d items", base, err, len(page.Data))
			}
			for _, d := range page.Data {
				got = append(got, d.ID)
			}
			if page.HasMore != (len(got) < n) {
				t.Fatalf("%s: has_more %v after %d of %d", base, page.HasMore, len(got), n)
			}
			if !page.HasMore {
				break
			}
			after = got[len(got)-1]
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: walked %v, want %v", base, got, want)
		}
	}
}
