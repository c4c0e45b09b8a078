// Command seedstore fills an embedded event log with realistic FC events
// directly through store/sqlite appends (no HTTP), for measuring `serve`'s
// start-up time and idle memory on a large store (docs/performance.md).
//
//	go run ./bench/seedstore -data-dir /tmp/big -events 1000000 -accounts 100000
//
// Each account gets events/accounts events (a created event, then a mix of
// refreshes and lifecycle events, in created order), appended one account
// per Append call from many goroutines so the writer group-commits them.
package main

import (
	"context"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/internal/fcevents"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

func main() {
	dir := flag.String("data-dir", "", "data directory (created; must not hold an event log yet)")
	events := flag.Int("events", 1000000, "events to append")
	accounts := flag.Int("accounts", 100000, "accounts to spread them over")
	size := flag.Int("size", 3072, "body size in bytes")
	workers := flag.Int("workers", 64, "concurrent appenders")
	flag.Parse()
	if err := run(*dir, *events, *accounts, *size, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "seedstore:", err)
		os.Exit(1)
	}
}

func run(dir string, events, accounts, size, workers int) error {
	if dir == "" || events <= 0 || accounts <= 0 || accounts > events {
		return fmt.Errorf("need -data-dir, and 0 < -accounts ≤ -events")
	}
	path := filepath.Join(dir, sqlite.FileName)
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists", path)
	}
	st, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	gen := &fcevents.Generator{Size: size}
	types := fc.Types()[1:4] // the refreshes
	start := time.Now()
	base := start.Add(-30 * 24 * time.Hour).Unix()
	var next, done atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	ctx := context.Background()
	for w := range workers {
		wg.Go(func() {
			r := mrand.New(mrand.NewPCG(uint64(w), 1))
			for {
				a := int(next.Add(1) - 1)
				if a >= accounts {
					return
				}
				n := events / accounts
				if a < events%accounts {
					n++
				}
				acct := gen.NewAccountID()
				created := base + r.Int64N(7*24*3600)
				batch := make([]store.Event, n)
				for i := range n {
					typ := fc.TypeCreated
					if i > 0 {
						typ = types[r.IntN(len(types))]
						created += 3600 + r.Int64N(24*3600)
					}
					body := gen.Event(typ, acct, created)
					env, err := fc.ParseEnvelope(body)
					if err != nil {
						errs <- err
						return
					}
					at := time.Unix(created+2, 0)
					batch[i] = store.Event{
						ID: env.ID, Type: env.Type, Data: body, ReceivedAt: at, Created: env.Created,
						Livemode: env.Livemode, APIVersion: env.APIVersion, Source: store.SourceWebhook,
						Provenance: &store.Provenance{SignatureHeader: fcevents.Sign(body, "whsec_seed", at),
							SignedAt: at.Unix(), SecretFingerprint: ingest.Fingerprint("whsec_seed"), VerifiedAt: at},
					}
				}
				if _, err := st.Append(ctx, fc.AccountStream(acct), store.AnyRevision, batch...); err != nil {
					errs <- err
					return
				}
				if d := done.Add(int64(n)); d/50000 != (d-int64(n))/50000 {
					el := time.Since(start)
					fmt.Fprintf(os.Stderr, "%d events in %s (%.0f/s)\n", d, el.Round(time.Second), float64(d)/el.Seconds())
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "appended %d events over %d accounts in %s\n", done.Load(), accounts, time.Since(start).Round(time.Second))
	return st.Close()
}
