package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/fcaudit/fcaudit/api"
	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/internal/record"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

const (
	secret  = "whsec_test_api"
	token   = "tok_test_api"
	account = "fca_1OeXkQ2eZvKYlo2CqT7hN3aB"
)

type env struct {
	t     *testing.T
	store *sqlite.Store
	srv   *httptest.Server
}

func newEnv(t *testing.T, tokens ...string) *env {
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
	if tokens == nil {
		tokens = []string{token}
	}
	srv := newServer(t, api.Config{
		Store:  st,
		Ingest: ingest.NewService(v, st, ingest.ServiceOptions{}),
		Tokens: tokens,
		Ready:  st.Ping,
	})
	return &env{t: t, store: st, srv: srv}
}

func fixtures(t *testing.T) [][]byte {
	t.Helper()
	paths, err := filepath.Glob("../testdata/stripe/0*.json")
	if err != nil || len(paths) != 7 {
		t.Fatalf("fixtures: %v (%d files)", err, len(paths))
	}
	sort.Strings(paths)
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func sign(body []byte, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: at}).Header
}

func (e *env) post(body []byte, header string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/webhooks/stripe", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if header != "" {
		req.Header.Set("Stripe-Signature", header)
	}
	return e.do(req)
}

func (e *env) get(path string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	return e.do(req)
}

func (e *env) do(req *http.Request) (int, map[string]any) {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		e.t.Fatalf("%s %s: Content-Type %q, body %s", req.Method, req.URL.Path, ct, b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		e.t.Fatalf("%s %s: body is not JSON: %s", req.Method, req.URL.Path, b)
	}
	return resp.StatusCode, m
}

func errType(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["type"].(string)
	return s
}

func (e *env) ingestAll(t *testing.T, bodies [][]byte) {
	for i, b := range bodies {
		if code, m := e.post(b, sign(b, time.Now())); code != 200 {
			t.Fatalf("fixture %d: status %d %v", i, code, m)
		}
	}
}

func TestWebhook(t *testing.T) {
	e := newEnv(t)
	body := fixtures(t)[0]
	code, m := e.post(body, sign(body, time.Now()))
	if code != 200 {
		t.Fatalf("status %d: %v", code, m)
	}
	want := map[string]any{"id": "evt_1OeXkR2eZvKYlo2C4nS0pGxA", "stream": "fcaccount-" + account,
		"revision": float64(0), "position": float64(1), "duplicate": false}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	// A redelivery (new signature, same event) is acknowledged with the
	// original coordinates and stores nothing.
	code, m2 := e.post(body, sign(body, time.Now()))
	if code != 200 || m2["duplicate"] != true || m2["position"] != m["position"] || m2["revision"] != m["revision"] {
		t.Fatalf("redelivery: %d %v", code, m2)
	}
	if head, _ := e.store.Head(context.Background()); head != 1 {
		t.Fatalf("head after duplicate = %d, want 1", head)
	}
	// The stored body is the exact bytes that were signed.
	resp, err := http.Get(e.srv.URL + "/v1/events/evt_1OeXkR2eZvKYlo2C4nS0pGxA/body")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("body without token: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/events/evt_1OeXkR2eZvKYlo2C4nS0pGxA/body", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, body) {
		t.Fatalf("stored body differs from the delivered one:\n%s", got)
	}
}

