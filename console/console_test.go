package console

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/api"
	"github.com/fcaudit/fcaudit/audit"
	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/fcevents"
	"github.com/fcaudit/fcaudit/replay"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

func slogText(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

var tagRE = regexp.MustCompile(`<[^>]*>`)

// text is a page's visible text, roughly: tags removed, entities decoded,
// whitespace collapsed.
func text(html string) string {
	s := tagRE.ReplaceAllString(html, "")
	for _, r := range [][2]string{{"&lt;", "<"}, {"&gt;", ">"}, {"&#34;", `"`}, {"&#39;", "'"}, {"&quot;", `"`}, {"&amp;", "&"}} {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return strings.Join(strings.Fields(s), " ")
}

func checkHeaders(t *testing.T, path string, h http.Header) {
	t.Helper()
	want := map[string]string{
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
		"Cache-Control":          "no-store",
	}
	for k, v := range want {
		if h.Get(k) != v {
			t.Errorf("%s: %s = %q, want %q", path, k, h.Get(k), v)
		}
	}
	csp := h.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("%s: CSP %q", path, csp)
	}
}

func TestSecurityHeadersAndRedirects(t *testing.T) {
	s := newStack(t, stackOptions{})
	acct := fcevents.NewAccountID()
	s.send(fc.TypeCreated, acct, time.Now().Unix(), nil)
	s.caughtUp()
	anon := s.client()
	// Unauthenticated pages go to sign-in, keeping where they were going.
	for _, p := range []string{"/console/", "/console/accounts", "/console/accounts/" + acct + "?as_of=1", "/console/system", "/console/whatever"} {
		r := s.get(anon, p)
		checkHeaders(t, p, r.header)
		u, _ := url.Parse(r.header.Get("Location"))
		if r.code != http.StatusSeeOther || u.Path != "/console/signin" || u.Query().Get("next") != p {
			t.Errorf("anonymous %s: %d %s", p, r.code, r.header.Get("Location"))
		}
	}
	for _, p := range []string{"/", "/console"} {
		if r := s.get(anon, p); r.code != http.StatusSeeOther || r.header.Get("Location") != "/console/" {
			t.Errorf("GET %s: %d %s", p, r.code, r.header.Get("Location"))
		}
	}
	// The API is untouched by the console: /v1 still wants its bearer token.
	if r := s.get(anon, "/v1/accounts"); r.code != http.StatusUnauthorized {
		t.Errorf("/v1/accounts without token: %d", r.code)
	}
	r := s.get(anon, "/console/signin")
	checkHeaders(t, "signin", r.header)
	if r.code != 200 || !strings.Contains(r.body, `<label for="token">`) || strings.Contains(r.body, "<script>") {
		t.Errorf("sign-in page: %d", r.code)
	}
	if r := s.get(anon, "/console/static/console.css"); r.code != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/css") {
		t.Errorf("static css: %d %s", r.code, r.header.Get("Content-Type"))
	} else {
		checkHeaders(t, "static", r.header)
	}

	if r := s.get(anon, "/console/static/"); r.code != 404 {
		t.Errorf("static directory listing: %d", r.code)
	}

	c := s.client()
	s.signIn(c)
	for _, p := range []string{"/console/accounts", "/console/accounts/" + acct, "/console/system", "/console/replays"} {
		r := s.get(c, p)
		if r.code != 200 {
			t.Errorf("%s: %d", p, r.code)
		}
		checkHeaders(t, p, r.header)
		// No inline script or style anywhere: the CSP would block it.
		if strings.Contains(r.body, "<script>") || strings.Contains(r.body, " style=") || strings.Contains(r.body, "onclick") {
			t.Errorf("%s has inline script or style", p)
		}
		if !strings.Contains(r.body, ">Sign out</button>") {
			t.Errorf("%s: no Sign out control", p)
		}
	}
	if r := s.get(c, "/console/accounts/fca_nobody"); r.code != 404 {
		t.Errorf("unknown account: %d", r.code)
	}
	if r := s.get(c, "/console/events/evt_nothing"); r.code != 404 {
		t.Errorf("unknown event: %d", r.code)
	}
}

