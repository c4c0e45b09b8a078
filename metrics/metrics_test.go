package metrics_test

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/api"
	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/internal/fcevents"
	"github.com/fcaudit/fcaudit/metrics"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

const secret = "whsec_test_metrics"

// newServer wires metrics into the real router, ingest service and SQLite
// store the way serve does.
func newServer(t *testing.T, m *metrics.Metrics) *httptest.Server {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), sqlite.FileName), sqlite.Options{
		OnCommit: func(c sqlite.CommitStats) { m.ObserveCommit(c.Requests, c.Events, c.Duration, c.Err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	v, err := ingest.NewVerifier([]string{secret}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.NewServer(api.Config{
		Store:          st,
		Ingest:         ingest.NewService(v, st, ingest.ServiceOptions{Observe: m.ObserveIngest}),
		Metrics:        m.Handler(),
		ObserveRequest: m.ObserveRequest,
	}).Handler())
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, url string, body []byte, sig string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/webhooks/stripe", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// scrape returns every sample of GET /metrics keyed by its full series
// name as exposed, e.g. `fcaudit_http_requests_total{route="webhook",status="200"}`.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET /metrics: Content-Type %q, want the text format", ct)
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("unparsable sample %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestScrapeAfterIngest(t *testing.T) {
	m := metrics.New()
	var lagCalls int
	m.RegisterLag(func() []metrics.LagSample {
		lagCalls++
		return []metrics.LagSample{{Projection: "account_status", Events: 3, Seconds: 1.5}}
	})
	srv := newServer(t, m)

	before := scrape(t, srv.URL)
	const typ = fc.TypeRefreshedBalance
	stored := `fcaudit_ingest_events_total{outcome="stored",type="` + typ + `"}`
	if v, ok := before[stored]; ok {
		t.Fatalf("%s = %v before any delivery", stored, v)
	}

	body := (&fcevents.Generator{Size: 3072}).Event(typ, "", time.Now().Unix())
	for i, want := range []int{200, 200} { // the second one is a duplicate
		if code := post(t, srv.URL, body, fcevents.Sign(body, secret, time.Now())); code != want {
			t.Fatalf("delivery %d: status %d, want %d", i, code, want)
		}
	}
	if code := post(t, srv.URL, body, fcevents.Sign(body, "whsec_wrong", time.Now())); code != 400 {
		t.Fatalf("wrongly signed delivery: status %d, want 400", code)
	}

	after := scrape(t, srv.URL)
	for _, tc := range []struct {
		series string
		want   float64
	}{
		{stored, 1},
		{`fcaudit_ingest_events_total{outcome="duplicate",type="` + typ + `"}`, 1},
		// A rejected signature is never labelled with the (untrusted) type.
		{`fcaudit_ingest_events_total{outcome="signature_invalid",type=""}`, 1},
		{`fcaudit_ingest_duration_seconds_count{outcome="stored"}`, 1},
		{`fcaudit_http_requests_total{route="webhook",status="200"}`, 2},
		{`fcaudit_http_requests_total{route="webhook",status="400"}`, 1},
		{`fcaudit_http_request_duration_seconds_count{route="webhook"}`, 3},
		{`fcaudit_store_commit_batch_events_sum`, 1},
		{`fcaudit_store_commit_errors_total`, 0},
		{`fcaudit_projection_lag_events{projection="account_status"}`, 3},
		{`fcaudit_projection_lag_seconds{projection="account_status"}`, 1.5},
	} {
		got, ok := after[tc.series]
		if !ok {
			t.Errorf("%s missing from /metrics", tc.series)
			continue
		}
		if got != tc.want {
			t.Errorf("%s = %v, want %v", tc.series, got, tc.want)
		}
	}
	// Commits: at least the one that stored the event (Ping may add more).
	if got := after["fcaudit_store_commit_duration_seconds_count"]; got < 1 {
		t.Errorf("fcaudit_store_commit_duration_seconds_count = %v, want ≥ 1", got)
	}
	for _, series := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := after[series]; !ok {
			t.Errorf("%s missing: Go/process collectors not registered", series)
		}
	}
	if lagCalls != 2 {
		t.Errorf("lag source called %d times for 2 scrapes", lagCalls)
	}
}

func TestEventTypeLabelIsBounded(t *testing.T) {
	m := metrics.New()
	for i := range 100 {
		m.ObserveIngest(ingest.Outcome{Result: ingest.OutcomeStored, EventType: "x.type" + strconv.Itoa(i)})
	}
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	got := scrape(t, srv.URL)
	var series int
	for k := range got {
		if strings.HasPrefix(k, "fcaudit_ingest_events_total{") {
			series++
		}
	}
	if series != 65 { // 64 distinct types + "other"
		t.Errorf("%d ingest series for 100 types, want 65", series)
	}
	if v := got[`fcaudit_ingest_events_total{outcome="stored",type="other"}`]; v != 36 {
		t.Errorf(`type="other" = %v, want 36`, v)
	}
}

func TestCommitErrors(t *testing.T) {
	m := metrics.New()
	m.ObserveCommit(3, 5, time.Millisecond, nil)
	m.ObserveCommit(2, 0, time.Millisecond, io.ErrUnexpectedEOF)
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	got := scrape(t, srv.URL)
	for series, want := range map[string]float64{
		"fcaudit_store_commit_errors_total":           1,
		"fcaudit_store_commit_duration_seconds_count": 2,
		"fcaudit_store_commit_batch_events_count":     1,
		"fcaudit_store_commit_batch_events_sum":       5,
		"fcaudit_store_commit_batch_requests_sum":     3,
	} {
		if got[series] != want {
			t.Errorf("%s = %v, want %v", series, got[series], want)
		}
	}
}
