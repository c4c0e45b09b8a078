package main

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/backfill/backfilltest"
	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/fcevents"
)

const backfillKey = "sk_test_cmd_backfill"

// fakeEvents serves n recent events of one account from a fake Events API.
func fakeEvents(t *testing.T, account string, n int) (*backfilltest.Server, []string) {
	t.Helper()
	srv := backfilltest.New(t, backfillKey)
	g := &fcevents.Generator{Rand: rand.New(rand.NewPCG(3, uint64(n)))}
	base := time.Now().Add(-48 * time.Hour).Unix()
	var ids []string
	for i := range n {
		body := g.Event(fc.Types()[i%len(fc.Types())], account, base+int64(i)*60)
		env, err := fc.ParseEnvelope(body)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, env.ID)
		srv.Add(body)
	}
	return srv, ids
}

func TestBackfillCommand(t *testing.T) {
	t.Setenv("STRIPE_API_KEY", "")
	dir := t.TempDir()
	srv, ids := fakeEvents(t, "fca_cmdbackfill1", 5)
	ctx := context.Background()

	code, out, errOut := runCmd(t, ctx, "backfill", "--data-dir", dir, "--stripe-key", backfillKey, "--api-base", srv.URL, "--dry-run")
	if code != 0 {
		t.Fatalf("dry run: exit %d: %s", code, errOut)
	}
	for _, id := range ids {
		if !strings.Contains(out, id) {
			t.Errorf("dry run report lacks %s:\n%s", id, out)
		}
	}
	if !strings.HasSuffix(out, "fetched 5, already stored 0, appended 0 (dry run: 5 missing)\n") || !strings.Contains(out, "fca_cmdbackfill1 (5)") {
		t.Errorf("dry run report:\n%s", out)
	}
	// Default --since is 30 days back.
	if gte, _ := strconv.ParseInt(srv.Requests()[0].CreatedGTE, 10, 64); time.Since(time.Unix(gte, 0)).Round(time.Hour) != 30*24*time.Hour {
		t.Errorf("created[gte]=%d, want 30 days ago", gte)
	}

	// The key from the environment; a real run.
	t.Setenv("STRIPE_API_KEY", backfillKey)
	code, out, errOut = runCmd(t, ctx, "backfill", "--data-dir", dir, "--api-base", srv.URL, "--since", "72h")
	if code != 0 || !strings.HasSuffix(out, "fetched 5, already stored 0, appended 5\n") {
		t.Fatalf("backfill: exit %d\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, backfillKey) {
		t.Errorf("output shows the key:\n%s%s", out, errOut)
	}
	code, out, _ = runCmd(t, ctx, "backfill", "--data-dir", dir, "--api-base", srv.URL)
	if code != 0 || !strings.HasSuffix(out, "fetched 5, already stored 5, appended 0\n") || !strings.HasPrefix(out, "no gaps") {
		t.Errorf("rerun: exit %d\n%s", code, out)
	}
	// Connect: the connected account goes out as the Stripe-Account header.
	code, out, _ = runCmd(t, ctx, "backfill", "--data-dir", dir, "--api-base", srv.URL, "--stripe-account", "acct_1CmdConnected00", "--dry-run")
	reqs := srv.Requests()
	if code != 0 || len(reqs) == 0 || reqs[len(reqs)-1].StripeAccount != "acct_1CmdConnected00" {
		t.Errorf("--stripe-account: exit %d, last request's Stripe-Account %q\n%s", code, reqs[len(reqs)-1].StripeAccount, out)
	}
}

func TestBackfillCommandErrors(t *testing.T) {
	t.Setenv("STRIPE_API_KEY", "")
	dir := t.TempDir()
	srv, _ := fakeEvents(t, "fca_cmdbackfill2", 3)
	closed := "http://" + freePort(t)
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no key", []string{}, exitUsage, []string{"--stripe-key", "STRIPE_API_KEY"}},
		{"bad since", []string{"--stripe-key", backfillKey, "--since", "last tuesday"}, exitUsage, []string{"--since:"}},
		{"future since", []string{"--stripe-key", backfillKey, "--since", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)}, exitUsage, []string{"--since:", "future"}},
		{"negative retries", []string{"--stripe-key", backfillKey, "--max-retries", "-1"}, exitUsage, []string{"--max-retries:"}},
		{"bad api base", []string{"--stripe-key", backfillKey, "--api-base", "localhost:12111"}, exitUsage, []string{"--api-base:", "not an http(s) URL"}},
		{"bad stripe account", []string{"--stripe-key", backfillKey, "--stripe-account", "fca_notAnAccount"}, exitUsage, []string{"--stripe-account:", "not a Stripe account id"}},
		{"key rejected", []string{"--stripe-key", "sk_test_wrong", "--api-base", srv.URL}, exitFailure,
			[]string{"Stripe rejected the API key (HTTP 401", "nothing was appended"}},
		{"unreachable", []string{"--stripe-key", backfillKey, "--api-base", closed, "--max-retries", "0"}, exitFailure,
			[]string{"cannot reach the Stripe API at " + closed, "nothing was appended"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"backfill", "--data-dir", dir}, tt.args...)
			code, out, errOut := runCmd(t, context.Background(), args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q lacks %q", errOut, w)
				}
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
		})
	}
}