// TestConsoleOff: without a Console the router serves no console and no
// redirect (serve --console=false).
func TestConsoleOff(t *testing.T) {
	srv := httptest.NewServer(api.NewServer(api.Config{Tokens: []string{testToken}}).Handler())
	defer srv.Close()
	for _, p := range []string{"/", "/console/", "/console/accounts"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s without console: %d", p, resp.StatusCode)
		}
	}
}

func cookieOf(t *testing.T, h http.Header) *http.Cookie {
	t.Helper()
	for _, line := range h.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err == nil && c.Name == CookieName {
			return c
		}
	}
	t.Fatalf("no %s cookie in %q", CookieName, h.Values("Set-Cookie"))
	return nil
}

func TestSignInCookieAndRateLimit(t *testing.T) {
	s := newStack(t, stackOptions{trustProxy: true})
	c := s.client()
	ok := s.post(c, "/console/signin", url.Values{"token": {testToken}, "next": {"/console/system"}}, nil)
	ck := cookieOf(t, ok.header)
	if ok.code != 303 || ok.header.Get("Location") != "/console/system" {
		t.Fatalf("sign-in: %d %s", ok.code, ok.header.Get("Location"))
	}
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure || ck.Path != "/console/" {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, not Secure over http, Path /console/", ck)
	}
	// Behind a TLS-terminating proxy that is trusted, the cookie is Secure.
	viaTLS := s.post(s.client(), "/console/signin", url.Values{"token": {testToken}}, map[string]string{"X-Forwarded-Proto": "https"})
	if ck := cookieOf(t, viaTLS.header); !ck.Secure {
		t.Errorf("cookie over https via proxy is not Secure")
	}
	// An open redirect through next is refused.
	for _, next := range []string{"https://evil.example/", "//evil.example/console/", "/v1/accounts", "/console/\\evil"} {
		r := s.post(s.client(), "/console/signin", url.Values{"token": {testToken}, "next": {next}}, nil)
		if r.header.Get("Location") != "/console/accounts" {
			t.Errorf("next %q: sent to %q", next, r.header.Get("Location"))
		}
	}
	// Cross-site posts are refused before the token is looked at.
	if r := s.post(s.client(), "/console/signin", url.Values{"token": {testToken}}, map[string]string{"Origin": "http://evil.example"}); r.code != 403 {
		t.Errorf("cross-origin sign-in: %d", r.code)
	}
	if r := s.post(s.client(), "/console/signin", url.Values{"token": {testToken}}, map[string]string{"Sec-Fetch-Site": "cross-site"}); r.code != 403 {
		t.Errorf("cross-site sign-in: %d", r.code)
	}
	if r := s.post(s.client(), "/console/signin", url.Values{"token": {testToken}}, map[string]string{"Origin": s.srv.URL}); r.code != 303 {
		t.Errorf("same-origin sign-in: %d", r.code)
	}

	// Failures: 401 with a message, logged without the token, then 429.
	wrong := "tok_console_tesx"
	for i := range failsPerClient {
		r := s.post(s.client(), "/console/signin", url.Values{"token": {wrong}}, nil)
		if r.code != http.StatusUnauthorized || !strings.Contains(r.body, "not one of this server") {
			t.Fatalf("failure %d: %d", i, r.code)
		}
	}
	r := s.post(s.client(), "/console/signin", url.Values{"token": {testToken}}, nil)
	if r.code != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Errorf("after %d failures: %d, Retry-After %q", failsPerClient, r.code, r.header.Get("Retry-After"))
	}
	// Another client (per X-Forwarded-For, trusted here) is not blocked.
	if r := s.post(s.client(), "/console/signin", url.Values{"token": {testToken}}, map[string]string{"X-Forwarded-For": "192.0.2.7"}); r.code != 303 {
		t.Errorf("other client: %d", r.code)
	}
	logs := s.logs.String()
	if !strings.Contains(logs, "console sign-in failed") {
		t.Errorf("failures not logged: %s", logs)
	}
	if strings.Contains(logs, wrong) || strings.Contains(logs, testToken) {
		t.Errorf("a token reached the log: %s", logs)
	}
}

