package projections

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/fcevents"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

// liveBatch and liveRate shape BenchmarkLive's stream like serve's under
// bench/compare: the store group-commits up to 64 concurrent appends, and a
// live subscriber sees about 4,000 events/s in batches of that size.
const (
	liveBatch = 64
	liveRate  = 4000 // events/s
)

// pacedLog delivers an existing log to a subscriber as live batches: pages
// of liveBatch events read from the store (bodies included, as the real
// subscription re-reads them), at most liveRate events/s, then blocks until
// ctx ends. It stands in for the subscription of a serve under load, so
// that the same stream can be replayed, applied or not, in one run.
type pacedLog struct {
	Log
	delivered atomic.Int64
}

func (p *pacedLog) Subscribe(ctx context.Context, after store.Position, f store.Filter, h store.Handler) error {
	tick := time.NewTicker(time.Second * liveBatch / liveRate)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("subscribe: %w", ctx.Err())
		case <-tick.C:
		}
		evs, err := p.Log.ReadAll(ctx, store.ReadOptions{After: after, Limit: liveBatch, Filter: f})
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			continue
		}
		if err := h(ctx, evs); err != nil {
			return err
		}
		after = evs[len(evs)-1].Position
		p.delivered.Add(int64(len(evs)))
	}
}

// BenchmarkLive measures the live projection's cost per event on a stream
// shaped like serve's (liveBatch, liveRate), against the same paced
// subscription whose handler does nothing, in the same run:
//
//   - subscribe: CPU time and allocations per event of the paced
//     subscription alone (reading the events back, bodies included);
//   - apply: the same with the Runner folding them into the read model;
//   - projection-µs/event = apply − subscribe: what the projection itself
//     costs per event, and lag-ms, how long after the last delivery the
//     read model's checkpoint reached the head.
//
// The log (FCAUDIT_BENCH_LIVE_EVENTS, default 8,000 events over a third as
// many accounts, ~3,000-byte fcevents bodies, created spread over 10
// minutes so they arrive out of order) is written by 64 concurrent
// appenders once, outside the timer.
func BenchmarkLive(b *testing.B) {
	n := 8000
	if v := os.Getenv("FCAUDIT_BENCH_LIVE_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("FCAUDIT_BENCH_LIVE_EVENTS=%q: want a positive integer", v)
		}
	}
	dir := b.TempDir()
	logPath := filepath.Join(dir, sqlite.FileName)
	seedLiveLog(b, logPath, n, max(1, n/3))
	st, err := sqlite.Open(logPath, sqlite.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	head, err := st.Head(context.Background())
	if err != nil {
		b.Fatal(err)
	}

	var sub, app liveCost
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		sub.add(b, measureLive(b, st, head, n, ""))
		app.add(b, measureLive(b, st, head, n, filepath.Join(dir, fmt.Sprintf("rm%d", i), FileName)))
	}
	b.ReportMetric(sub.cpuPerEvent(), "subscribe-µs/event")
	b.ReportMetric(app.cpuPerEvent(), "apply-µs/event")
	b.ReportMetric(app.cpuPerEvent()-sub.cpuPerEvent(), "projection-µs/event")
	b.ReportMetric(app.allocsPerEvent()-sub.allocsPerEvent(), "projection-allocs/event")
	b.ReportMetric(app.cpuPerEvent()/sub.cpuPerEvent(), "apply/subscribe")
	b.ReportMetric(float64(app.lag.Milliseconds())/float64(app.runs), "lag-ms")
}

type liveCost struct {
	events, mallocs int64
	cpu, lag        time.Duration
	runs            int
}

func (c *liveCost) add(b *testing.B, m liveCost) {
	c.events += m.events
	c.mallocs += m.mallocs
	c.cpu += m.cpu
	c.lag += m.lag
	c.runs++
}

func (c *liveCost) cpuPerEvent() float64 {
	return float64(c.cpu.Microseconds()) / float64(c.events)
}

func (c *liveCost) allocsPerEvent() float64 { return float64(c.mallocs) / float64(c.events) }

// measureLive replays the log through a pacedLog until every event was
// delivered and, when rmPath is set, applied by a Runner on a fresh read
// model at rmPath.
func measureLive(b *testing.B, st *sqlite.Store, head store.Position, n int, rmPath string) liveCost {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := &pacedLog{Log: st}
	var r *Runner
	if rmPath != "" {
		var err error
		if r, err = Open(rmPath, log, Options{}); err != nil {
			b.Fatal(err)
		}
		defer r.Close()
	}
	runtime.GC()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuTime(b)
	done := make(chan error, 1)
	if r != nil {
		go func() { done <- r.Run(ctx) }()
	} else {
		go func() {
			err := log.Subscribe(ctx, 0, accountFilter, func(context.Context, []store.RecordedEvent) error { return nil })
			if ctx.Err() != nil {
				err = nil
			}
			done <- err
		}()
	}
	deadline := time.Now().Add(5*time.Minute + time.Duration(n)*time.Second/liveRate)
	var delivered time.Time
	for {
		if time.Now().After(deadline) {
			b.Fatalf("not done: %d of %d events delivered", log.delivered.Load(), n)
		}
		time.Sleep(2 * time.Millisecond)
		if delivered.IsZero() && log.delivered.Load() >= int64(n) {
			delivered = time.Now()
		}
		if delivered.IsZero() {
			continue
		}
		if r == nil {
			break
		}
		c, err := readCatalog(ctx, r.rdb, AccountStatusName)
		if err != nil {
			b.Fatal(err)
		}
		if c.Checkpoint >= head {
			break
		}
	}
	lag := time.Since(delivered)
	cpu := cpuTime(b) - cpu0
	runtime.ReadMemStats(&ms1)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return liveCost{events: int64(n), mallocs: int64(ms1.Mallocs - ms0.Mallocs), cpu: cpu, lag: lag}
}

// cpuTime is the process's user + system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// seedLiveLog writes nEvents fcevents bodies (~3,000 bytes) over nAccounts
// accounts from 64 goroutines, one event per Append as webhooks arrive:
// accounts drawn at random, Stripe created spread over the last 10
// minutes (so events arrive out of order).
func seedLiveLog(tb testing.TB, path string, nEvents, nAccounts int) {
	tb.Helper()
	st, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	base := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC).Unix()
	types := fc.Types()
	var next atomic.Int64
	inParallel(tb, 64, func(w int) error {
		rng := mrand.New(mrand.NewPCG(uint64(w), 11))
		gen := &fcevents.Generator{Rand: rng, Size: 3000}
		for next.Add(1) <= int64(nEvents) {
			acct := fmt.Sprintf("fca_live%015d", rng.IntN(nAccounts))
			c := base + rng.Int64N(600)
			ev, err := webhookEvent(gen.Event(types[rng.IntN(len(types))], acct, c), time.Unix(base+600, 0))
			if err != nil {
				return err
			}
			if _, err := st.Append(context.Background(), fc.AccountStream(acct), store.AnyRevision, ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err := st.Close(); err != nil {
		tb.Fatal(err)
	}
}
