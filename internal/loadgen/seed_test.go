package loadgen_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/fcaudit/fcaudit/internal/loadgen"
)

// TestSeedReproducesEventsByteForByte: the same --seed gives the same
// bodies in the same order, however the preparing workers interleave and
// whenever it runs; another seed gives others.
func TestSeedReproducesEventsByteForByte(t *testing.T) {
	cfg := loadgen.Config{Secret: secret, Requests: 400, Concurrency: 8, Accounts: 20, Size: 1500, Seed: 42}
	prepare := func(c loadgen.Config) [][]byte {
		p, err := loadgen.Prepare(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		return p.Bodies()
	}
	a, b := prepare(cfg), prepare(cfg)
	if len(a) != len(b) || len(a) < cfg.Requests {
		t.Fatalf("%d and %d bodies", len(a), len(b))
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("seed %d: body %d differs between two preparations:\n%s\n%s", cfg.Seed, i, a[i], b[i])
		}
	}
	other := cfg
	other.Seed = 43
	if c := prepare(other); bytes.Equal(a[0], c[0]) {
		t.Fatal("seeds 42 and 43 give the same first body")
	}
}

// TestFailuresReportedApart: failed requests count neither in the latency
// figures nor in the throughput; they get their own latency summary.
func TestFailuresReportedApart(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if n.Add(1)%3 == 0 {
			w.WriteHeader(http.StatusUnauthorized) // a fast failure
			return
		}
		var env struct{ ID string }
		_ = json.Unmarshal(body, &env)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": env.ID, "duplicate": false})
	}))
	defer srv.Close()
	p, err := loadgen.Prepare(context.Background(), loadgen.Config{Secret: secret, Requests: 300, Concurrency: 4, Accounts: 10, Size: 800, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Run(context.Background(), srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stored != 200 || res.ErrorCount != 100 || res.Errors["status_401"] != 100 {
		t.Fatalf("result %+v: want 200 stored and 100 failures", res)
	}
	if res.Latency.Count != res.Stored || res.FailedLatency.Count != res.ErrorCount {
		t.Fatalf("latency over %d requests, failed latency over %d; want %d and %d", res.Latency.Count, res.FailedLatency.Count, res.Stored, res.ErrorCount)
	}
	if got := res.Throughput * res.Elapsed.Seconds(); math.Abs(got-float64(res.Stored)) > 1e-6*float64(res.Stored) {
		t.Fatalf("throughput × elapsed = %.3f requests, want the %d successful ones", got, res.Stored)
	}
}