func TestSessionExpiryForgeryAndSignOut(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s := newStack(t, stackOptions{now: clock})
	c := s.client()
	s.signIn(c)
	if r := s.get(c, "/console/system"); r.code != 200 {
		t.Fatalf("signed in: %d", r.code)
	}
	u, _ := url.Parse(s.srv.URL + "/console/")
	cookie := c.Jar.Cookies(u)[0].Value

	// A tampered cookie is nobody's session.
	forged := s.client()
	p, mac, _ := strings.Cut(cookie, ".")
	b := []byte(p)
	b[3] ^= 1
	forged.Jar.SetCookies(u, []*http.Cookie{{Name: CookieName, Value: string(b) + "." + mac}})
	if r := s.get(forged, "/console/system"); r.code != 303 {
		t.Errorf("tampered cookie: %d", r.code)
	}

	// Idle expiry, kept moving by use.
	advance(DefaultIdleTimeout - time.Minute)
	if r := s.get(c, "/console/system"); r.code != 200 {
		t.Fatalf("before idle expiry: %d", r.code)
	}
	advance(DefaultIdleTimeout - time.Minute) // refreshed by the last request
	if r := s.get(c, "/console/system"); r.code != 200 {
		t.Fatalf("idle expiry did not move with use: %d", r.code)
	}
	advance(DefaultIdleTimeout + time.Second)
	if r := s.get(c, "/console/system"); r.code != 303 {
		t.Errorf("after idle expiry: %d", r.code)
	}

	// Absolute expiry, however active the session.
	c2 := s.client()
	s.signIn(c2)
	for elapsed := time.Duration(0); elapsed < DefaultMaxAge-DefaultIdleTimeout; elapsed += DefaultIdleTimeout / 2 {
		advance(DefaultIdleTimeout / 2)
		if r := s.get(c2, "/console/system"); r.code != 200 {
			t.Fatalf("active session lost after %s: %d", elapsed, r.code)
		}
	}
	advance(DefaultIdleTimeout)
	if r := s.get(c2, "/console/system"); r.code != 303 {
		t.Errorf("after absolute expiry: %d", r.code)
	}

	// Sign-out ends the session: the cookie is cleared, and the same
	// cookie presented again is refused.
	c3 := s.client()
	s.signIn(c3)
	kept := c3.Jar.Cookies(u)[0].Value
	if r := s.post(c3, "/console/signout", nil, map[string]string{"Origin": "http://evil.example"}); r.code != 403 {
		t.Errorf("cross-origin sign-out: %d", r.code)
	}
	r := s.post(c3, "/console/signout", nil, map[string]string{"Origin": s.srv.URL})
	if r.code != 303 || r.header.Get("Location") != "/console/signin" {
		t.Errorf("sign-out: %d %s", r.code, r.header.Get("Location"))
	}
	if r := s.get(c3, "/console/system"); r.code != 303 {
		t.Errorf("after sign-out: %d", r.code)
	}
	replayed := s.client()
	replayed.Jar.SetCookies(u, []*http.Cookie{{Name: CookieName, Value: kept}})
	if r := s.get(replayed, "/console/system"); r.code != 303 {
		t.Errorf("signed-out cookie replayed: %d", r.code)
	}
}

func TestSessionKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "console-session.key")
	k1, err := loadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode().Perm(), err)
	}
	k2, err := loadOrCreateKey(path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("key not reused: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Errorf("a world-readable key was accepted: %v", err)
	}
}

