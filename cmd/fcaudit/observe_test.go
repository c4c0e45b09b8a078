package main

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/fcevents"
)

// TestOperatorLogAndMetrics: at the default log level, serve writes one
// access-log line per webhook with its outcome and error type (a wrong
// signing secret is visible at once) and never the body or a secret; the
// request metrics count every route, 401s included, under a route label.
func TestOperatorLogAndMetrics(t *testing.T) {
	const (
		secret = "whsec_operator_0000000000000000"
		wrong  = "whsec_wrong_secret_99999999999"
		token  = "tok_operator"
	)
	dir := t.TempDir()
	var logBuf syncBuffer
	base := startServeLog(t, dir, &logBuf, "--webhook-secret", secret, "--api-token", token, "--log-format", "json")

	g := &fcevents.Generator{}
	body := g.Event(fc.TypeCreated, "fca_operator000000000000000", time.Now().Unix())
	hdr := func(s string) map[string]string {
		return map[string]string{"Stripe-Signature": fcevents.Sign(body, s, time.Now()), "Content-Type": "application/json"}
	}
	if code, b := call(t, "POST", base+"/webhooks/stripe", "", body, hdr(wrong)); code != 400 {
		t.Fatalf("wrong secret: %d %s", code, b)
	}
	if code, b := call(t, "POST", base+"/webhooks/stripe", "", body, hdr(secret)); code != 200 {
		t.Fatalf("webhook: %d %s", code, b)
	}
	if code, b := call(t, "POST", base+"/webhooks/stripe", "", body, hdr(secret)); code != 200 {
		t.Fatalf("redelivery: %d %s", code, b)
	}
	env, _ := fc.ParseEnvelope(body)

	// Every route once; /v1/accounts also without a token (401).
	routes := map[string]string{
		"/healthz": "healthz", "/readyz": "readyz",
		"/v1/events": "list_events", "/v1/events/" + env.ID: "get_event", "/v1/events/" + env.ID + "/body": "get_event_body",
		"/v1/accounts": "list_accounts", "/v1/accounts/fca_operator000000000000000": "get_account",
		"/v1/accounts/fca_operator000000000000000/events": "account_events",
		"/v1/accounts/fca_operator000000000000000/verify": "verify_account",
		"/v1/replays": "list_replays", "/v1/replays/run_nope": "get_replay", "/no/such/route": "unmatched",
	}
	for path := range routes {
		call(t, "GET", base+path, token, nil, nil)
	}
	if code, _ := call(t, "GET", base+"/v1/accounts", "", nil, nil); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	_, metrics := call(t, "GET", base+"/metrics", "", nil, nil)
	for _, label := range routes {
		if !strings.Contains(string(metrics), `fcaudit_http_requests_total{route="`+label+`"`) {
			t.Errorf("no request metrics for route %s", label)
		}
	}
	if !strings.Contains(string(metrics), `fcaudit_http_requests_total{route="list_accounts",status="401"} 1`) {
		t.Errorf("the 401 is not counted under list_accounts")
	}

	// The access log: three lines, INFO, outcome and error type.
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logBuf.String()))
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == "webhook" {
			lines = append(lines, rec)
		}
	}
	want := []struct{ outcome, errType string }{{"rejected", "signature_invalid"}, {"stored", ""}, {"duplicate", ""}}
	if len(lines) != len(want) {
		t.Fatalf("%d webhook log lines, want %d; log:\n%s", len(lines), len(want), logBuf.String())
	}
	for i, w := range want {
		et, _ := lines[i]["error_type"].(string)
		if lines[i]["level"] != "INFO" || lines[i]["outcome"] != w.outcome || et != w.errType {
			t.Errorf("webhook line %d: %v; want INFO outcome=%s error_type=%q", i, lines[i], w.outcome, w.errType)
		}
	}
	if lines[1]["event_id"] != env.ID {
		t.Errorf("stored line has no event id: %v", lines[1])
	}
	all := logBuf.String()
	for _, leak := range []string{secret, wrong, token, "StripeBank", "v1="} {
		if strings.Contains(all, leak) {
			t.Errorf("the log holds %q (a secret, token, body or signature)", leak)
		}
	}
}
