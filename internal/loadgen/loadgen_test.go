package loadgen_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/fcaudit/fcaudit/api"
	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/internal/loadgen"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

const secret = "whsec_test_loadgen"

// TestAgainstRealServer runs a small load against the real router, ingest
// service and SQLite store: every answer must check out, and every stored
// event must be one of the plan's, verified by stripe-go.
func TestAgainstRealServer(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), sqlite.FileName), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	v, err := ingest.NewVerifier([]string{secret}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.NewServer(api.Config{Store: st, Ingest: ingest.NewService(v, st, ingest.ServiceOptions{})}).Handler())
	t.Cleanup(srv.Close)

	const n = 300
	plan, err := loadgen.Prepare(context.Background(), loadgen.Config{
		Secret: secret, Requests: n, Concurrency: 8, Accounts: 20, Duplicates: 0.25, Seed: 42,
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := plan.Run(context.Background(), srv.URL+"/webhooks/stripe", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.ErrorCount != 0 {
		t.Fatalf("errors: %v", res.Errors)
	}
	if res.Requests != n || res.Stored+res.Duplicates != n {
		t.Fatalf("requests %d, stored %d + duplicates %d, want %d in all", res.Requests, res.Stored, res.Duplicates, n)
	}
	// With P = 0.25 over 300 requests, expect ~75; anything below 30
	// means re-sends are not being made.
	if res.Duplicates < 30 {
		t.Errorf("only %d duplicates acknowledged for P=0.25", res.Duplicates)
	}
	if res.BodyBytes < 2500 || res.BodyBytes > 3072 {
		t.Errorf("mean body %d bytes, want ≈3 KiB", res.BodyBytes)
	}
	if res.Latency.P50 <= 0 || res.Latency.P50 > res.Latency.P99 || res.Latency.P99 > res.Latency.Max {
		t.Errorf("latency percentiles out of order: %+v", res.Latency)
	}

	evs, err := st.ReadAll(context.Background(), store.ReadOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != res.Stored {
		t.Fatalf("store holds %d events, loadgen saw %d stored", len(evs), res.Stored)
	}
	accounts := map[string]bool{}
	for _, e := range evs {
		accounts[e.Stream] = true
		if len(e.Data) < 2500 {
			t.Errorf("%s: body of %d bytes", e.ID, len(e.Data))
		}
	}
	if len(accounts) < 2 || len(accounts) > 20 {
		t.Errorf("events spread over %d streams, want 2..20 (K=20)", len(accounts))
	}
}

// TestAnswersChecked: each way a target can answer wrongly is counted
// under its own kind.
func TestAnswersChecked(t *testing.T) {
	verified := func(w http.ResponseWriter, r *http.Request) (id string, ok bool) {
		body, _ := io.ReadAll(r.Body)
		ev, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), secret,
			webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return "", false
		}
		return ev.ID, true
	}
	answer := func(w http.ResponseWriter, id string, dup bool) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "duplicate": dup})
	}
	for _, tc := range []struct {
		name       string
		duplicates float64
		handler    func(seen *sync.Map) http.HandlerFunc
		wantKind   string
	}{
		{"unavailable", 0, func(*sync.Map) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) }
		}, "status_503"},
		{"not json", 0, func(*sync.Map) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }
		}, loadgen.ErrKindBadJSON},
		{"wrong id", 0, func(*sync.Map) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				if _, ok := verified(w, r); ok {
					answer(w, "evt_other", false)
				}
			}
		}, loadgen.ErrKindWrongID},
		{"never a duplicate", 0.5, func(*sync.Map) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				if id, ok := verified(w, r); ok {
					answer(w, id, false)
				}
			}
		}, loadgen.ErrKindMissedDuplicate},
		{"always a duplicate", 0, func(*sync.Map) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				if id, ok := verified(w, r); ok {
					answer(w, id, true)
				}
			}
		}, loadgen.ErrKindUnexpectedDuplicate},
		{"correct", 0.5, func(seen *sync.Map) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				if id, ok := verified(w, r); ok {
					_, dup := seen.LoadOrStore(id, true)
					answer(w, id, dup)
				}
			}
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler(&sync.Map{}))
			t.Cleanup(srv.Close)
			plan, err := loadgen.Prepare(context.Background(), loadgen.Config{
				Secret: secret, Requests: 40, Concurrency: 4, Duplicates: tc.duplicates, Size: 1024, Seed: 7,
			})
			if err != nil {
				t.Fatal(err)
			}
			res, err := plan.Run(context.Background(), srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantKind == "" {
				if res.ErrorCount != 0 || res.Duplicates == 0 {
					t.Fatalf("errors %v, duplicates %d: want no errors and some duplicates", res.Errors, res.Duplicates)
				}
				return
			}
			if res.Errors[tc.wantKind] == 0 {
				t.Fatalf("errors %v, want some %q", res.Errors, tc.wantKind)
			}
			var buf bytes.Buffer
			if err := loadgen.WriteTable(&buf, res); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(buf.String(), tc.wantKind) {
				t.Errorf("table does not name the error kind %q:\n%s", tc.wantKind, buf.String())
			}
		})
	}
}

func TestTransportErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	plan, err := loadgen.Prepare(context.Background(), loadgen.Config{Secret: secret, Requests: 5, Concurrency: 2, Size: 512})
	if err != nil {
		t.Fatal(err)
	}
	res, err := plan.Run(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors[loadgen.ErrKindTransport] != 5 {
		t.Fatalf("errors %v, want 5 transport errors", res.Errors)
	}
}

func TestConfigRejected(t *testing.T) {
	for _, cfg := range []loadgen.Config{
		{},
		{Secret: "s", Requests: -1},
		{Secret: "s", Duplicates: 1},
		{Secret: "s", Duplicates: -0.1},
		{Secret: "s", Concurrency: -2},
	} {
		if _, err := loadgen.Prepare(context.Background(), cfg); err == nil {
			t.Errorf("Prepare(%+v) succeeded", cfg)
		}
	}
}

func TestResultJSON(t *testing.T) {
	b, err := json.Marshal(loadgen.Result{Elapsed: 1500 * time.Millisecond, Latency: loadgen.Latency{P99: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["elapsed_seconds"] != 1.5 {
		t.Errorf("elapsed_seconds = %v in %s", m["elapsed_seconds"], b)
	}
	if lat, _ := m["latency"].(map[string]any); lat["p99_seconds"] != 0.02 {
		t.Errorf("latency.p99_seconds = %v in %s", lat["p99_seconds"], b)
	}
}
