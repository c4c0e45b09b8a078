package audit

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/store"
)

// benchEvents is the log size of BenchmarkVerifyVsScan: FCAUDIT_BENCH_EVENTS
// or a small default so `go test -bench` stays quick on a shared machine.
func benchEvents(b *testing.B) int {
	if v := os.Getenv("FCAUDIT_BENCH_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("FCAUDIT_BENCH_EVENTS=%q: want a positive integer", v)
		}
		return n
	}
	return 20000
}

// plainScan is the baseline: read the whole log with data, in pages, as any
// reader would, and touch nothing.
func plainScan(ctx context.Context, r LogReader) (int64, error) {
	var n int64
	var after store.Position
	for {
		page, err := r.ReadAll(ctx, store.ReadOptions{After: after, Limit: defaultPageSize})
		if err != nil {
			return n, err
		}
		if len(page) == 0 {
			return n, nil
		}
		n += int64(len(page))
		after = page[len(page)-1].Position
	}
}

// BenchmarkVerifyVsScan measures, in the same run and interleaved (the
// machine is noisy), a plain full scan of the log and Verify over it, and
// reports both rates and their ratio (the goal is verify/scan ≥ 0.5).
// Events are ~3 KiB FC bodies in 1 000 account streams.
func BenchmarkVerifyVsScan(b *testing.B) {
	n := benchEvents(b)
	accounts := min(1000, n)
	l := newTestLog(b, accounts, n/accounts, 3<<10)
	ro := openReadOnly(b, l.path)
	ctx := context.Background()
	for _, mode := range []struct {
		name string
		opts VerifyOptions
	}{{"full", VerifyOptions{}}, {"skip-metadata", VerifyOptions{SkipMetadata: true}},
		{"full+tree", VerifyOptions{Tree: ro}}} {
		b.Run(mode.name, func(b *testing.B) {
			b.ReportAllocs()
			var scanDur, verifyDur time.Duration
			var events int64
			for b.Loop() {
				start := time.Now()
				sn, err := plainScan(ctx, ro)
				if err != nil {
					b.Fatal(err)
				}
				scanDur += time.Since(start)
				start = time.Now()
				rep, err := Verify(ctx, ro, mode.opts)
				if err != nil {
					b.Fatal(err)
				}
				verifyDur += time.Since(start)
				if !rep.Intact() || rep.Events != sn {
					b.Fatalf("verify: intact %v, %d events; scan %d", rep.Intact(), rep.Events, sn)
				}
				events += sn
			}
			scanRate := float64(events) / scanDur.Seconds()
			verifyRate := float64(events) / verifyDur.Seconds()
			b.ReportMetric(scanRate, "scan-events/s")
			b.ReportMetric(verifyRate, "verify-events/s")
			b.ReportMetric(verifyRate/scanRate, "verify/scan")
		})
	}
}
