package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/internal/loadgen"
)

func res(tput float64, p99 time.Duration) loadgen.Result {
	return loadgen.Result{Throughput: tput, Latency: loadgen.Latency{P99: p99}}
}

// The seeded, Postgres and alt-seeded ratios are taken within a round, and
// a target missing from a round adds no ratio.
func TestSummarizeRatiosWithinRounds(t *testing.T) {
	samples := []sample{
		{Round: 1, Target: "fcaudit", Result: res(1000, 10*time.Millisecond)},
		{Round: 1, Target: "fcaudit-seeded", Result: res(500, 30*time.Millisecond)},
		{Round: 1, Target: "fcaudit-alt-seeded", Result: res(600, 20*time.Millisecond)},
		{Round: 1, Target: "postgres", Result: res(400, 5*time.Millisecond)},
		{Round: 1, Target: "postgres-pool-4", Result: res(100, 5*time.Millisecond)},
		{Round: 2, Target: "fcaudit", Result: res(2000, 20*time.Millisecond)},
		{Round: 2, Target: "fcaudit-seeded", Result: res(1600, 20*time.Millisecond)},
		{Round: 2, Target: "fcaudit-alt-seeded", Result: res(1600, 20*time.Millisecond)},
	}
	s := summarize(samples, 2)
	want := map[string][]float64{
		"seeded/empty":        {0.5, 0.8},
		"seeded p99/empty":    {3, 1},
		"alt-seeded/seeded":   {1.2, 1},
		"fcaudit/postgres":    {2.5},
		"fcaudit/verify-only": nil,
	}
	got := map[string][]float64{
		"seeded/empty":        s.SeededVsEmptyAll,
		"seeded p99/empty":    s.SeededP99RatioAll,
		"alt-seeded/seeded":   s.AltSeededVsSeededAll,
		"fcaudit/postgres":    s.VsPostgresAll,
		"fcaudit/verify-only": s.VsVerifyAll,
	}
	for k, w := range want {
		g := got[k]
		if len(g) != len(w) {
			t.Errorf("%s: per round %v, want %v", k, g, w)
			continue
		}
		for i := range w {
			if d := g[i] - w[i]; d > 1e-9 || d < -1e-9 {
				t.Errorf("%s: per round %v, want %v", k, g, w)
			}
		}
	}
	if s.SeededVsEmpty != 0.65 || s.VsPostgres != 2.5 {
		t.Errorf("medians: seeded/empty %v (want 0.65), fcaudit/postgres %v (want 2.5)", s.SeededVsEmpty, s.VsPostgres)
	}
	var names []string
	for _, ts := range s.Targets {
		names = append(names, ts.Name)
	}
	wantNames := []string{"postgres", "postgres-pool-4", "fcaudit", "fcaudit-seeded", "fcaudit-alt-seeded"}
	if len(names) != len(wantNames) {
		t.Fatalf("targets %v, want %v", names, wantNames)
	}
	for i := range names {
		if names[i] != wantNames[i] {
			t.Fatalf("targets %v, want %v", names, wantNames)
		}
	}
	// The seeded p99 is 3× in round 1 (target ≤ 1.5×: the median 2× misses).
	if s.allMet() {
		t.Error("allMet with seeded/empty 0.65× and p99 2×")
	}
}

func TestProjectionLag(t *testing.T) {
	body := "# HELP fcaudit_projection_lag_events …\n" +
		"fcaudit_projection_lag_events{projection=\"account_status\"} 12\n" +
		"fcaudit_projection_lag_events{projection=\"other\"} 3\n" +
		"fcaudit_projection_lag_seconds{projection=\"account_status\"} 0.5\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/none" {
			_, _ = io.WriteString(w, "go_goroutines 7\n")
			return
		}
		_, _ = io.WriteString(w, body)
	}))
	defer srv.Close()
	lag, err := projectionLag(context.Background(), srv.URL+"/metrics")
	if err != nil || lag != 15 {
		t.Fatalf("lag %d, %v; want 15", lag, err)
	}
	// No lag metric at all (serve not yet running its projections) is not
	// "caught up".
	if _, err := projectionLag(context.Background(), srv.URL+"/none"); err == nil {
		t.Fatal("no error without a lag metric")
	}
}
