package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/fcevents"
)

// TestAccountsShowAndHistory runs `accounts show` and `accounts history`
// against the store of a running serve, on a history whose last arrival is
// older than the snapshot (out of order), and checks the answers against
// the API's for the same questions.
func TestAccountsShowAndHistory(t *testing.T) {
	const (
		secret  = "whsec_accounts_cli_000000000000"
		token   = "tok_accounts_cli"
		account = "fca_accountsCli000000000000"
	)
	dir := t.TempDir()
	base := startServe(t, dir, "--webhook-secret", secret, "--api-token", token)

	g := &fcevents.Generator{}
	t0 := time.Now().Unix() - 1000
	for _, e := range []struct {
		typ     string
		created int64
	}{{fc.TypeCreated, t0}, {fc.TypeDeactivated, t0 + 200}, {fc.TypeRefreshedBalance, t0 + 100}} {
		body := g.Event(e.typ, account, e.created)
		code, resp := call(t, "POST", base+"/webhooks/stripe", "", body,
			map[string]string{"Stripe-Signature": fcevents.Sign(body, secret, time.Now()), "Content-Type": "application/json"})
		if code != 200 {
			t.Fatalf("webhook %s: %d %s", e.typ, code, resp)
		}
	}
	// The API's current status comes from the read model: wait until it
	// has applied all three events (a bounded poll on the condition).
	for deadline := time.Now().Add(20 * time.Second); ; {
		code, body := call(t, "GET", base+"/v1/accounts/"+account, token, nil, nil)
		if code == 200 && strings.Contains(string(body), `"events_count":3`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("read model never reached 3 events: %d %s", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx := context.Background()
	show := func(extra ...string) (int, string, string) {
		return runCmd(t, ctx, append([]string{"accounts", "show", account, "--data-dir", dir}, extra...)...)
	}

	code, out, errOut := show()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || !strings.HasSuffix(lines[1], "inactive") {
		t.Fatalf("accounts show: exit %d, %q %q; want a table whose last line ends with the status", code, out, errOut)
	}

	// The same fold as the API: compare the JSON objects.
	for _, q := range []struct{ flag, param string }{
		{"", ""},
		{"--as-of=" + time.Unix(t0+150, 0).UTC().Format(time.RFC3339), "as_of=" + time.Unix(t0+150, 0).UTC().Format(time.RFC3339)},
		{"--known-at=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "known_at=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339)},
	} {
		args := []string{"--json"}
		if q.flag != "" {
			args = append(args, q.flag)
		}
		code, out, errOut := show(args...)
		if code != 0 {
			t.Fatalf("show %v: %d %s", args, code, errOut)
		}
		httpCode, body := call(t, "GET", base+"/v1/accounts/"+account+"?"+q.param, token, nil, nil)
		if httpCode != 200 {
			t.Fatalf("api %s: %d %s", q.param, httpCode, body)
		}
		var cli, api map[string]any
		if err := json.Unmarshal([]byte(out), &cli); err != nil {
			t.Fatalf("show %v: %v: %s", args, err, out)
		}
		_ = json.Unmarshal(body, &api)
		cj, _ := json.Marshal(cli)
		aj, _ := json.Marshal(api)
		if string(cj) != string(aj) {
			t.Errorf("show %v differs from the API (%s):\ncli %s\napi %s", args, q.param, cj, aj)
		}
	}
	if _, out, _ := show("--json", "--as-of", time.Unix(t0+150, 0).UTC().Format(time.RFC3339)); !strings.Contains(out, `"status": "active"`) {
		t.Errorf("--as-of before the deactivation: %s", out)
	}

	code, out, errOut = runCmd(t, ctx, "accounts", "history", account, "--data-dir", dir)
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 || !strings.Contains(lines[3], "refreshed_balance") || !strings.Contains(lines[3], "no (older)") ||
		!strings.HasSuffix(lines[3], "inactive") {
		t.Fatalf("accounts history: exit %d %q %q", code, out, errOut)
	}
	code, out, _ = runCmd(t, ctx, "accounts", "history", account, "--data-dir", dir, "--json")
	var tl []struct {
		Type        string `json:"type"`
		Snapshot    bool   `json:"snapshot"`
		StatusAfter struct {
			Status string `json:"status"`
		} `json:"status_after"`
	}
	if err := json.Unmarshal([]byte(out), &tl); code != 0 || err != nil || len(tl) != 3 || tl[1].StatusAfter.Status != "inactive" || tl[2].Snapshot {
		t.Fatalf("history --json: exit %d %v %s", code, err, out)
	}

	// Failures and usage errors.
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"accounts", "show", "fca_nobody", "--data-dir", dir}, exitFailure, `no event for account "fca_nobody"`},
		{[]string{"accounts", "history", "fca_nobody", "--data-dir", dir}, exitFailure, `no stored events for account "fca_nobody"`},
		{[]string{"accounts", "show", account, "--data-dir", dir, "--as-of", "1970-01-01T00:00:00Z"}, exitFailure, "at that time"},
		{[]string{"accounts", "show", account, "--data-dir", dir, "--known-at", "0001-01-01T00:00:00Z"}, exitFailure, "at that time"},
		{[]string{"accounts", "show", "--data-dir", dir}, exitUsage, "missing argument ID"},
		{[]string{"accounts", "show", account, "--data-dir", dir, "--as-of", "yesterday"}, exitUsage, "--as-of"},
		{[]string{"accounts", "show", account, "--data-dir", dir, "--as-of", "1", "--known-at", "2"}, exitUsage, "as-of"},
		{[]string{"accounts", "list"}, exitUsage, `unknown command "list"`},
	} {
		code, _, errOut := runCmd(t, ctx, tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d %q; want %d mentioning %q", tt.args, code, errOut, tt.code, tt.want)
		}
	}
}

