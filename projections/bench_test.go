package projections

import (
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/fcevents"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

// BenchmarkRebuild measures a full rebuild of account_status against a
// plain full scan (ReadAll paging, bodies included) of the same SQLite log,
// in the same run. The rebuild runs in a child process (this test binary,
// BenchmarkRebuild's helper) so that its peak RSS (ru_maxrss) is the
// rebuild's alone, not the generator's.
//
// FCAUDIT_BENCH_EVENTS sets N (default 20,000), over N/10 accounts, bodies
// of ~3,000 bytes (fcevents). FCAUDIT_BENCH_DIR reuses (or keeps, when it
// has no log yet) a data directory, e.g. one filled by bench/seedstore:
//
//	FCAUDIT_BENCH_EVENTS=1000000 FCAUDIT_BENCH_DIR=/tmp/pj1m go test -run '^$' -bench Rebuild -benchtime 1x ./projections
func BenchmarkRebuild(b *testing.B) {
	n := 20_000
	if v := os.Getenv("FCAUDIT_BENCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("FCAUDIT_BENCH_EVENTS=%q: want a positive integer", v)
		}
	}
	dir := os.Getenv("FCAUDIT_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	logPath := filepath.Join(dir, sqlite.FileName)
	if _, err := os.Stat(logPath); err != nil {
		start := time.Now()
		seedLog(b, logPath, n, max(1, n/10))
		b.Logf("generated %d events over %d accounts in %s", n, max(1, n/10), time.Since(start).Round(time.Millisecond))
	}
	ro, err := sqlite.Open(logPath, sqlite.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer ro.Close()
	ctx := context.Background()

	var (
		scanTime, rebuildTime time.Duration
		maxRSS                int64
		seen                  int
	)
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		var after store.Position
		seen = 0
		for {
			page, err := ro.ReadAll(ctx, store.ReadOptions{After: after, Limit: rebuildPage, Filter: accountFilter})
			if err != nil {
				b.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			seen += len(page)
			after = page[len(page)-1].Position
		}
		scanTime += time.Since(t0)

		cmd := exec.Command(os.Args[0], "-test.run=^TestRebuildBenchChild$")
		cmd.Env = append(os.Environ(), "FCAUDIT_PROJECTIONS_REBUILD_CHILD="+dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("rebuild child: %v\n%s", err, out)
		}
		applied, took, err := parseChildReport(string(out))
		if err != nil {
			b.Fatalf("rebuild child output %q: %v", out, err)
		}
		if applied != seen {
			b.Fatalf("rebuild applied %d events, scan saw %d", applied, seen)
		}
		rebuildTime += took
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			maxRSS = max(maxRSS, ru.Maxrss)
		}
	}
	iters := float64(b.N)
	scanRate := float64(seen) * iters / scanTime.Seconds()
	rebuildRate := float64(seen) * iters / rebuildTime.Seconds()
	b.ReportMetric(scanRate, "scan-events/s")
	b.ReportMetric(rebuildRate, "rebuild-events/s")
	b.ReportMetric(rebuildRate/scanRate, "rebuild/scan")
	b.ReportMetric(float64(maxRSS)/1024, "rebuild-peak-RSS-MB")
}

// parseChildReport finds the child's line "rebuilt <events> <duration>".
func parseChildReport(out string) (int, time.Duration, error) {
	var f []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "rebuilt ") {
			f = strings.Fields(l)
		}
	}
	if len(f) != 3 {
		return 0, 0, fmt.Errorf("no line \"rebuilt <events> <duration>\"")
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, err
	}
	d, err := time.ParseDuration(f[2])
	return n, d, err
}

// TestRebuildBenchChild is BenchmarkRebuild's child process: it rebuilds
// account_status on the data directory it is given and prints
// "rebuilt <events> <duration>". Without the variable it does nothing.
func TestRebuildBenchChild(t *testing.T) {
	dir := os.Getenv("FCAUDIT_PROJECTIONS_REBUILD_CHILD")
	if dir == "" {
		t.Skip("BenchmarkRebuild's child process")
	}
	st, err := sqlite.Open(filepath.Join(dir, sqlite.FileName), sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := Open(filepath.Join(dir, FileName), st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var applied int
	t0 := time.Now()
	if err := r.Rebuild(context.Background(), AccountStatusName, store.Filter{}, func(k int) { applied = k }); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("rebuilt %d %s\n", applied, time.Since(t0))
}

// seedLog writes nEvents fcevents bodies (~3,000 bytes) over nAccounts
// accounts, each account's history in one Append (a created event, then
// refreshes and lifecycle events an hour or more apart, one in ten
// delivered late: older than its predecessor), from several goroutines so
// the store group-commits them.
func seedLog(tb testing.TB, path string, nEvents, nAccounts int) {
	tb.Helper()
	st, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	gen := &fcevents.Generator{Rand: mrand.New(mrand.NewPCG(42, 1)), Size: 3000}
	types := fc.Types()[1:]
	base := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC).Unix()
	var next atomic.Int64
	inParallel(tb, 16, func(w int) error {
		rng := mrand.New(mrand.NewPCG(uint64(w), 7))
		for {
			a := int(next.Add(1) - 1)
			if a >= nAccounts {
				return nil
			}
			k := nEvents / nAccounts
			if a < nEvents%nAccounts {
				k++
			}
			acct := fmt.Sprintf("fca_bench%015d", a)
			created := base + rng.Int64N(7*24*3600)
			batch := make([]store.Event, k)
			for i := range k {
				typ := fc.TypeCreated
				c := created
				if i > 0 {
					typ = types[rng.IntN(len(types))]
					created += 3600 + rng.Int64N(24*3600)
					c = created
					if rng.IntN(10) == 0 {
						c -= 48 * 3600 // delivered late
					}
				}
				ev, err := webhookEvent(gen.Event(typ, acct, c), time.Unix(created+2, 0))
				if err != nil {
					return err
				}
				batch[i] = ev
			}
			if _, err := st.Append(context.Background(), fc.AccountStream(acct), store.AnyRevision, batch...); err != nil {
				return err
			}
		}
	})
	if err := st.Close(); err != nil {
		tb.Fatal(err)
	}
}

// webhookEvent wraps a generated body as the event ingest would append.
func webhookEvent(body []byte, receivedAt time.Time) (store.Event, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return store.Event{}, err
	}
	return store.Event{ID: env.ID, Type: env.Type, Data: body, ReceivedAt: receivedAt, Created: env.Created,
		Livemode: env.Livemode, APIVersion: env.Version, Source: store.SourceWebhook}, nil
}