// TestHostileStoredStrings: whatever a (signed, so genuine but hostile or
// merely odd) event carries is escaped everywhere it is shown, long values
// are clipped, and the page keeps its structure.
func TestHostileStoredStrings(t *testing.T) {
	s := newStack(t, stackOptions{})
	script := `<script>alert("x")</script>`
	img := `"><img src=x onerror=alert(1)>`
	rtl := "\u202Egnp.exe\u202C Bank \u05D1\u05E0\u05E7"
	combining := "Z\u0351\u0352\u0353\u0354a\u0355\u0356\u0357\u0358l\u0359\u035A\u035Bg\u035C\u035Do"
	huge := strings.Repeat("Ω<b>", 300<<10/5)
	acct := "fca_hostile1"
	t0 := time.Now().Add(-time.Hour).Unix()
	s.send(fc.TypeCreated, acct, t0, func(o map[string]any) {
		o["institution_name"] = script + rtl
		o["display_name"] = img + combining
		o["last4"] = `</td><td>`
		o["category"] = huge
	})
	evID := s.send(fc.TypeDeactivated, acct, t0+60, func(o map[string]any) {
		o["institution_name"] = script + rtl
		o["display_name"] = huge + img
		o["last4"] = `</td><td>`
		o["subcategory"] = script
	})
	s.caughtUp()
	c := s.client()
	s.signIn(c)
	pages := map[string]string{
		"accounts": "/console/accounts?institution=" + url.QueryEscape(script+rtl),
		"account":  "/console/accounts/" + acct,
		"as_of":    "/console/accounts/" + acct + "?as_of=" + url.QueryEscape(time.Unix(t0+1, 0).UTC().Format(time.RFC3339)),
		"event":    "/console/events/" + evID,
	}
	for name, p := range pages {
		r := s.get(c, p)
		if r.code != 200 {
			t.Fatalf("%s: %d", name, r.code)
		}
		for _, bad := range []string{"<script>alert", "<img src=x", "<b>", "</td><td>"} {
			if strings.Contains(r.body, bad) {
				t.Errorf("%s: unescaped %q in the page", name, bad)
			}
		}
		if !strings.Contains(r.body, "&lt;script&gt;alert(") {
			t.Errorf("%s: the escaped <script> name is not shown", name)
		}
		if !strings.HasSuffix(strings.TrimSpace(r.body), "</html>") || strings.Count(r.body, "<main") != 1 {
			t.Errorf("%s: layout broken", name)
		}
		if name != "event" && len(r.body) > 200<<10 {
			// The event page shows the payload in full; elsewhere names are clipped.
			t.Errorf("%s: %d bytes: long names are not clipped", name, len(r.body))
		}
		if name != "event" && !strings.Contains(r.body, "<bdi>") {
			t.Errorf("%s: stored names are not bidi-isolated", name)
		}
	}
	r := s.get(c, pages["accounts"])
	if n := strings.Count(r.body, "<tr data-account-id="); n != 1 {
		t.Errorf("accounts filtered by the hostile institution: %d rows", n)
	}
	r = s.get(c, pages["as_of"]) // the first snapshot: display name img+combining
	if !strings.Contains(r.body, "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;") {
		t.Errorf("display name not shown escaped")
	}
	if !strings.Contains(r.body, "\u202E") || !strings.Contains(r.body, "\u0351") {
		t.Errorf("RTL or combining characters lost")
	}
}

