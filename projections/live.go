package projections

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/logkey"
	"github.com/fcaudit/fcaudit/store"
)

// Defaults of the live projection's Options.
const (
	// DefaultBatchWindow: under load, one commit per 200 ms; a lone event
	// is applied within 200 ms of its delivery.
	DefaultBatchWindow = 200 * time.Millisecond
	// DefaultMaxBatchWindow: above HeavyRate the window stretches to 1 s.
	DefaultMaxBatchWindow = time.Second
	// HeavyRate (events a second) is the delivery rate above which the
	// window stretches (see Options.MaxBatchWindow).
	HeavyRate = 5000
	// DefaultBatchMax: at most ~35 MB of bodies held (3.5 KB each), room
	// for one stretched window at 10,000 events a second.
	DefaultBatchMax = 10_000
	// DefaultCacheAccounts: ~15 MB of states at most (a larger cache kept
	// serve above 150 MB RSS after catching up on 100,000 accounts).
	DefaultCacheAccounts = 20_000
)

// follow subscribes from checkpoint `from` and applies what is delivered,
// gathering deliveries for up to BatchWindow (or BatchMax events) into one
// transaction, until ctx ends or something fails. The subscription runs in
// its own goroutine and hands batches over, so the store reads the next
// events while the previous ones are applied; the batches are held until
// their transaction commits (the store does not reuse a delivered slice).
// applied is called after each commit.
func (r *Runner) follow(ctx context.Context, from store.Position, applied func()) error {
	ctx, cancel := context.WithCancel(ctx)
	batches := make(chan []store.RecordedEvent)
	subDone := make(chan error, 1)
	go func() {
		subDone <- r.log.Subscribe(ctx, from, accountFilter, func(ctx context.Context, b []store.RecordedEvent) error {
			select {
			case batches <- b:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	stopped := false
	defer func() {
		cancel()
		if !stopped {
			<-subDone
		}
	}()

	expected := from
	var (
		pending [][]store.RecordedEvent
		n       int
		timer   = time.NewTimer(time.Hour)
		window  <-chan time.Time // nil while nothing is pending
		win     = r.opts.BatchWindow
		// settled fires a second after a full BatchMax batch was applied.
		settled <-chan time.Time
	)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case b := <-batches:
			pending = append(pending, b)
			n += len(b)
			if win > 0 && n < r.opts.BatchMax {
				if window == nil {
					timer.Reset(win)
					window = timer.C
				}
				continue
			}
		case <-window:
		case <-settled:
			settled = nil
			if n < r.opts.BatchMax/2 {
				// Caught up: the full batches' memory is garbage now, but
				// an idle process would keep it for minutes (no
				// allocations, no GC). Hand it back to the OS once.
				debug.FreeOSMemory()
			}
			continue // what is pending waits for its window
		case err := <-subDone:
			stopped = true
			return err
		}
		timer.Stop()
		window = nil
		cp, err := r.applyLive(ctx, pending, expected)
		if err != nil {
			return err
		}
		expected = cp
		win = r.nextWindow(win, n)
		if n >= r.opts.BatchMax {
			// Catching up (a start on a long log, after a rebuild): look
			// again in a second.
			settled = time.After(time.Second)
		}
		pending, n = nil, 0
		applied()
	}
}

// nextWindow returns the window to use after one of win that gathered n
// events: MaxBatchWindow when they came faster than HeavyRate, BatchWindow
// again once they come at under a quarter of it, else win. (Going straight
// to the long window matters for bursts: a load that lasts a few seconds
// would spend them ramping up.)
func (r *Runner) nextWindow(win time.Duration, n int) time.Duration {
	if win <= 0 {
		return win
	}
	heavy := HeavyRate * win.Seconds()
	switch {
	case float64(n) >= heavy:
		return r.opts.MaxBatchWindow
	case float64(n) < heavy/4:
		return r.opts.BatchWindow
	}
	return win
}

// liveCache holds account states as committed to the live table, so that
// the live projection does not read back and decode the rows it wrote. It is
// authoritative because the live runner is the only writer of the live
// table: it belongs to one table and generation, and to the checkpoint the
// runner last committed (a catalog showing another checkpoint means someone
// else wrote, and the runner resubscribes and resets it). States are
// changed in place while a batch is applied, so any failed batch resets it.
type liveCache struct {
	max        int
	table      string
	generation int64
	states     map[string]*AccountStatus
	// complete: every row of the table is in states, so a missing id has
	// no row (no SELECT needed). True for a table found empty, until the
	// first eviction.
	complete bool
}

func (c *liveCache) reset() {
	c.table, c.generation, c.states, c.complete = "", 0, nil, false
}

func (c *liveCache) put(s *AccountStatus) {
	if c.max <= 0 {
		return
	}
	if _, ok := c.states[s.ID]; !ok && len(c.states) >= c.max {
		for id := range c.states { // an arbitrary victim
			delete(c.states, id)
			c.complete = false
			break
		}
	}
	c.states[s.ID] = s
}

// liveAccount is one account's work in a batch: its state (counted up to
// the batch's last event) and the batch's events that may take its
// snapshot.
type liveAccount struct {
	s     *AccountStatus
	cands []*store.RecordedEvent
	// stored: the row's columns before this batch, nil when it has no row.
	stored *rowColumns
}

// applyLive applies delivered batches to the live table in one transaction
// with the new checkpoint. expected is the checkpoint the subscription
// started from (or last committed); when the catalog holds another one, a
// rebuild swapped tables in between (or another runner applied events) and
// the batches are dropped (errRestart).
//
// Per account it applies Apply's steps: count every event, then offer the
// events that outrank the snapshot from the best down, so a body is decoded
// only above the final snapshot (once per account and batch in live order).
func (r *Runner) applyLive(ctx context.Context, batches [][]store.RecordedEvent, expected store.Position) (cp store.Position, err error) {
	defer func() {
		if err != nil {
			r.live.reset()
		}
	}()
	tx, err := r.wdb.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("apply batch: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	c, err := readCatalog(ctx, tx, AccountStatusName)
	if err != nil {
		return 0, fmt.Errorf("apply batch: %w", err)
	}
	if c.Checkpoint != expected {
		return 0, errRestart
	}
	lc := &r.live
	if lc.states == nil || lc.table != c.LiveTable || lc.generation != c.Generation {
		lc.reset()
		lc.table, lc.generation, lc.states = c.LiveTable, c.Generation, make(map[string]*AccountStatus)
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM `+c.LiveTable+` LIMIT 1)`).Scan(&one); err != nil {
			return 0, fmt.Errorf("apply batch: %w", err)
		}
		lc.complete = one == 0 && lc.max > 0
	}
	rows, err := prepareAccountRows(ctx, tx, c.LiveTable)
	if err != nil {
		return 0, fmt.Errorf("apply batch: %w", err)
	}
	defer rows.Close()
	// The per-row statements run without ctx's cancellation: given a
	// cancellable context the driver starts a watcher goroutine and installs
	// a progress handler for every statement (1.4 % of serve's CPU under
	// load, thousands of statements a batch). A batch is short; shutdown
	// cancels between batches and at BEGIN and COMMIT.
	rowCtx := context.WithoutCancel(ctx)

	accounts := make(map[string]*liveAccount)
	var (
		last    *store.RecordedEvent
		applied int
	)
	for _, batch := range batches {
		for i := range batch {
			ev := &batch[i]
			if ev.Position <= expected || (last != nil && ev.Position <= last.Position) {
				continue // cannot happen with a correct store; never apply twice
			}
			last = ev
			id := fc.AccountOf(ev.Stream)
			a := accounts[id]
			if a == nil {
				a = &liveAccount{s: lc.states[id]}
				switch {
				case a.s != nil: // cached states are as committed
					cols := columnsOf(a.s)
					a.stored = &cols
				case lc.complete:
					a.s = new(AccountStatus)
				default:
					if a.s, a.stored, err = rows.load(rowCtx, id); err != nil {
						return 0, fmt.Errorf("apply batch: %w", err)
					}
				}
				accounts[id] = a
			}
			if err := a.s.count(ev); err != nil {
				return 0, fmt.Errorf("apply batch: %w", err)
			}
			if a.s.outranksSnapshot(rankOf(ev)) {
				a.cands = append(a.cands, ev)
			}
			applied++
		}
	}
	if last == nil {
		return expected, nil
	}
	for _, a := range accounts {
		a.s.offerBest(a.cands, func(ev *store.RecordedEvent) {
			r.logger.Warn("event body is not a readable account; counted, not used as status", logkey.EventID, ev.ID)
		})
		if err := rows.store(rowCtx, a.s, a.stored); err != nil {
			return 0, fmt.Errorf("apply batch: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE projection_catalog SET checkpoint = ?, events_applied = events_applied + ?,
		last_received_at = ?, updated_at = ? WHERE name = ?`,
		int64(last.Position), applied, last.ReceivedAt.UnixMicro(), r.now().UnixMicro(), AccountStatusName); err != nil {
		return 0, fmt.Errorf("apply batch: save checkpoint: %w", err)
	}
	if r.opts.beforeCommit != nil {
		r.opts.beforeCommit()
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("apply batch: commit: %w", err)
	}
	for _, a := range accounts {
		lc.put(a.s)
	}
	r.setErr(nil)
	return last.Position, nil
}
