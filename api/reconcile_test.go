package api_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/api"
	"github.com/fcaudit/fcaudit/backfill"
	"github.com/fcaudit/fcaudit/backfill/backfilltest"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

// TestReconciliationRoute serves GET /v1/reconciliation from a real
// backfill.Reconciler reconciling against a fake Stripe Events API.
func TestReconciliationRoute(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), sqlite.FileName), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const key = "sk_test_reconcile_4242"
	stripe := backfilltest.New(t, key)
	stripe.Add(fixtures(t)...)
	// The fixtures were created 2024-01-15 … 01-25; the lookback (Stripe's
	// retention) from here covers them all.
	now := time.Date(2024, 1, 26, 0, 0, 0, 0, time.UTC)
	rec := backfill.NewReconciler(st, backfill.Options{APIKey: key, APIBase: stripe.URL, Now: func() time.Time { return now }}, 6*time.Hour, 0)
	srv := newServer(t, api.Config{Store: st, Tokens: []string{token}, Reconciliation: rec})

	var raw map[string]json.RawMessage
	if code := getJSON(t, srv, "/v1/reconciliation", &raw); code != 200 {
		t.Fatalf("before the first run: %d", code)
	}
	for k, want := range map[string]string{"object": `"reconciliation"`, "interval": `"6h0m0s"`, "running": "false",
		"next_run_at": "null", "last_run": "null"} {
		if string(raw[k]) != want {
			t.Errorf("before the first run: %s = %s, want %s", k, raw[k], want)
		}
	}
	if len(raw) != 5 {
		t.Errorf("fields: %v", raw)
	}

	if res := rec.Once(context.Background()); !res.OK {
		t.Fatalf("reconciliation failed: %+v", res)
	}
	var got struct {
		Object  string           `json:"object"`
		LastRun *backfill.Result `json:"last_run"`
	}
	if code := getJSON(t, srv, "/v1/reconciliation", &got); code != 200 {
		t.Fatalf("after a run: %d", code)
	}
	if l := got.LastRun; l == nil || !l.OK || l.Error != nil || l.Fetched != 7 || l.Appended != 7 || len(l.Gaps) != 7 ||
		l.Gaps[0].Account != account || !l.Gaps[0].Appended || !l.StartedAt.Equal(now) {
		t.Errorf("after a run: %+v", got.LastRun)
	}
}