func TestBackfillHelpHidesKey(t *testing.T) {
	t.Setenv("STRIPE_API_KEY", "sk_live_do_not_print")
	code, out, _ := runCmd(t, context.Background(), "backfill", "--help")
	if code != 0 || strings.Contains(out, "sk_live_do_not_print") || !strings.Contains(out, "--stripe-key") {
		t.Errorf("backfill --help: exit %d\n%s", code, out)
	}
}

// TestBackfillWhileServing: backfill appends to the store serve has open,
// and serve's projection picks the events up.
func TestBackfillWhileServing(t *testing.T) {
	dir := t.TempDir()
	addr := strings.TrimPrefix(startServe(t, dir, "--dev"), "http://")
	dc, err := loadDevConfig(dir)
	if err != nil {
		t.Fatal(err)
	}

	const account = "fca_cmdbackfill3"
	srv, _ := fakeEvents(t, account, 4)
	code, out, errOut := runCmd(t, context.Background(), "backfill", "--data-dir", dir, "--stripe-key", backfillKey, "--api-base", srv.URL)
	if code != 0 || !strings.HasSuffix(out, "appended 4\n") {
		t.Fatalf("backfill while serving: exit %d\n%s\n%s", code, out, errOut)
	}

	// Bounded polling: serve's projection follows the log by polling.
	var last string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/v1/accounts/"+account, nil)
		req.Header.Set("Authorization", "Bearer "+dc.APIToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = strconv.Itoa(resp.StatusCode) + " " + string(body)
		var st struct {
			EventsCount int `json:"events_count"`
		}
		if resp.StatusCode == 200 && json.Unmarshal(body, &st) == nil && st.EventsCount == 4 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("serve's account status never counted the 4 backfilled events; last answer: %s", last)
}

// TestServeReconcileEvery: serve --reconcile-every runs a backfill at once
// and reports it at GET /v1/reconciliation and in /metrics.
func TestServeReconcileEvery(t *testing.T) {
	const account = "fca_cmdreconcile1"
	srv, ids := fakeEvents(t, account, 3)
	t.Setenv("STRIPE_API_KEY", backfillKey)
	t.Setenv("STRIPE_API_BASE", srv.URL)
	dir := t.TempDir()
	addr := strings.TrimPrefix(startServe(t, dir, "--dev", "--reconcile-every", "6h"), "http://")
	dc, err := loadDevConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string, auth bool) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		if auth {
			req.Header.Set("Authorization", "Bearer "+dc.APIToken)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/v1/reconciliation", false); code != http.StatusUnauthorized {
		t.Errorf("/v1/reconciliation without a token: %d, want 401", code)
	}
	var st struct {
		Object   string `json:"object"`
		Interval string `json:"interval"`
		LastRun  *struct {
			OK       bool `json:"ok"`
			Fetched  int  `json:"fetched"`
			Appended int  `json:"appended"`
			Gaps     []struct {
				ID       string `json:"id"`
				Account  string `json:"account"`
				Appended bool   `json:"appended"`
			} `json:"gaps"`
		} `json:"last_run"`
	}
	var last string
	deadline := time.Now().Add(20 * time.Second)
	for st.LastRun == nil && time.Now().Before(deadline) {
		var code int
		code, last = get("/v1/reconciliation", true)
		if code != 200 || json.Unmarshal([]byte(last), &st) != nil {
			t.Fatalf("/v1/reconciliation: %d %s", code, last)
		}
		if st.LastRun == nil {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if st.LastRun == nil || !st.LastRun.OK || st.LastRun.Fetched != 3 || st.LastRun.Appended != 3 ||
		len(st.LastRun.Gaps) != 3 || st.Object != "reconciliation" || st.Interval != "6h0m0s" {
		t.Fatalf("reconciliation status: %s", last)
	}
	for i, g := range st.LastRun.Gaps {
		if g.ID != ids[i] || g.Account != account || !g.Appended {
			t.Errorf("gap %d = %+v, want %s appended", i, g, ids[i])
		}
	}
	_, metricsText := get("/metrics", false)
	for _, want := range []string{`fcaudit_reconciliation_last_run_events{result="appended"} 3`, "fcaudit_reconciliation_last_run_success 1"} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestServeReconcileEveryNeedsKey(t *testing.T) {
	t.Setenv("STRIPE_API_KEY", "")
	code, _, errOut := runCmd(t, context.Background(), "serve", "--dev", "--data-dir", t.TempDir(), "--listen", freePort(t), "--reconcile-every", "6h")
	if code != exitUsage || !strings.Contains(errOut, "STRIPE_API_KEY") {
		t.Errorf("exit %d, stderr %q; want 2 naming STRIPE_API_KEY", code, errOut)
	}
	code, _, errOut = runCmd(t, context.Background(), "serve", "--dev", "--data-dir", t.TempDir(), "--listen", freePort(t), "--reconcile-every", "1s")
	if code != exitUsage || !strings.Contains(errOut, "--reconcile-every:") {
		t.Errorf("exit %d, stderr %q; want 2 naming --reconcile-every", code, errOut)
	}
}