// TestAccountPage: an account whose events arrived out of order: the
// timeline's segments follow Stripe created time, the as_of card answers
// what the API answers, and "what changed" names the status change.
func TestAccountPage(t *testing.T) {
	s := newStack(t, stackOptions{})
	acct := "fca_ooo"
	t0 := time.Now().Add(-72 * time.Hour).Truncate(time.Second).Unix()
	// Delivered: deactivated (t0+2h), created (t0), reactivated (t0+3h),
	// refreshed_balance (t0+1h): two arrive after later-created events.
	deact := s.send(fc.TypeDeactivated, acct, t0+7200, nil)
	s.send(fc.TypeCreated, acct, t0, nil)
	s.send(fc.TypeReactivated, acct, t0+10800, nil)
	bal := s.send(fc.TypeRefreshedBalance, acct, t0+3600, nil)
	s.caughtUp()
	c := s.client()
	s.signIn(c)
	r := s.get(c, "/console/accounts/"+acct)
	if r.code != 200 {
		t.Fatal(r.code)
	}
	segRE := regexp.MustCompile(`<rect class="seg seg-[a-z]+" data-status="([a-z]+)" data-from="(\d+)"`)
	var segs []string
	for _, m := range segRE.FindAllStringSubmatch(r.body, -1) {
		segs = append(segs, m[1]+"@"+m[2])
	}
	want := []string{"active@" + itoa(t0), "inactive@" + itoa(t0+7200), "active@" + itoa(t0+10800)}
	if strings.Join(segs, " ") != strings.Join(want, " ") {
		t.Errorf("segments %v, want %v", segs, want)
	}
	if !strings.Contains(r.body, `id="status-card" data-status="active"`) {
		t.Errorf("current status card is not active")
	}
	// History ordered by created, with the late arrivals marked.
	rowRE := regexp.MustCompile(`<tr data-event-id="([^"]+)" class="([^"]*)"`)
	rows := rowRE.FindAllStringSubmatch(r.body, -1)
	if len(rows) != 4 || rows[1][1] != bal || rows[2][1] != deact {
		t.Fatalf("history rows %v", rows)
	}
	if !strings.Contains(rows[0][2], "ooo") || !strings.Contains(rows[1][2], "ooo") || strings.Contains(rows[2][2], "ooo") {
		t.Errorf("out-of-order marks: %v", rows)
	}
	if n := strings.Count(r.body, `class="mark mark-ooo"`); n != 2 {
		t.Errorf("%d out-of-order marks on the timeline, want 2", n)
	}
	// What changed: the deactivation, against the snapshot before it (the
	// balance refresh, by created time).
	i := strings.Index(r.body, `<tr data-event-id="`+deact+`"`)
	row := r.body[i : i+strings.Index(r.body[i:], "</tr>")]
	if !strings.Contains(text(row), "status: active → inactive") {
		t.Errorf("what changed for the deactivation: %s", text(row))
	}

	// Time travel: the card answers what the API answers.
	for _, at := range []int64{t0 - 1, t0, t0 + 3599, t0 + 7200, t0 + 9000, t0 + 10800, t0 + 99999} {
		var api struct{ Status string }
		code := s.apiGet("/v1/accounts/"+acct+"?as_of="+itoa(at), &api)
		want := api.Status
		if code == 404 {
			want = "none"
		}
		r := s.get(c, "/console/accounts/"+acct+"?as_of="+itoa(at))
		if !strings.Contains(r.body, `id="status-card" data-status="`+want+`"`) {
			t.Errorf("as_of %d: card is not %q (API %d)", at-t0, want, code)
		}
		if !strings.Contains(r.body, `value="`+itoa(at)+`"`) {
			t.Errorf("as_of %d: the form does not keep the time", at-t0)
		}
	}
	// known_at: only the first delivery (the deactivation) was known
	// before the others arrived.
	var first struct {
		ReceivedAt string `json:"received_at"`
	}
	s.apiGet("/v1/events/"+deact, &first)
	r = s.get(c, "/console/accounts/"+acct+"?known_at="+url.QueryEscape(first.ReceivedAt))
	if !strings.Contains(r.body, `data-status="inactive"`) || !strings.Contains(r.body, "Status as known at") {
		t.Errorf("known_at the first delivery: not inactive")
	}
	// known_at's edges answer what the API answers too: the zero time is
	// a time at which nothing was known, not "no bound".
	for _, at := range []string{"0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z", first.ReceivedAt} {
		var api struct{ Status string }
		code := s.apiGet("/v1/accounts/"+acct+"?known_at="+url.QueryEscape(at), &api)
		want := api.Status
		if code == 404 {
			want = "none"
		}
		r := s.get(c, "/console/accounts/"+acct+"?known_at="+url.QueryEscape(at))
		if !strings.Contains(r.body, `id="status-card" data-status="`+want+`"`) {
			t.Errorf("known_at %s: card is not %q (API %d)", at, want, code)
		}
	}
	if r := s.get(c, "/console/accounts/"+acct+"?as_of=yesterday"); r.code != 400 || !strings.Contains(r.body, "as_of:") {
		t.Errorf("bad as_of: %d", r.code)
	}
	if r := s.get(c, "/console/accounts/"+acct+"?as_of=1&known_at=1"); r.code != 400 {
		t.Errorf("as_of with known_at: %d", r.code)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestDownloads: the evidence bundle verifies against its own manifest;
// CSV and NDJSON hold the history; the event's raw body is byte-exact.
func TestDownloads(t *testing.T) {
	s := newStack(t, stackOptions{})
	acct := "fca_dl"
	t0 := time.Now().Add(-time.Hour).Unix()
	first := s.body(fc.TypeCreated, acct, t0, nil)
	id := s.deliver(first)
	s.send(fc.TypeDeactivated, acct, t0+60, nil)
	c := s.client()
	s.signIn(c)
	r := s.get(c, "/console/accounts/"+acct+"/evidence.zip")
	if r.code != 200 || r.header.Get("Content-Type") != "application/zip" || !strings.Contains(r.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("bundle: %d %v", r.code, r.header)
	}
	verifyBundle(t, []byte(r.body), 2)
	if r := s.get(c, "/console/accounts/"+acct+"/history.csv"); r.code != 200 || strings.Count(r.body, "\n") != 3 || !strings.HasPrefix(r.body, strings.Join(audit.CSVHeader, ",")) {
		t.Errorf("csv: %d %q", r.code, r.body)
	}
	if r := s.get(c, "/console/accounts/"+acct+"/history.ndjson"); r.code != 200 || strings.Count(r.body, "\n") != 2 {
		t.Errorf("ndjson: %d", r.code)
	}
	if r := s.get(c, "/console/events/"+id+"/body"); r.code != 200 || r.body != string(first) {
		t.Errorf("raw body differs from what was delivered")
	}
	if r := s.get(c, "/console/accounts/fca_none/evidence.zip"); r.code != 404 {
		t.Errorf("bundle of an unknown account: %d", r.code)
	}
}

// verifyBundle checks every file of a zip bundle against manifest.json.
func verifyBundle(t *testing.T, b []byte, events int) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	var manifest audit.Manifest
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		rc.Close()
		_, name, _ := strings.Cut(f.Name, "/")
		files[name] = data
		if name == audit.BundleManifest {
			if err := json.Unmarshal(data, &manifest); err != nil {
				t.Fatal(err)
			}
		}
	}
	if manifest.Events != events || !manifest.ChainIntact || len(manifest.Files) != len(files)-1 {
		t.Fatalf("manifest: %d events, intact %v, %d files for %d", manifest.Events, manifest.ChainIntact, len(manifest.Files), len(files))
	}
	for _, mf := range manifest.Files {
		sum := sha256.Sum256(files[mf.Path])
		if hex.EncodeToString(sum[:]) != mf.SHA256 {
			t.Errorf("%s does not match the manifest", mf.Path)
		}
	}
}

