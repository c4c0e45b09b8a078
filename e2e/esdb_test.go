package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/api"
	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/internal/fcevents"
	"github.com/fcaudit/fcaudit/store/esdb"
	"github.com/fcaudit/fcaudit/store/esdb/esdbtest"
)

// TestEventStoreDBDown runs the webhook endpoint and the query API over the
// EventStoreDB adapter against the in-memory gRPC server (no real EventStoreDB runs here). While the node is
// down, webhooks get 503 store_unavailable and /readyz 503; when it is back,
// the same process recovers and everything acknowledged is stored.
//
// It runs both the real binary (serve --eventstore) and the same wiring in
// process.
func TestEventStoreDBDown(t *testing.T) {
	type fault struct {
		name     string
		down, up func(*esdbtest.Server)
	}
	type runner struct {
		name  string
		serve func(*testing.T, *esdbtest.Server) string // the base URL
	}
	type testCase struct {
		fault
		runner
	}
	var cases []testCase
	for _, r := range []runner{{"binary", serveESDB}, {"in-process", inProcessESDB}} {
		for _, f := range []fault{
			{"unavailable", func(s *esdbtest.Server) { s.SetUnavailable(true) }, func(s *esdbtest.Server) { s.SetUnavailable(false) }},
			{"stopped", (*esdbtest.Server).Stop, (*esdbtest.Server).Restart},
		} {
			cases = append(cases, testCase{f, r})
		}
	}
	for _, tc := range cases {
		t.Run(tc.runner.name+"/"+tc.fault.name, func(t *testing.T) {
			node := esdbtest.Start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			baseURL := tc.serve(t, node)
			c := newClient(2)

			ids := map[string]acked{}
			var refused []string
			account := gen.NewAccountID()
			post := func(want int) {
				t.Helper()
				ev := newEvent(fc.TypeRefreshedBalance, account)
				code, a, err := postWebhook(ctx, c, baseURL, ev.body, testSecret)
				if err != nil {
					t.Fatalf("post: %v", err)
				}
				if code != want || (want == http.StatusServiceUnavailable && a.errType() != "store_unavailable") {
					t.Fatalf("webhook: %d %+v, want %d", code, a, want)
				}
				if code == http.StatusOK {
					ids[ev.id] = acked{stream: a.Stream, position: a.Position}
				} else {
					refused = append(refused, ev.id)
				}
			}
			for range 5 {
				post(http.StatusOK)
			}
			waitStatus(t, c, baseURL+"/readyz", http.StatusOK, 30*time.Second)

			tc.down(node)
			for range 3 {
				post(http.StatusServiceUnavailable)
			}
			waitStatus(t, c, baseURL+"/readyz", http.StatusServiceUnavailable, 30*time.Second)

			tc.up(node)
			waitStatus(t, c, baseURL+"/readyz", http.StatusOK, 30*time.Second)
			for range 5 {
				post(http.StatusOK)
			}
			checkStored(t, baseURL, ids)
			// What was refused with 503 was not stored (Stripe will retry it).
			for _, id := range refused {
				if code, body, err := get(ctx, c, baseURL+"/v1/events/"+id, testToken); err != nil || code != http.StatusNotFound {
					t.Errorf("event %s answered 503 is retrievable: %d %.200s %v", id, code, body, err)
				}
			}
		})
	}
}

// serveESDB runs `fcaudit serve --eventstore` against node.
func serveESDB(t *testing.T, node *esdbtest.Server) string {
	t.Helper()
	return startServe(t, serveConfig{dataDir: t.TempDir(), extra: []string{"--eventstore", node.ConnString()}}).url
}

// inProcessESDB wires api and ingest over the esdb adapter as serve does,
// with a shorter operation timeout.
func inProcessESDB(t *testing.T, node *esdbtest.Server) string {
	t.Helper()
	st, err := esdb.Open(context.Background(), node.ConnString(), esdb.Options{Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	v, err := ingest.NewVerifier([]string{testSecret}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(api.NewServer(api.Config{
		Store:  st,
		Ingest: ingest.NewService(v, st, ingest.ServiceOptions{}),
		Tokens: []string{testToken},
		Ready:  st.Ping,
	}).Handler())
	t.Cleanup(hs.Close)
	return hs.URL
}

// TestEventStoreDBLargeBody: a webhook body just under the
// default 1 MiB body limit is over EventStoreDB's MaxAppendSize once
// fcaudit's metadata is counted. serve must answer 413 payload_too_large on
// every delivery (Stripe stops retrying a 4xx), never 503 or 500, and leave
// no claim behind; the largest body it advertises is stored.
func TestEventStoreDBLargeBody(t *testing.T) {
	for _, r := range []struct {
		name  string
		serve func(*testing.T, *esdbtest.Server) string
	}{{"binary", serveESDB}, {"in-process", inProcessESDB}} {
		t.Run(r.name, func(t *testing.T) {
			node := esdbtest.Start(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			baseURL := r.serve(t, node)
			c := newClient(1)
			big := (&fcevents.Generator{Size: api.DefaultMaxBodyBytes - 256}).Event(fc.TypeRefreshedBalance, "", time.Now().Unix())
			if len(big) > api.DefaultMaxBodyBytes {
				t.Fatalf("generated %d bytes, over the body limit", len(big))
			}
			for try := range 2 {
				code, a, err := postWebhook(ctx, c, baseURL, big, testSecret)
				if err != nil {
					t.Fatal(err)
				}
				if code != http.StatusRequestEntityTooLarge || a.errType() != api.TypePayloadTooLarge {
					t.Fatalf("try %d: a %d-byte webhook got %d %+v, want 413 %s", try, len(big), code, a, api.TypePayloadTooLarge)
				}
			}
			for _, e := range node.Events() {
				if strings.HasPrefix(e.Stream, esdb.ClaimStreamPrefix) {
					t.Errorf("refused webhook left claim %s", e.Stream)
				}
			}
			fits := (&fcevents.Generator{Size: 256 << 10}).Event(fc.TypeRefreshedBalance, "", time.Now().Unix())
			if code, a, err := postWebhook(ctx, c, baseURL, fits, testSecret); err != nil || code != http.StatusOK {
				t.Fatalf("a %d-byte webhook: %d %+v %v", len(fits), code, a, err)
			}
		})
	}
}
