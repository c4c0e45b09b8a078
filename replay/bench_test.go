package replay

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/store"
)

func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// seedBench appends n events over n/20 accounts from 64 concurrent
// appenders (group commit), so store order interleaves the accounts.
func seedBench(b *testing.B, st store.Store, n int) {
	b.Helper()
	tpls := templates(b)
	accounts := max(1, n/20)
	work := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 64 {
		wg.Go(func() {
			for i := range work {
				a, k := i%accounts, i/accounts
				fca := fmt.Sprintf("fca_bench%06d", a)
				evt := fmt.Sprintf("evt_bench%06d_%04d", a, k)
				tpl := tpls[k%len(tpls)]
				if _, err := st.Append(context.Background(), fc.AccountStream(fca), store.AnyRevision, store.Event{
					ID: evt, Type: tpl.typ, Data: tpl.render(evt, fca, t0+int64(i)), Created: t0 + int64(i),
					ReceivedAt: time.Unix(t0+int64(i), 0).UTC(), Source: store.SourceWebhook,
				}); err != nil {
					failed.Store(err)
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkReplayHTTP compares Deliver (read the store, sign, per-account
// ordering, retry bookkeeping) with a plain concurrent net/http client
// sending the same bodies pre-signed, against a receiver that answers 200 at
// once, at the same concurrency and on the same transport settings.
// FCAUDIT_REPLAY_BENCH_EVENTS (default 20000) and
// FCAUDIT_REPLAY_BENCH_CONCURRENCY (default 16) size it. Reported: events/s
// of each and their ratio (replay/baseline).
func BenchmarkReplayHTTP(b *testing.B) {
	n := benchEnv("FCAUDIT_REPLAY_BENCH_EVENTS", 20000)
	conc := benchEnv("FCAUDIT_REPLAY_BENCH_CONCURRENCY", 16)
	st, _ := openStore(b)
	seedBench(b, st, n)
	evs := readAll(b, st)
	if len(evs) != n {
		b.Fatalf("seeded %d events, want %d", len(evs), n)
	}
	var received atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		received.Add(1)
	}))
	defer srv.Close()
	url := srv.URL + "/hook"

	// Baseline input: bodies and signatures made before the clock starts.
	sigs := make([]string, len(evs))
	for i := range evs {
		sigs[i] = Signature(time.Now(), evs[i].Data, testSecret)
	}
	baseline := func() time.Duration {
		client := NewHTTPClient(conc)
		defer client.CloseIdleConnections()
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range conc {
			wg.Go(func() {
				for {
					i := int(next.Add(1) - 1)
					if i >= len(evs) {
						return
					}
					req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(evs[i].Data))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Stripe-Signature", sigs[i])
					req.Header.Set(HeaderReplay, "true")
					req.Header.Set(HeaderReplayID, "replay_bench")
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	replay := func() time.Duration {
		client := NewHTTPClient(conc)
		defer client.CloseIdleConnections()
		s := &HTTPSender{URL: url, Secret: testSecret, RunID: "replay_bench", Client: client, Timeout: 30 * time.Second}
		start := time.Now()
		res, err := Deliver(context.Background(), st, Selection{}, s, Options{Concurrency: conc})
		d := time.Since(start)
		if err != nil || res.Replayed != n {
			b.Fatalf("replay: %+v %v", res, err)
		}
		return d
	}

	b.ReportAllocs()
	b.ResetTimer()
	var tBase, tReplay time.Duration
	for i := 0; b.Loop(); i++ {
		// Alternate the order so neither side always runs on a warmer
		// machine.
		if i%2 == 0 {
			tBase += baseline()
			tReplay += replay()
		} else {
			tReplay += replay()
			tBase += baseline()
		}
	}
	b.StopTimer()
	iters := float64(b.N)
	baseRate := float64(n) * iters / tBase.Seconds()
	replayRate := float64(n) * iters / tReplay.Seconds()
	b.ReportMetric(baseRate, "baseline-events/s")
	b.ReportMetric(replayRate, "replay-events/s")
	b.ReportMetric(replayRate/baseRate, "ratio")
	if got := received.Load(); got != int64(2*n*b.N) {
		b.Fatalf("receiver got %d requests, want %d", got, 2*n*b.N)
	}
}
