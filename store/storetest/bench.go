package storetest

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/store"
)

// benchBody is ~3 KiB, the size of a typical Financial Connections webhook.
var benchBody = func() []byte {
	b := make([]byte, 3072)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	b[0], b[len(b)-1] = '{', '}'
	return b
}()

func benchEvent(id string) store.Event {
	return store.Event{
		ID: id, Type: fc.TypeRefreshedBalance, Data: benchBody,
		ReceivedAt: time.Now(), Created: time.Now().Unix(), APIVersion: "2023-10-16", Source: store.SourceWebhook,
	}
}

// Bench measures a backend: AppendSerial (one event per call from one
// goroutine, i.e. one commit each), AppendParallel64 (64 concurrent callers,
// as ingest sees under load) and ReadAll (full scans, with and without data).
// Each sub-benchmark reports events/s.
func Bench(b *testing.B, be Backend) {
	b.Run("AppendSerial", func(b *testing.B) {
		s := be.New(b)
		p := uniq(b)
		ctx := context.Background()
		b.ReportAllocs()
		b.SetBytes(int64(len(benchBody)))
		b.ResetTimer()
		for i := range b.N {
			if _, err := s.Append(ctx, fmt.Sprintf(fc.AccountStreamPrefix+"%s-%d", p, i%100), store.AnyRevision, benchEvent(fmt.Sprintf("evt_%s_%d", p, i))); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("AppendParallel64", func(b *testing.B) {
		s := be.New(b)
		p := uniq(b)
		ctx := context.Background()
		var n atomic.Int64
		b.ReportAllocs()
		b.SetBytes(int64(len(benchBody)))
		b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				if _, err := s.Append(ctx, fmt.Sprintf(fc.AccountStreamPrefix+"%s-%d", p, i%1000), store.AnyRevision, benchEvent(fmt.Sprintf("evt_%s_%d", p, i))); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("ReadAll", func(b *testing.B) {
		const total = 20000
		s := be.New(b)
		p := uniq(b)
		prefix := fc.AccountStreamPrefix + p + "-"
		ctx := context.Background()
		batch := make([]store.Event, 0, 100)
		for i := range total {
			batch = append(batch, benchEvent(fmt.Sprintf("evt_%s_%d", p, i)))
			if len(batch) == cap(batch) {
				if _, err := s.Append(ctx, fmt.Sprintf("%s%d", prefix, i/100), store.NoStream, batch...); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		for _, withoutData := range []bool{false, true} {
			name := "Data"
			if withoutData {
				name = "WithoutData"
			}
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					var after store.Position
					n := 0
					for {
						page, err := s.ReadAll(ctx, store.ReadOptions{After: after, Limit: 1000, WithoutData: withoutData, Filter: store.Filter{StreamPrefix: prefix}})
						if err != nil {
							b.Fatal(err)
						}
						if len(page) == 0 {
							break
						}
						n += len(page)
						after = page[len(page)-1].Position
					}
					if n != total {
						b.Fatalf("scan read %d events, want %d", n, total)
					}
				}
				b.ReportMetric(float64(b.N)*total/b.Elapsed().Seconds(), "events/s")
			})
		}
	})
}
