package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
)

// TestSecretsNotLogged runs serve at debug level with JSON logs, sends good
// and bad webhooks and /v1 requests with good and bad tokens, and checks that
// no secret, token or rejected credential appears anywhere in its stderr.
func TestSecretsNotLogged(t *testing.T) {
	const (
		wrongSecret = "whsec_e2e_wrong_3c9a71d0b2"
		badToken    = "tok_e2e_bad_77f1e0c4a9"
	)
	srv := startServe(t, serveConfig{dataDir: t.TempDir(), extra: []string{"--log-level", "debug"}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newClient(1)

	good := newEvent(fc.TypeCreated, "")
	for _, tc := range []struct {
		name   string
		secret string
		want   int
	}{
		{"good signature", testSecret, http.StatusOK},
		{"redelivery", testSecret, http.StatusOK},
		{"wrong secret", wrongSecret, http.StatusBadRequest},
	} {
		if code, a, err := postWebhook(ctx, c, srv.url, good.body, tc.secret); err != nil || code != tc.want {
			t.Fatalf("%s: %d %+v %v, want %d", tc.name, code, a, err, tc.want)
		}
	}
	// A signature header carrying a secret (a confused sender) is rejected
	// and must not be echoed into the logs either.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.url+"/webhooks/stripe", bytes.NewReader(good.body))
	req.Header.Set("Stripe-Signature", "t=1,v1="+testSecret)
	if code, _, err := doJSON(c, req); err != nil || code != http.StatusBadRequest {
		t.Fatalf("secret as signature: %d %v", code, err)
	}

	for _, tc := range []struct {
		name, auth, path string
		want             int
	}{
		{"good token", "Bearer " + testToken, "/v1/events", http.StatusOK},
		{"good token, missing event", "Bearer " + testToken, "/v1/events/evt_missing", http.StatusNotFound},
		{"bad token", "Bearer " + badToken, "/v1/events", http.StatusUnauthorized},
		{"secret as token", "Bearer " + testSecret, "/v1/events", http.StatusUnauthorized},
		{"token without Bearer", testToken, "/v1/events", http.StatusUnauthorized},
		{"basic auth", "Basic " + badToken, "/v1/events", http.StatusUnauthorized},
		{"token in the query", "", "/v1/events?api_token=" + badToken, http.StatusUnauthorized},
	} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.url+tc.path, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		if code, _, err := doJSON(c, req); err != nil || code != tc.want {
			t.Fatalf("%s: %d %v, want %d", tc.name, code, err, tc.want)
		}
	}

	// Stop it so every log record is flushed.
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := srv.exitCode(30 * time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM", code)
	}
	logs := srv.stderr.String()

	// The test must be able to see a leak: debug records of the requests
	// have to be there.
	var debug int
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec struct {
			Level string `json:"level"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line is not JSON: %q", line)
		}
		if rec.Level == "DEBUG" {
			debug++
		}
	}
	if debug == 0 {
		t.Fatalf("no debug records with --log-level debug; stderr:\n%s", logs)
	}
	t.Logf("%d debug records checked", debug)
	for name, s := range map[string]string{
		"webhook secret": testSecret, "API token": testToken,
		"wrong secret": wrongSecret, "rejected token": badToken,
	} {
		if strings.Contains(logs, s) {
			t.Errorf("the %s appears in the logs:\n%s", name, logs)
		}
	}
}