// TestReplaysAndSystem: the run log with its target's credentials redacted,
// one run's page, and the system page's figures.
func TestReplaysAndSystem(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.send(fc.TypeCreated, "fca_sys", time.Now().Unix(), nil)
	rec := replay.RunRecord{ID: "replay_0123456789abcdef01234567", User: "<b>auditor</b>", Host: "host",
		StartedAt: time.Now().UTC(), FinishedAt: time.Now().UTC(), Status: replay.StatusSucceeded,
		// As an older version might have recorded it, unredacted.
		Target: replay.Target{Kind: "http", URL: "https://user:hunter2@hooks.example/in?token=s3cret"}}
	if err := replay.AppendRun(t.Context(), s.store, rec); err != nil {
		t.Fatal(err)
	}
	s.caughtUp()
	c := s.client()
	s.signIn(c)
	for _, p := range []string{"/console/replays", "/console/replays/" + rec.ID} {
		r := s.get(c, p)
		if r.code != 200 || !strings.Contains(r.body, rec.ID) || !strings.Contains(r.body, "hooks.example") {
			t.Fatalf("%s: %d", p, r.code)
		}
		if strings.Contains(r.body, "hunter2") || strings.Contains(r.body, "s3cret") || strings.Contains(r.body, "<b>auditor") {
			t.Errorf("%s shows a credential or unescaped markup", p)
		}
	}
	if r := s.get(c, "/console/replays/evt_x"); r.code != 404 {
		t.Errorf("unknown run: %d", r.code)
	}
	r := s.get(c, "/console/system")
	if r.code != 200 || !strings.Contains(r.body, `<dd id="sys-head">2</dd>`) || !strings.Contains(r.body, "account_status") ||
		!strings.Contains(r.body, `<dd id="sys-backend">embedded SQLite</dd>`) {
		t.Errorf("system page: %d %s", r.code, text(r.body))
	}
}

