package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
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

// BenchmarkMerkleCost measures what the Merkle tree costs the append path:
// 64 goroutines append one 3 KiB event each (as ingest does) to two logs,
// one with the tree and one without, in alternating rounds of 1000 events
// (the order flips every round) so both see the same disk and CPU
// contention. It reports each mode's events/s and CPU µs per event and the
// ratios tree/no-tree (time-ratio > 1: the tree is slower).
func BenchmarkMerkleCost(b *testing.B) {
	const round = 1000
	type mode struct {
		s        *Store
		wall     time.Duration
		cpu      time.Duration
		appended int
	}
	ctx := context.Background()
	modes := [2]*mode{
		{s: openTest(b, filepath.Join(b.TempDir(), FileName), Options{})},
		{s: openTest(b, filepath.Join(b.TempDir(), FileName), Options{withoutTree: true})},
	}
	var seq atomic.Int64
	run := func(m *mode, n int) {
		var next atomic.Int64
		var wg sync.WaitGroup
		cpu0, t0 := cpuTime(), time.Now()
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(n) {
					i := seq.Add(1)
					if _, err := m.s.Append(ctx, fmt.Sprintf("fcaccount-%d", i%1000), store.AnyRevision, benchEvent(fmt.Sprintf("evt_%d", i))); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		m.wall += time.Since(t0)
		m.cpu += cpuTime() - cpu0
		m.appended += n
	}
	b.ResetTimer()
	for r := 0; modes[0].appended < b.N; r++ {
		n := min(round, b.N-modes[0].appended)
		first, second := modes[r%2], modes[1-r%2]
		run(first, n)
		run(second, n)
	}
	b.StopTimer()
	tree, plain := modes[0], modes[1]
	b.ReportMetric(float64(tree.appended)/tree.wall.Seconds(), "tree-events/s")
	b.ReportMetric(float64(plain.appended)/plain.wall.Seconds(), "no-tree-events/s")
	b.ReportMetric(float64(tree.cpu.Microseconds())/float64(tree.appended), "tree-cpu-µs/event")
	b.ReportMetric(float64(plain.cpu.Microseconds())/float64(plain.appended), "no-tree-cpu-µs/event")
	b.ReportMetric(tree.wall.Seconds()/plain.wall.Seconds(), "time-ratio")
	b.ReportMetric(float64(tree.cpu)/float64(plain.cpu), "cpu-ratio")
}

// BenchmarkMerkleProofs measures inclusion and consistency proofs (and the
// tree head) on a log of FCAUDIT_BENCH_PROOF_EVENTS events (default
// 100,000; docs/performance.md quotes 1,000,000), for random leaves and
// sizes. The log is filled with 100-event appends of small bodies.
func BenchmarkMerkleProofs(b *testing.B) {
	total := 100_000
	if v := os.Getenv("FCAUDIT_BENCH_PROOF_EVENTS"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			total = n
		}
	}
	ctx := context.Background()
	s := openTest(b, filepath.Join(b.TempDir(), FileName), Options{})
	batch := make([]store.Event, 0, 100)
	for i := 0; i < total; {
		batch = batch[:0]
		for j := 0; j < 100 && i < total; j, i = j+1, i+1 {
			id := fmt.Sprintf("evt_%d", i)
			e := benchEvent(id)
			e.Data = []byte(`{"id":"` + id + `"}`)
			batch = append(batch, e)
		}
		if _, err := s.Append(ctx, fmt.Sprintf("fcaccount-%d", i%1000), store.AnyRevision, batch...); err != nil {
			b.Fatal(err)
		}
	}
	n := uint64(total)
	rng := rand.New(rand.NewPCG(1, 1))
	b.Run("inclusion", func(b *testing.B) {
		for b.Loop() {
			size := 1 + rng.Uint64N(n)
			if _, err := s.InclusionProof(ctx, rng.Uint64N(size), size); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("consistency", func(b *testing.B) {
		for b.Loop() {
			to := 1 + rng.Uint64N(n)
			if _, err := s.ConsistencyProof(ctx, rng.Uint64N(to+1), to); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("tree-head", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.TreeHead(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