func TestWebhookErrors(t *testing.T) {
	e := newEnv(t)
	body := fixtures(t)[1]
	big := append([]byte(`{"pad":"`), bytes.Repeat([]byte("x"), api.DefaultMaxBodyBytes)...)
	big = append(big, `"}`...)
	notEvent := []byte(`{"object":"customer","id":"cus_1"}`)
	tests := []struct {
		name   string
		body   []byte
		header string
		ctype  string
		status int
		typ    string
	}{
		{"no header", body, "", "application/json", 400, api.TypeSignatureInvalid},
		{"garbled header", body, "garbage", "application/json", 400, api.TypeSignatureInvalid},
		{"wrong secret", body, webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: "whsec_other"}).Header, "application/json", 400, api.TypeSignatureInvalid},
		{"stale", body, sign(body, time.Now().Add(-time.Hour)), "application/json", 400, api.TypeTimestampOutside},
		{"future", body, sign(body, time.Now().Add(time.Hour)), "application/json", 400, api.TypeTimestampOutside},
		{"not an event", notEvent, sign(notEvent, time.Now()), "application/json", 400, api.TypePayloadInvalid},
		{"too large", big, sign(big, time.Now()), "application/json", 413, api.TypePayloadTooLarge},
		{"wrong content type", body, sign(body, time.Now()), "text/plain", 415, api.TypeUnsupportedMediaType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/webhooks/stripe", bytes.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.ctype)
			if tt.header != "" {
				req.Header.Set("Stripe-Signature", tt.header)
			}
			code, m := e.do(req)
			if code != tt.status || errType(m) != tt.typ {
				t.Fatalf("got %d %v, want %d %s", code, m, tt.status, tt.typ)
			}
			if msg, _ := m["error"].(map[string]any)["message"].(string); msg == "" || strings.Contains(msg, secret) {
				t.Fatalf("message %q is empty or leaks the secret", msg)
			}
		})
	}
	if head, _ := e.store.Head(context.Background()); head != 0 {
		t.Fatalf("rejected deliveries stored %d events", head)
	}
	for _, mp := range []string{"GET /webhooks/stripe", "POST /v1/events", "DELETE /v1/events/evt_1", "PUT /v1/accounts/fca_1/events"} {
		method, path, _ := strings.Cut(mp, " ")
		req, _ := http.NewRequest(method, e.srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if code, m := e.do(req); code != 405 || errType(m) != api.TypeMethodNotAllowed {
			t.Errorf("%s: %d %v, want 405", mp, code, m)
		}
	}
}