func TestFmtDelay(t *testing.T) {
	for d, want := range map[time.Duration]string{
		250 * time.Millisecond:                     "250 ms",
		1500 * time.Millisecond:                    "1.5 s",
		5*time.Minute + 3*time.Second:              "5m 3s",
		46 * time.Hour:                             "46h 0m",
		4*24*time.Hour + 3*time.Hour + time.Minute: "4d 3h",
		-2 * time.Second:                           "-2.0 s",
	} {
		if got := fmtDelay(d); got != want {
			t.Errorf("fmtDelay(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestChanges(t *testing.T) {
	prev := []byte(`{"data":{"object":{"status":"active","balance":{"as_of":1,"cash":{"usd":5}},"tags":["a"],"gone":1,"same":"x"}}}`)
	cur := []byte(`{"data":{"object":{"status":"inactive","balance":{"as_of":2,"cash":{"usd":5}},"tags":["a","b"],"new":null,"same":"x"}}}`)
	got, err := changes(prev, cur)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, c := range got {
		lines = append(lines, c.Kind+" "+c.Field+" "+c.Old+"|"+c.New)
	}
	want := "changed status active|inactive; changed balance.as_of 1|2; removed gone 1|; added new |null; changed tags [\"a\"]|[\"a\",\"b\"]"
	if strings.Join(lines, "; ") != want {
		t.Errorf("changes:\n%s\nwant\n%s", strings.Join(lines, "; "), want)
	}
	objToNull, _ := changes([]byte(`{"data":{"object":{"balance":{"as_of":1}}}}`), []byte(`{"data":{"object":{"balance":null}}}`))
	if len(objToNull) != 1 || objToNull[0].Field != "balance" || objToNull[0].New != "null" {
		t.Errorf("object to null: %+v", objToNull)
	}
}

// TestPagination: the history pages by 100 events (keeping the time-travel
// parameter), the accounts table by 50 accounts.
func TestPagination(t *testing.T) {
	s := newStack(t, stackOptions{})
	acct := "fca_pages"
	t0 := time.Now().Add(-200 * time.Hour).Unix()
	s.send(fc.TypeCreated, acct, t0, nil)
	for i := 1; i < 120; i++ {
		s.send(fc.TypeRefreshedBalance, acct, t0+int64(i)*60, nil)
	}
	for i := range 59 {
		s.send(fc.TypeCreated, fmt.Sprintf("fca_p%03d", i), t0, nil)
	}
	s.caughtUp()
	c := s.client()
	s.signIn(c)
	rowRE := regexp.MustCompile(`<tr data-event-id="`)
	r := s.get(c, "/console/accounts/"+acct+"?as_of="+itoa(t0+30*60))
	if n := len(rowRE.FindAllString(r.body, -1)); n != 100 || !strings.Contains(r.body, "page 1 of 2") {
		t.Fatalf("history page 1: %d rows", n)
	}
	next := regexp.MustCompile(`href="([^"]+)" rel="next" id="history-next"`).FindStringSubmatch(r.body)
	if next == nil {
		t.Fatal("no next page link")
	}
	u := strings.ReplaceAll(next[1], "&amp;", "&")
	if !strings.Contains(u, "as_of="+itoa(t0+30*60)) || !strings.Contains(u, "page=2") {
		t.Errorf("next page link %q loses the time travel", u)
	}
	r = s.get(c, strings.TrimSuffix(u, "#history"))
	if n := len(rowRE.FindAllString(r.body, -1)); n != 20 || !strings.Contains(r.body, `id="history-prev"`) || strings.Contains(r.body, `id="history-next"`) {
		t.Errorf("history page 2: %d rows", n)
	}

	acctRE := regexp.MustCompile(`<tr data-account-id="([^"]+)"`)
	r = s.get(c, "/console/accounts")
	first := acctRE.FindAllStringSubmatch(r.body, -1)
	next = regexp.MustCompile(`href="([^"]+)" rel="next" id="next-page"`).FindStringSubmatch(r.body)
	if len(first) != 50 || next == nil {
		t.Fatalf("accounts page 1: %d rows, next %v", len(first), next)
	}
	r = s.get(c, strings.ReplaceAll(next[1], "&amp;", "&"))
	second := acctRE.FindAllStringSubmatch(r.body, -1)
	if len(second) != 10 || second[0][1] <= first[49][1] || strings.Contains(r.body, `id="next-page"`) {
		t.Errorf("accounts page 2: %d rows", len(second))
	}
}

// TestVerificationCardShowsTampering: a body changed in the file behind the
// store's back turns the card to "chain broken", naming that event.
func TestVerificationCardShowsTampering(t *testing.T) {
	s := newStack(t, stackOptions{})
	acct := "fca_tampered"
	t0 := time.Now().Add(-time.Hour).Unix()
	s.send(fc.TypeCreated, acct, t0, nil)
	victim := s.send(fc.TypeRefreshedBalance, acct, t0+60, nil)
	s.send(fc.TypeDeactivated, acct, t0+120, nil)
	c := s.client()
	s.signIn(c)
	if r := s.get(c, "/console/accounts/"+acct); !strings.Contains(r.body, `data-intact="true"`) || !strings.Contains(r.body, "chain intact") {
		t.Fatal("untouched account is not shown intact")
	}
	db, err := sql.Open("sqlite", filepath.Join(s.dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(`UPDATE events SET body = replace(body, '"usd"', '"eur"') WHERE event_id = ?`, victim)
	if n, _ := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("tamper: %v, %d rows", err, n)
	}
	r := s.get(c, "/console/accounts/"+acct)
	if !strings.Contains(r.body, `data-intact="false"`) || !strings.Contains(r.body, "chain broken") {
		t.Fatal("tampered account is not shown broken")
	}
	i := strings.Index(r.body, `id="verification"`)
	if card := r.body[i : i+strings.Index(r.body[i:], "</section>")]; !strings.Contains(card, victim) || !strings.Contains(card, "body_hash_mismatch") {
		t.Errorf("the card does not name the tampered event: %s", text(card))
	}
}
