package projections

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

// BenchmarkRebuild measures a full rebuild of account_status against a
// plain full scan (ReadAll paging, bodies included) of the same SQLite log,
// in the same run. FCAUDIT_BENCH_EVENTS sets N (default 50,000); accounts
// are N/10. Reported: events/s of both, their ratio, and the process's peak
// RSS (ru_maxrss, which includes generating the log).
//
//	FCAUDIT_BENCH_EVENTS=1000000 go test -run '^$' -bench Rebuild -benchtime 1x ./projections
func BenchmarkRebuild(b *testing.B) {
	n := 50_000
	if v := os.Getenv("FCAUDIT_BENCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("FCAUDIT_BENCH_EVENTS=%q: want a positive integer", v)
		}
	}
	dir := b.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, sqlite.FileName), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	appendHistory(b, st, genHistory(b, 42, n, max(1, n/10)))
	b.Logf("generated %d events over %d accounts in %s", n, max(1, n/10), time.Since(start).Round(time.Millisecond))
	st.Close()
	// Read through a read-only handle, as `fcaudit projections rebuild`
	// does while serve runs.
	ro, err := sqlite.Open(filepath.Join(dir, sqlite.FileName), sqlite.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer ro.Close()
	r, err := Open(filepath.Join(dir, FileName), ro, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()

	var scanTime, rebuildTime time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		var after store.Position
		seen := 0
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
		if seen != n {
			b.Fatalf("scan saw %d events, want %d", seen, n)
		}
		t1 := time.Now()
		var applied int
		if err := r.Rebuild(ctx, AccountStatusName, store.Filter{}, func(k int) { applied = k }); err != nil {
			b.Fatal(err)
		}
		rebuildTime += time.Since(t1)
		if applied != n {
			b.Fatalf("rebuild applied %d events, want %d", applied, n)
		}
	}
	iters := float64(b.N)
	scanRate := float64(n) * iters / scanTime.Seconds()
	rebuildRate := float64(n) * iters / rebuildTime.Seconds()
	b.ReportMetric(scanRate, "scan-events/s")
	b.ReportMetric(rebuildRate, "rebuild-events/s")
	b.ReportMetric(rebuildRate/scanRate, "rebuild/scan")
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MB")
	}
}