// TestTriggerStagesHistory: trigger's --created, --event-id, --status,
// --institution and --livemode stage an out-of-order and redelivered
// history that the store and the fold then show as such.
func TestTriggerStagesHistory(t *testing.T) {
	dir := t.TempDir()
	startServe(t, dir, "--dev")
	ctx := context.Background()
	const account = "fca_staged000000000000000000"
	t0 := time.Now().Unix() - 3600
	trigger := func(args ...string) (int, string, string) {
		return runCmd(t, ctx, append([]string{"trigger", "--data-dir", dir, "--account", account}, args...)...)
	}
	ts := func(s int64) string { return time.Unix(s, 0).UTC().Format(time.RFC3339) }

	code, out, errOut := trigger("created", "--created", ts(t0), "--event-id", "evt_stagedFirst0000000000000")
	if code != 0 || !strings.Contains(out, `"duplicate":false`) {
		t.Fatalf("trigger created: %d %s %s", code, out, errOut)
	}
	if code, out, errOut = trigger("deactivated", "--created", ts(t0+100), "--institution", "Test Credit Union", "--livemode", "--status", "disconnected"); code != 0 {
		t.Fatalf("trigger deactivated: %d %s %s", code, out, errOut)
	}
	if code, out, errOut = trigger("refreshed_balance", "--created", ts(t0+50)); code != 0 {
		t.Fatalf("trigger late refreshed_balance: %d %s %s", code, out, errOut)
	}
	code, out, errOut = trigger("created", "--created", ts(t0), "--event-id", "evt_stagedFirst0000000000000")
	if code != 0 || !strings.Contains(out, `"duplicate":true`) {
		t.Fatalf("redelivery: %d %s %s", code, out, errOut)
	}

	code, out, errOut = runCmd(t, ctx, "accounts", "show", account, "--data-dir", dir, "--json")
	var s struct {
		Status          string `json:"status"`
		InstitutionName string `json:"institution_name"`
		Livemode        bool   `json:"livemode"`
		EventsCount     int    `json:"events_count"`
		FirstSeenAt     int64  `json:"first_seen_at"`
	}
	if err := json.Unmarshal([]byte(out), &s); code != 0 || err != nil {
		t.Fatalf("accounts show: %d %v %s %s", code, err, out, errOut)
	}
	if s.Status != "disconnected" || s.InstitutionName != "Test Credit Union" || !s.Livemode || s.EventsCount != 3 || s.FirstSeenAt != t0 {
		t.Fatalf("staged history folded to %+v", s)
	}
	code, out, _ = runCmd(t, ctx, "accounts", "history", account, "--data-dir", dir)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 4 || !strings.Contains(lines[3], "no (older)") {
		t.Fatalf("history: %d %s", code, out)
	}

	for _, tt := range []struct{ args []string }{
		{[]string{"created", "--created", "last tuesday"}},
		{[]string{"created", "--event-id", "fca_notAnEvent"}},
	} {
		if code, _, errOut := trigger(tt.args...); code != exitUsage || !strings.Contains(errOut, "--"+strings.TrimPrefix(tt.args[1], "--")) {
			t.Errorf("trigger %v: exit %d %q; want 2 naming the flag", tt.args, code, errOut)
		}
	}
}
