package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/store"
)

// benchEvent is a 3 KiB webhook event with provenance, as ingest stores it.
func benchEvent(id string) store.Event {
	body := make([]byte, 3072)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	return store.Event{
		ID: id, Type: fc.TypeRefreshedBalance, Data: body,
		ReceivedAt: now, Created: now.Unix(), APIVersion: "2023-10-16", Source: store.SourceWebhook,
		Provenance: &store.Provenance{SignatureHeader: "t=1700000000,v1=" + fmt.Sprintf("%064x", 7), SignedAt: 1700000000,
			SecretFingerprint: "0011223344556677", VerifiedAt: now},
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkServeShape appends from 64 goroutines (one event each, as ingest
// does) while one subscriber follows the log with a filter, as serve's live
// projection does. It reports events/s and process CPU µs per event, the
// figure that decides whole-service throughput on a CPU-bound machine.
func BenchmarkServeShape(b *testing.B) {
	s := openTest(b, filepath.Join(b.TempDir(), FileName), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	var seen atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- s.Subscribe(ctx, 0, store.Filter{StreamPrefix: fc.AccountStreamPrefix}, func(_ context.Context, batch []store.RecordedEvent) error {
			seen.Add(int64(len(batch)))
			return nil
		})
	}()
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, err := s.Append(ctx, fmt.Sprintf("fcaccount-%d", i%1000), store.AnyRevision, benchEvent(fmt.Sprintf("evt_%d", i))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	for seen.Load() < n.Load() {
		runtime.Gosched()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/event")
	cancel()
	<-done
}

// BenchmarkRead reads 5,000 events with provenance: full scans with and
// without bodies, and EventByID.
func BenchmarkRead(b *testing.B) {
	const total = 5000
	s := openTest(b, filepath.Join(b.TempDir(), FileName), Options{})
	ctx := context.Background()
	for i := 0; i < total; i += 100 {
		batch := make([]store.Event, 100)
		for j := range batch {
			batch[j] = benchEvent(fmt.Sprintf("evt_%d", i+j))
		}
		if _, err := s.Append(ctx, fmt.Sprintf("fcaccount-%d", i/100), store.NoStream, batch...); err != nil {
			b.Fatal(err)
		}
	}
	for _, withoutData := range []bool{false, true} {
		name := "ReadAllData"
		if withoutData {
			name = "ReadAllWithoutData"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var after store.Position
				for {
					page, err := s.ReadAll(ctx, store.ReadOptions{After: after, Limit: 1000, WithoutData: withoutData, Filter: store.Filter{StreamPrefix: "fcaccount-"}})
					if err != nil {
						b.Fatal(err)
					}
					if len(page) == 0 {
						break
					}
					after = page[len(page)-1].Position
				}
			}
			b.ReportMetric(float64(b.N)*total/b.Elapsed().Seconds(), "events/s")
		})
	}
	b.Run("EventByID", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := s.EventByID(ctx, fmt.Sprintf("evt_%d", i%total)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
