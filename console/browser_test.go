package console

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/replay"
)

// browserPath finds Chromium: $FCAUDIT_CHROMIUM, else Debian's chromium
// (`apt-get install -y chromium`, as .ci/run does) or a Chrome on PATH. In
// CI (CI set) a missing browser fails the test; elsewhere it skips it.
func browserPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FCAUDIT_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no Chromium found: CI must run the browser tests (apt-get install -y chromium, or set FCAUDIT_CHROMIUM)")
	}
	t.Skip("browser tests skipped: no Chromium found (apt-get install -y chromium, or set FCAUDIT_CHROMIUM); they are required in CI")
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile.
func newBrowser(t *testing.T, exe string) context.Context {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancel := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

// seeded names what seedConsole stored.
type seeded struct {
	ooo                string // the account whose events arrived out of order
	t0                 int64
	deactivation       string // its deactivation event
	inactive, accounts int
	statusOf           map[string]string
}

// seedConsole stores a small realistic book of accounts and one account
// with a long, out-of-order history (deactivated, then reactivated).
func seedConsole(s *stack) seeded {
	d := seeded{statusOf: map[string]string{}}
	now := time.Now().Truncate(time.Second)
	institutions := []string{"StripeBank", "Gringotts Savings", "First Platypus Bank", "Banco Ñandú", "Crédit Mutuel du Nord"}
	names := []string{"Everyday Checking", "Rainy Day Savings", "Operating Account", "Payroll", "Cuenta Corriente"}
	for i := range 9 {
		id := fmt.Sprintf("fca_1Q%02dDemo%sAcct", i, strings.Repeat("x", 8))
		created := now.Add(-time.Duration(240-i*10) * time.Hour).Unix()
		edit := func(o map[string]any) {
			o["institution_name"] = institutions[i%len(institutions)]
			o["display_name"] = names[i%len(names)]
		}
		s.send(fc.TypeCreated, id, created, edit)
		s.send(fc.TypeRefreshedBalance, id, created+3600, edit)
		st := "active"
		switch i % 3 {
		case 1:
			s.send(fc.TypeDeactivated, id, created+7200, edit)
			st = "inactive"
			d.inactive++
		case 2:
			if i%2 == 0 {
				s.send(fc.TypeDisconnected, id, created+7200, edit)
				st = "disconnected"
			}
		}
		d.statusOf[id] = st
	}
	// The out-of-order account: created at t0, refreshed, deactivated at
	// t0+30h, reactivated at t0+50h, refreshed again; several deliveries
	// arrive after events created later.
	d.ooo = "fca_1QzOutOfOrderDemoAcct"
	d.t0 = now.Add(-96 * time.Hour).Unix()
	h := int64(3600)
	edit := func(o map[string]any) {
		o["institution_name"] = "StripeBank"
		o["display_name"] = "Sample Checking Account"
	}
	send := func(typ string, at int64) string { return s.send(typ, d.ooo, d.t0+at, edit) }
	send(fc.TypeCreated, 0)
	send(fc.TypeRefreshedBalance, 2*h)
	send(fc.TypeRefreshedOwnership, 6*h)
	d.deactivation = send(fc.TypeDeactivated, 30*h)
	send(fc.TypeRefreshedBalance, 20*h) // late: created before the deactivation
	send(fc.TypeReactivated, 50*h)
	// Late again: a transaction refresh that failed while inactive.
	s.send(fc.TypeRefreshedTransactions, d.ooo, d.t0+40*h, func(o map[string]any) {
		edit(o)
		o["status"] = "inactive"
		o["transaction_refresh"].(map[string]any)["status"] = "failed"
	})
	send(fc.TypeRefreshedBalance, 60*h)
	send(fc.TypeRefreshedTransactions, 70*h)
	d.statusOf[d.ooo] = "active"
	d.accounts = len(d.statusOf)
	return d
}

func TestBrowser(t *testing.T) {
	exe := browserPath(t)
	s := newStack(t, stackOptions{})
	d := seedConsole(s)
	if err := replay.AppendRun(t.Context(), s.store, replay.RunRecord{ID: "replay_5f0c1a2b3c4d5e6f7a8b9c0d", User: "auditor", Host: "audit-laptop",
		StartedAt: time.Now().Add(-time.Hour).UTC(), FinishedAt: time.Now().Add(-time.Hour + 3*time.Second).UTC(),
		Target: replay.Target{Kind: "http", URL: "https://staging.example.com/webhooks/stripe?key=REDACTED"},
		Status: replay.StatusSucceeded, Counts: replay.Result{}}); err != nil {
		t.Fatal(err)
	}
	s.caughtUp()
	ctx := newBrowser(t, exe)
	base := s.srv.URL
	shots := os.Getenv("FCAUDIT_SCREENSHOTS")

	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// load runs an action that leads to a new page and waits for it.
	load := func(what string, a chromedp.Action[chromedp.Void]) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.WaitEvent(cdppage.LoadEventFired, nil, a)); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	location := func() *url.URL {
		t.Helper()
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(loc)
		return u
	}
	eval := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	shot := func(name string) {
		t.Helper()
		if shots == "" {
			return
		}
		b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	account := base + "/console/accounts/" + d.ooo

	// Unauthenticated: the account page sends the browser to sign-in.
	do("open the account page", chromedp.Navigate(account))
	if u := location(); u.Path != "/console/signin" || u.Query().Get("next") != "/console/accounts/"+d.ooo {
		t.Fatalf("unauthenticated page went to %s", u)
	}
	shot("signin")
	// A wrong token: refused, still on the sign-in page.
	do("type a wrong token", chromedp.SendKeys(chromedp.ID("token"), "not-a-token"))
	load("submit", chromedp.Click(chromedp.ID("signin-submit")))
	if msg := eval(`document.getElementById("signin-error").textContent`); !strings.Contains(msg, "not one of") {
		t.Fatalf("wrong token: %q", msg)
	}
	// Sign in: back to the page asked for.
	do("type the token", chromedp.SendKeys(chromedp.ID("token"), testToken))
	load("sign in", chromedp.Click(chromedp.ID("signin-submit")))
	if u := location(); u.Path != "/console/accounts/"+d.ooo {
		t.Fatalf("after sign-in: %s", u)
	}
	if ck := eval(`document.cookie`); strings.Contains(ck, CookieName) {
		t.Errorf("the session cookie is readable by scripts (not HttpOnly)")
	}

	// The accounts table and its filters.
	do("accounts", chromedp.Navigate(base+"/console/accounts"))
	if n := eval(`String(document.querySelectorAll("#accounts-table tbody tr[data-account-id]").length)`); n != fmt.Sprint(d.accounts) {
		t.Errorf("%s account rows, want %d", n, d.accounts)
	}
	if n := eval(`document.querySelector('[data-count="inactive"]').textContent`); n != fmt.Sprint(d.inactive) {
		t.Errorf("inactive count %s, want %d", n, d.inactive)
	}
	shot("accounts")
	do("choose inactive", chromedp.SetValue(chromedp.ID("f-status"), "inactive"))
	load("filter", chromedp.Click(chromedp.ID("filter-submit")))
	if u := location(); u.Query().Get("status") != "inactive" {
		t.Errorf("filter URL %s", u)
	}
	got := eval(`Array.from(document.querySelectorAll("#accounts-table tbody tr[data-account-id]")).map(r => r.querySelector("[data-status]").dataset.status).join(",")`)
	if got != strings.TrimSuffix(strings.Repeat("inactive,", d.inactive), ",") {
		t.Errorf("inactive filter shows %q", got)
	}
	do("clear status, prefix", chromedp.SetValue(chromedp.ID("f-status"), ""), chromedp.SetValue(chromedp.ID("f-prefix"), "fca_1Qz"))
	load("filter by prefix", chromedp.Click(chromedp.ID("filter-submit")))
	if got := eval(`Array.from(document.querySelectorAll("#accounts-table tbody tr[data-account-id]")).map(r => r.dataset.accountId).join(",")`); got != d.ooo {
		t.Errorf("prefix filter shows %q", got)
	}

	// The out-of-order account: segments over created time, and as_of.
	do("account", chromedp.Navigate(account))
	h := int64(3600)
	segs := eval(`Array.from(document.querySelectorAll("#timeline rect.seg")).map(r => r.dataset.status + "@" + r.dataset.from).join(" ")`)
	if want := fmt.Sprintf("active@%d inactive@%d active@%d", d.t0, d.t0+30*h, d.t0+50*h); segs != want {
		t.Errorf("timeline segments %q, want %q", segs, want)
	}
	if n := eval(`String(document.querySelectorAll("#timeline .mark-ooo").length)`); n != "2" {
		t.Errorf("%s out-of-order marks, want 2", n)
	}
	if st := eval(`document.getElementById("status-card").dataset.status`); st != "active" {
		t.Errorf("current status %q", st)
	}
	// What changed, for the deactivation, in its <details>.
	row := `tr[data-event-id="` + d.deactivation + `"]`
	if open := eval(`String(document.querySelector('` + row + ` details').open)`); open != "false" {
		t.Errorf("what changed is open before a click")
	}
	do("open what changed", chromedp.Click(chromedp.CSS(row+" details summary")))
	txt, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(row+" details li.chg-changed")))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(txt) != "status: active → inactive" {
		t.Errorf("what changed: %q", txt)
	}
	eval(`document.querySelector("#history .scroll").scrollLeft = 0; ""`) // the click may have scrolled it
	shot("account")
	// Time travel: between the deactivation and the reactivation.
	asOf := time.Unix(d.t0+40*h, 0).UTC().Format(time.RFC3339)
	do("type as_of", chromedp.SendKeys(chromedp.ID("as_of"), asOf))
	load("time travel", chromedp.Click(chromedp.ID("as-of-submit")))
	if u := location(); u.Query().Get("as_of") != asOf {
		t.Errorf("time travel URL %s", u)
	}
	if st := eval(`document.getElementById("status-card").dataset.status`); st != "inactive" {
		t.Errorf("status as of %s: %q, want inactive", asOf, st)
	}
	shot("account-as-of")
	// Before the account existed.
	do("as_of before", chromedp.Navigate(account+"?as_of="+fmt.Sprint(d.t0-1)))
	if st := eval(`document.getElementById("status-card").dataset.status`); st != "none" {
		t.Errorf("status before creation: %q", st)
	}

	// The evidence bundle, downloaded by the browser, verifies against its
	// manifest.
	do("account", chromedp.Navigate(account))
	if txt := eval(`document.getElementById("dl-bundle").textContent`); !strings.Contains(txt, "evidence bundle") {
		t.Errorf("bundle link text %q", txt)
	}
	dl := t.TempDir()
	yes := true
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dl, EventsEnabled: &yes}); err != nil {
		t.Fatal(err)
	}
	progress := chromedp.BrowserEvents(ctx, browser.DownloadProgress)
	do("download the bundle", chromedp.Click(chromedp.ID("dl-bundle")))
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("download: %v", err)
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			t.Fatal("download canceled")
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			break
		}
	}
	zipPath := filepath.Join(dl, "fcaudit-evidence-"+d.ooo+".zip")
	b, err := os.ReadFile(zipPath)
	if err != nil {
		entries, _ := os.ReadDir(dl)
		t.Fatalf("downloaded bundle: %v (directory: %v)", err, entries)
	}
	verifyBundle(t, b, 9)

	// Printed, the account page is a record: no navigation, forms or
	// downloads; the status card, timeline and history stay.
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: "print"}); err != nil {
		t.Fatal(err)
	}
	display := func(sel string) string {
		return eval(`getComputedStyle(document.querySelector(` + strconv.Quote(sel) + `)).display`)
	}
	for _, sel := range []string{".top nav", "form.signout", "form.tt", ".downloads"} {
		if d := display(sel); d != "none" {
			t.Errorf("printed, %s is shown (%s)", sel, d)
		}
	}
	for _, sel := range []string{"#status-card", "#timeline", "#history-table"} {
		if d := display(sel); d == "none" {
			t.Errorf("printed, %s is hidden", sel)
		}
	}
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{}); err != nil {
		t.Fatal(err)
	}

	// Event, replays, system pages render (and make screenshots).
	do("event", chromedp.Navigate(base+"/console/events/"+d.deactivation))
	if p := eval(`document.getElementById("payload").textContent`); !strings.Contains(p, `"status": "inactive"`) {
		t.Errorf("event payload not shown")
	}
	shot("event")
	do("replays", chromedp.Navigate(base+"/console/replays"))
	if got := eval(`Array.from(document.querySelectorAll("#replays-table tbody tr[data-run-id]")).map(r => r.dataset.runId).join(",")`); got != "replay_5f0c1a2b3c4d5e6f7a8b9c0d" {
		t.Errorf("replay runs listed: %q", got)
	}
	shot("replays")
	do("system", chromedp.Navigate(base+"/console/system"))
	if head := eval(`document.getElementById("sys-head").textContent`); head == "" || strings.Trim(head, "0123456789") != "" {
		t.Errorf("system page log head %q", head)
	}
	shot("system")

	// Sign out ends the session.
	if txt := eval(`document.querySelector("form.signout button").textContent`); txt != "Sign out" {
		t.Errorf("sign-out control reads %q", txt)
	}
	load("sign out", chromedp.Click(chromedp.CSS("form.signout button")))
	if u := location(); u.Path != "/console/signin" {
		t.Errorf("after sign-out: %s", u)
	}
	do("accounts after sign-out", chromedp.Navigate(base+"/console/accounts"))
	if u := location(); u.Path != "/console/signin" {
		t.Errorf("accounts after sign-out: %s", u)
	}
}
