package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestLoadgenAgainstServe runs `fcaudit loadgen` against an in-process
// `fcaudit serve --dev` and checks the answer summary against serve's own
// /metrics, which also proves serve's metrics wiring end to end.
func TestLoadgenAgainstServe(t *testing.T) {
	dir := t.TempDir()
	addr := strings.TrimPrefix(startServe(t, dir, "--dev"), "http://")

	code, out, errOut := runCmd(t, context.Background(), "loadgen", "--data-dir", dir, "-n", "200", "-c", "8",
		"--accounts", "10", "--duplicates", "0.2", "--json")
	if code != 0 {
		t.Fatalf("loadgen: exit %d\n%s\n%s", code, out, errOut)
	}
	var res struct {
		Requests   int            `json:"requests"`
		Stored     int            `json:"stored"`
		Duplicates int            `json:"duplicates"`
		ErrorCount int            `json:"error_count"`
		Errors     map[string]int `json:"errors"`
		Throughput float64        `json:"throughput"`
		Latency    map[string]float64
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("loadgen --json output %q: %v", out, err)
	}
	if res.Requests != 200 || res.Stored+res.Duplicates != 200 || res.Duplicates == 0 || res.ErrorCount != 0 {
		t.Fatalf("loadgen result %+v", res)
	}
	if res.Throughput <= 0 || res.Latency["p99_seconds"] <= 0 {
		t.Errorf("no throughput or latency in %s", out)
	}

	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var stored, dups float64
	for _, line := range strings.Split(string(body), "\n") {
		var v float64
		switch {
		case strings.HasPrefix(line, `fcaudit_ingest_events_total{outcome="stored"`):
			if _, err := fmtSscan(line, &v); err == nil {
				stored += v
			}
		case strings.HasPrefix(line, `fcaudit_ingest_events_total{outcome="duplicate"`):
			if _, err := fmtSscan(line, &v); err == nil {
				dups += v
			}
		}
	}
	if int(stored) != res.Stored || int(dups) != res.Duplicates {
		t.Errorf("/metrics counts %v stored and %v duplicates; loadgen saw %d and %d", stored, dups, res.Stored, res.Duplicates)
	}
	if !strings.Contains(string(body), "fcaudit_store_commit_duration_seconds_count") ||
		!strings.Contains(string(body), `fcaudit_projection_lag_events{projection="account_status"}`) {
		t.Errorf("/metrics lacks the store or projection series:\n%s", body)
	}
}

// fmtSscan reads the value (last field) of a Prometheus text sample line.
func fmtSscan(line string, v *float64) (int, error) {
	return fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], v)
}

func TestLoadgenUsageErrors(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("STRIPE_WEBHOOK_SECRET", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"loadgen", "--data-dir", dir}, "start 'fcaudit serve --dev' first"},
		{[]string{"loadgen", "--secret", "s", "--url", "ftp://x"}, "--url:"},
		{[]string{"loadgen", "--secret", "s", "--url", "http://127.0.0.1:1", "-n", "0"}, "--requests:"},
		{[]string{"loadgen", "--secret", "s", "--url", "http://127.0.0.1:1", "-c", "-1"}, "--concurrency:"},
		{[]string{"loadgen", "--secret", "s", "--url", "http://127.0.0.1:1", "--duplicates", "1"}, "--duplicates:"},
	} {
		code, _, errOut := runCmd(t, context.Background(), tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d naming %q", tc.args, code, errOut, exitUsage, tc.want)
		}
	}
}