func TestWebhookStoreUnavailable(t *testing.T) {
	e := newEnv(t)
	body := fixtures(t)[0]
	e.store.Close() // a closed log can't take writes: the answer must make Stripe retry
	code, m := e.post(body, sign(body, time.Now()))
	if code != 503 || errType(m) != api.TypeStoreUnavailable {
		t.Fatalf("got %d %v, want 503 store_unavailable", code, m)
	}
	resp, err := http.Get(e.srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("/readyz with a closed store: %d", resp.StatusCode)
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	for _, h := range []string{"", "Bearer", "Bearer wrong", "Basic " + token, "bearer " + token, "Bearer " + token + "x"} {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/v1/events", nil)
		if h != "" {
			req.Header.Set("Authorization", h)
		}
		if code, m := e.do(req); code != 401 || errType(m) != api.TypeUnauthorized {
			t.Errorf("Authorization %q: %d %v", h, code, m)
		}
	}
	if code, _ := e.get("/v1/events"); code != 200 {
		t.Fatalf("valid token: %d", code)
	}
	// No token configured: every /v1 request is refused.
	open := newEnv(t, []string{}...)
	open2 := newEnv(t, "")
	for _, x := range []*env{open, open2} {
		if code, _ := x.get("/v1/events"); code != 401 {
			t.Fatalf("no tokens configured: %d", code)
		}
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(e.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
}

func ids(m map[string]any) []string {
	var out []string
	data, _ := m["data"].([]any)
	for _, d := range data {
		out = append(out, d.(map[string]any)["id"].(string))
	}
	return out
}

func TestEventQueries(t *testing.T) {
	e := newEnv(t)
	bodies := fixtures(t)
	e.ingestAll(t, bodies)
	var all []string
	for _, b := range bodies {
		var ev struct{ ID string }
		json.Unmarshal(b, &ev)
		all = append(all, ev.ID)
	}

	// Pagination over the global log walks every event once, in order.
	var walked []string
	after := ""
	for page := 0; page < 10; page++ {
		path := "/v1/events?limit=3"
		if after != "" {
			path += "&starting_after=" + after
		}
		code, m := e.get(path)
		if code != 200 || m["object"] != "list" || m["url"] != "/v1/events" {
			t.Fatalf("%s: %d %v", path, code, m)
		}
		got := ids(m)
		walked = append(walked, got...)
		if m["has_more"] != (len(walked) < len(all)) {
			t.Fatalf("%s: has_more = %v after %d events", path, m["has_more"], len(walked))
		}
		if m["has_more"] == false {
			break
		}
		after = got[len(got)-1]
	}
	if fmt.Sprint(walked) != fmt.Sprint(all) {
		t.Fatalf("walked %v, want %v", walked, all)
	}

	tests := []struct {
		path string
		want []string
	}{
		{"/v1/events?after_position=5", all[5:]},
		{"/v1/events?type=financial_connections.account.refreshed_*", all[1:4]},
		{"/v1/events?type=financial_connections.account.created,financial_connections.account.disconnected", []string{all[0], all[6]}},
		{"/v1/events?since=1705312915&until=2024-01-15T10:02:20Z", all[1:3]},
		{"/v1/accounts/" + account + "/events?limit=100", all},
		{"/v1/accounts/" + account + "/events?starting_after=" + all[4], all[5:]},
		{"/v1/accounts/" + account + "/events?type=*deactivated", all[4:5]},
	}
	for _, tt := range tests {
		code, m := e.get(tt.path)
		if code != 200 || fmt.Sprint(ids(m)) != fmt.Sprint(tt.want) {
			t.Errorf("%s: %d %v, want %v", tt.path, code, ids(m), tt.want)
		}
	}

	code, m := e.get("/v1/events/" + all[1])
	if code != 200 {
		t.Fatalf("get event: %d %v", code, m)
	}
	raw, _ := json.Marshal(m)
	var rec record.Record
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Type != fc.TypeRefreshedBalance || rec.Revision != 1 || rec.Position != 2 ||
		rec.Account == nil || *rec.Account != account || rec.Source != "webhook" || rec.Created != 1705312915 ||
		rec.APIVersion != "2023-10-16" || rec.ConnectAccount != nil || len(rec.BodySHA256) != 64 || len(rec.ChainHash) != 64 ||
		rec.Provenance == nil || rec.Provenance.SecretFingerprint != ingest.Fingerprint(secret) || rec.Provenance.SignedAt == 0 {
		t.Fatalf("record: %+v", rec)
	}
	var payload, fixture map[string]any
	json.Unmarshal(rec.Payload, &payload)
	json.Unmarshal(bodies[1], &fixture)
	if fmt.Sprint(payload) != fmt.Sprint(fixture) {
		t.Fatal("payload differs from the delivered event")
	}

	errTests := []struct {
		path   string
		status int
		param  string
	}{
		{"/v1/events/evt_missing", 404, ""},
		{"/v1/accounts/fca_missing/events", 404, ""},
		{"/v1/events?limit=0", 400, "limit"},
		{"/v1/events?limit=101", 400, "limit"},
		{"/v1/events?limit=abc", 400, "limit"},
		{"/v1/events?since=yesterday", 400, "since"},
		{"/v1/events?until=2024-13-01T00:00:00Z", 400, "until"},
		{"/v1/events?after_position=-1", 400, "after_position"},
		{"/v1/events?starting_after=evt_missing", 400, "starting_after"},
		{"/v1/accounts/" + account + "/events?starting_after=evt_missing", 400, "starting_after"},
		{"/v1/nope", 404, ""},
	}
	for _, tt := range errTests {
		code, m := e.get(tt.path)
		if code != tt.status {
			t.Errorf("%s: %d %v, want %d", tt.path, code, m, tt.status)
			continue
		}
		if tt.param != "" {
			detail := m["error"].(map[string]any)
			if detail["type"] != api.TypeInvalidRequest || detail["param"] != tt.param ||
				!strings.HasPrefix(detail["message"].(string), tt.param+":") {
				t.Errorf("%s: %v, want invalid_request naming %s", tt.path, detail, tt.param)
			}
		}
	}
}

func TestRequestID(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/healthz", nil)
	req.Header.Set("X-Request-Id", "abc-123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got != "abc-123" {
		t.Fatalf("X-Request-Id echoed as %q", got)
	}
	resp, err = http.Get(e.srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); !strings.HasPrefix(got, "req_") {
		t.Fatalf("generated X-Request-Id = %q", got)
	}
}
