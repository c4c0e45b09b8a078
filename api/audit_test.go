package api_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/api"
	"github.com/fcaudit/fcaudit/audit"
	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

// TestVerifyAccountRoute serves GET /v1/accounts/{id}/verify from a real
// audit.AccountChecker over webhooks ingested through the API.
func TestVerifyAccountRoute(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), sqlite.FileName), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	v, err := ingest.NewVerifier([]string{secret}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	svc := ingest.NewService(v, st, ingest.ServiceOptions{})
	for i, b := range fixtures(t) {
		if _, err := svc.Ingest(context.Background(), b, sign(b, time.Now())); err != nil {
			t.Fatalf("fixture %d: %v", i, err)
		}
	}
	srv := newServer(t, api.Config{Store: st, Ingest: svc, Tokens: []string{token},
		Verify: audit.NewAccountChecker(st, v)})

	var got audit.AccountVerification
	if code := getJSON(t, srv, "/v1/accounts/"+account+"/verify", &got); code != 200 {
		t.Fatalf("verify: %d", code)
	}
	if got.Account != account || got.Events != 7 || !got.Intact || got.FirstBroken != nil || got.LastRevision != 6 ||
		len(got.ChainHash) != 64 || got.Signatures.Checked != 7 {
		t.Errorf("verify: %+v", got)
	}
	var e apiError
	if code := getJSON(t, srv, "/v1/accounts/fca_unknown/verify", &e); code != 404 || e.Error.Type != "resource_missing" ||
		e.Error.Message != `no events for account "fca_unknown"` {
		t.Errorf("unknown account: %d %+v", code, e)
	}
	req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/v1/accounts/"+account+"/verify", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("DELETE verify: %d, want 405", resp.StatusCode)
	}
	resp, err = http.Get(srv.URL + "/v1/accounts/" + account + "/verify")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("without token: %d, want 401", resp.StatusCode)
	}
}

// TestOptionalRoutesNeedTheirDependency: a route whose dependency is not
// configured is not registered.
func TestOptionalRoutesNeedTheirDependency(t *testing.T) {
	e := newEnv(t)
	e.ingestAll(t, fixtures(t))
	for _, path := range []string{"/v1/accounts", "/v1/accounts/" + account, "/v1/accounts/" + account + "/verify",
		"/v1/replays", "/v1/replays/replay_x", "/v1/reconciliation"} {
		if code, m := e.get(path); code != 404 || errType(m) != "resource_missing" {
			t.Errorf("%s without its dependency: %d %v", path, code, m)
		}
	}
	if code, m := e.get("/v1/accounts/" + account + "/events"); code != 200 {
		t.Errorf("account events: %d %v", code, m)
	}
}
