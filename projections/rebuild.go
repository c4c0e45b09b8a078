package projections

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/store"
)

const (
	// rebuildPage is the number of events read per ReadAll page: small
	// enough that pages in flight stay a few MB, large enough to amortise
	// the query.
	rebuildPage = 5000
	// rebuildCacheMax bounds the account states a rebuild keeps in memory
	// (~0.7 KB each); beyond it they are flushed and the cache starts over.
	rebuildCacheMax = 200_000
	// rebuildReaders is the most position ranges a rebuild reads at once.
	rebuildReaders = 4
)

// Rebuild rebuilds projection name from position 0 into a fresh table and,
// once it has caught up with the log, swaps it in atomically together with
// its checkpoint (one transaction): queries and the live runner (in this
// process or another) move to the new table at once, and the old table is
// dropped. It is safe to run while serve runs.
//
// filter narrows the events folded (ANDed with the projection's own
// selection; the zero Filter means all): the new table then holds the fold
// of the selected events up to the log's head, and the live runner adds
// every later event as usual. progress, if not nil, is called after each
// page with the number of events applied so far.
//
// A rebuild that fails or is cancelled leaves the live table untouched. When
// another rebuild of the same projection starts meanwhile, the older one
// stops with ErrRebuildSuperseded.
func (r *Runner) Rebuild(ctx context.Context, name string, filter store.Filter, progress func(n int)) error {
	if r.wdb == nil {
		return ErrReadOnly
	}
	if !validName(name) {
		return unknownProjection(name)
	}
	f, some := mergeFilter(accountFilter, filter)
	table, err := r.startBuild(ctx, name)
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", name, err)
	}
	b := &builder{r: r, name: name, table: table, filter: f, cache: make(map[string]*buildEntry),
		cacheMax: rebuildCacheMax, types: make(map[string]string), refolds: make(map[string]struct{})}
	if r.opts.rebuildCacheMax > 0 {
		b.cacheMax = r.opts.rebuildCacheMax
	}
	if err := b.run(ctx, some, progress); err != nil {
		r.abandonBuild(name, table)
		return fmt.Errorf("rebuild %s: %w", name, err)
	}
	r.logger.Info("rebuilt projection", "projection", name, "table", table, "events", b.applied, "checkpoint", b.pos)
	return nil
}

// mergeFilter ANDs the projection's filter with a caller's. It reports
// false when no event can match both (disjoint stream prefixes).
func mergeFilter(own, sel store.Filter) (store.Filter, bool) {
	f := sel
	switch {
	case sel.StreamPrefix == "" || strings.HasPrefix(own.StreamPrefix, sel.StreamPrefix):
		f.StreamPrefix = own.StreamPrefix
	case strings.HasPrefix(sel.StreamPrefix, own.StreamPrefix):
	default:
		return f, false
	}
	return f, true
}

// startBuild claims a fresh table for a rebuild, dropping the table of an
// abandoned (or concurrent, which then fails at its swap) one.
func (r *Runner) startBuild(ctx context.Context, name string) (string, error) {
	tx, err := r.wdb.BeginTx(ctx, nil)
	if err != nil {
		return "", err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	c, err := readCatalog(ctx, tx, name)
	if err != nil {
		return "", err
	}
	if c.BuildTable.Valid {
		if _, err := tx.ExecContext(ctx, `DROP TABLE IF EXISTS `+c.BuildTable.String); err != nil {
			return "", err
		}
	}
	table := tableName(name, c.NextSeq)
	if _, err := tx.ExecContext(ctx, `DROP TABLE IF EXISTS `+table); err != nil {
		return "", err
	}
	if err := createAccountTable(ctx, tx, table); err != nil {
		return "", err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE projection_catalog SET build_table = ?, next_seq = next_seq + 1 WHERE name = ?`,
		table, name); err != nil {
		return "", err
	}
	return table, tx.Commit()
}

// abandonBuild drops a failed rebuild's table if it is still the current
// build (best effort: startBuild also cleans up).
func (r *Runner) abandonBuild(name, table string) {
	ctx := context.Background()
	tx, err := r.wdb.BeginTx(ctx, nil)
	if err != nil {
		return
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	c, err := readCatalog(ctx, tx, name)
	if err != nil || c.BuildTable.String != table {
		return
	}
	_, _ = tx.ExecContext(ctx, `DROP TABLE IF EXISTS `+table)
	_, _ = tx.ExecContext(ctx, `UPDATE projection_catalog SET build_table = NULL WHERE name = ?`, name)
	_ = tx.Commit()
}

// buildEntry is one account's state during a rebuild. The fold reads
// metadata only: s holds the counters, and cand the best-ranked event seen
// so far when it outranks s's snapshot (pending), whose body is read only
// when the entry is written (finalize): one body per account instead of one
// per event.
type buildEntry struct {
	s       AccountStatus
	cand    rank
	candID  string
	pending bool
	dirty   bool
}

// builder folds the log into a build table. The build table is written by
// this builder only, so its in-memory cache is authoritative; rows are
// read back only after the cache was flushed and cleared.
//
// What the builder does per event (count, and keep the best rank) does not
// depend on the order events come in, so the log is read in several
// position ranges at once.
type builder struct {
	r        *Runner
	name     string
	table    string
	filter   store.Filter
	cache    map[string]*buildEntry
	cacheMax int
	evicted  bool
	// types interns event types: every account's LastEventTimes shares
	// the few type strings instead of holding one copy per event read.
	types map[string]string
	// refolds are accounts whose best-ranked event is unreadable: they
	// are folded again per event (refold) once the fold is complete.
	refolds map[string]struct{}
	pos     store.Position // the greatest position folded
	applied int
	lastRcv int64 // received_at of the event at pos
}

// page is one metadata-only ReadAll page.
type page struct {
	evs []store.RecordedEvent
	err error
}

func (b *builder) run(ctx context.Context, some bool, progress func(int)) error {
	if some {
		head, err := b.r.log.Head(ctx)
		if err != nil {
			return err
		}
		if err := b.foldTo(ctx, head, progress); err != nil {
			return err
		}
		b.pos = max(b.pos, head)
	}
	if err := b.flush(ctx); err != nil {
		return err
	}
	if err := createAccountIndexes(ctx, b.r.wdb, b.table); err != nil {
		return fmt.Errorf("index %s: %w", b.table, err)
	}
	// Whatever arrived meanwhile: catch up, then swap. The swap needs a
	// checkpoint no older than the live table's: the live runner may be
	// idle past events the build table lacks (it applied them while this
	// rebuild was writing), and would never look back. So when the live
	// table is ahead, catch up again and retry.
	for {
		head, err := b.r.log.Head(ctx)
		if err != nil {
			return err
		}
		if some {
			for {
				p := b.r.readPage(ctx, b.filter, b.pos)
				if p.err != nil {
					return p.err
				}
				if len(p.evs) == 0 {
					break
				}
				if err := b.fold(ctx, p.evs); err != nil {
					return err
				}
			}
			if progress != nil {
				progress(b.applied)
			}
		}
		b.pos = max(b.pos, head)
		if err := b.flush(ctx); err != nil {
			return err
		}
		if err := b.refoldAll(ctx); err != nil {
			return err
		}
		if b.r.opts.beforeSwap != nil {
			b.r.opts.beforeSwap()
		}
		if done, err := b.swap(ctx); done || err != nil {
			return err
		}
	}
}

// foldTo folds every selected event up to head, reading the log in a few
// position ranges at once (pages of metadata only) while this goroutine
// folds them.
func (b *builder) foldTo(ctx context.Context, head store.Position, progress func(int)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := store.Position(min(rebuildReaders, max(1, runtime.GOMAXPROCS(0))))
	pages := make(chan page, n)
	var wg sync.WaitGroup
	for i := range n {
		lo, hi := head/n*i, head/n*(i+1)
		if i == n-1 {
			hi = head
		}
		wg.Go(func() { b.r.readRange(ctx, b.filter, lo, hi, pages) })
	}
	go func() {
		wg.Wait()
		close(pages)
	}()
	for p := range pages {
		if p.err != nil {
			return p.err
		}
		if err := b.fold(ctx, p.evs); err != nil {
			return err
		}
		if progress != nil {
			progress(b.applied)
		}
	}
	return ctx.Err()
}

// readRange sends the pages of events with after < position <= upTo.
func (r *Runner) readRange(ctx context.Context, f store.Filter, after, upTo store.Position, out chan<- page) {
	for after < upTo {
		p := r.readPage(ctx, f, after)
		if p.err == nil && len(p.evs) == 0 {
			return
		}
		if p.err == nil {
			after = p.evs[len(p.evs)-1].Position
			if after > upTo {
				i, _ := slices.BinarySearchFunc(p.evs, upTo+1, func(e store.RecordedEvent, pos store.Position) int {
					return cmp.Compare(e.Position, pos)
				})
				p.evs = p.evs[:i]
			}
		}
		select {
		case out <- p:
		case <-ctx.Done():
			return
		}
		if p.err != nil {
			return
		}
	}
}

// readPage reads one page of metadata: the fold needs no body but the
// winners', which finalize reads.
func (r *Runner) readPage(ctx context.Context, f store.Filter, after store.Position) page {
	evs, err := r.log.ReadAll(ctx, store.ReadOptions{After: after, Limit: rebuildPage, Filter: f, WithoutData: true})
	return page{evs: evs, err: err}
}

// fold applies a page of metadata to the cache (count, and remember the
// best rank: the steps of Apply but decoding); when the cache is full it
// is flushed.
func (b *builder) fold(ctx context.Context, evs []store.RecordedEvent) error {
	var missing []string
	if b.evicted {
		for i := range evs {
			if _, ok := b.cache[fc.AccountOf(evs[i].Stream)]; !ok {
				missing = append(missing, fc.AccountOf(evs[i].Stream))
			}
		}
		if err := b.loadMissing(ctx, missing); err != nil {
			return err
		}
	}
	for i := range evs {
		ev := &evs[i]
		if t, ok := b.types[ev.Type]; ok {
			ev.Type = t
		} else {
			b.types[ev.Type] = ev.Type
		}
		id := fc.AccountOf(ev.Stream)
		e := b.cache[id]
		if e == nil {
			e = new(buildEntry)
			b.cache[strings.Clone(id)] = e
		}
		if err := e.s.count(ev); err != nil {
			return err
		}
		if r := rankOf(ev); e.s.outranksSnapshot(r) && (!e.pending || r.above(e.cand)) {
			e.cand, e.candID, e.pending = r, ev.ID, true
		}
		e.dirty = true
		b.applied++
		if ev.Position > b.pos {
			b.pos, b.lastRcv = ev.Position, ev.ReceivedAt.UnixMicro()
		}
	}
	if len(b.cache) >= b.cacheMax {
		if err := b.flush(ctx); err != nil {
			return err
		}
		clear(b.cache)
		b.evicted = true
	}
	return nil
}

func (b *builder) loadMissing(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	tx, err := b.r.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	get, err := tx.PrepareContext(ctx, fmt.Sprintf(getRowQuery, b.table))
	if err != nil {
		return err
	}
	defer get.Close()
	rows := &accountRows{get: get}
	for _, id := range ids {
		if _, ok := b.cache[id]; ok {
			continue
		}
		s, _, err := rows.load(ctx, id)
		if err != nil {
			return err
		}
		b.cache[id] = &buildEntry{s: *s}
	}
	return nil
}

// finalize reads the body of every pending entry's candidate and takes its
// data.object as the snapshot, as Apply would have: the candidate outranks
// every event folded, so nothing is left above it. The reads go in
// position order, on all cores (each costs a query and a decode).
func (b *builder) finalize(ctx context.Context) error {
	var todo []*buildEntry
	for _, e := range b.cache {
		if e.pending {
			todo = append(todo, e)
		}
	}
	slices.SortFunc(todo, func(x, y *buildEntry) int { return cmp.Compare(x.cand.Position, y.cand.Position) })
	workers := min(runtime.GOMAXPROCS(0), max(1, len(todo)/64))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(todo) && errs[w] == nil && ctx.Err() == nil; i += workers {
				errs[w] = b.readWinner(ctx, todo[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, e := range todo {
		if e.pending { // unreadable: see readWinner
			e.pending = false
			b.refolds[e.s.ID] = struct{}{}
		}
	}
	return nil
}

// eventByID is the store.Store method a Log may have: a point read by id
// is cheaper than a positional ReadAll (SQLite: one indexed lookup).
type eventByID interface {
	EventByID(ctx context.Context, id string) (store.RecordedEvent, error)
}

// readWinner resolves one pending entry: the candidate's data.object
// becomes the snapshot. When it is unreadable (rare), the entry stays
// pending: the snapshot is then the best readable event below it, and which
// unreadable ones count depends on that, so finalize marks the account for
// refold. Called concurrently for distinct entries.
func (b *builder) readWinner(ctx context.Context, e *buildEntry) error {
	var (
		ev  store.RecordedEvent
		err error
	)
	if g, ok := b.r.log.(eventByID); ok {
		ev, err = g.EventByID(ctx, e.candID)
	} else {
		var evs []store.RecordedEvent
		evs, err = b.r.log.ReadAll(ctx, store.ReadOptions{After: e.cand.Position - 1, Limit: 1, Filter: b.filter})
		if err == nil && len(evs) == 1 {
			ev = evs[0]
		}
	}
	if err != nil {
		return fmt.Errorf("read snapshot of %s: %w", e.s.ID, err)
	}
	if ev.ID != e.candID || ev.Position != e.cand.Position {
		return fmt.Errorf("read snapshot of %s: event %s at position %d not found", e.s.ID, e.candID, e.cand.Position)
	}
	if obj, err := decodeAccount(ev.Data); err == nil {
		e.s.setSnapshot(&ev, obj)
		e.pending = false
	}
	return nil
}

// refoldAll folds each account whose best-ranked event was unreadable
// again from its stream, per event with Apply, keeping the events this
// rebuild selects up to its position, and writes the results.
func (b *builder) refoldAll(ctx context.Context) error {
	if len(b.refolds) == 0 {
		return nil
	}
	clear(b.cache)
	for id := range b.refolds {
		evs, err := b.r.log.ReadStream(ctx, fc.AccountStream(id), 0, 0)
		if err != nil {
			return fmt.Errorf("refold %s: %w", id, err)
		}
		kept := evs[:0]
		for i := range evs {
			if evs[i].Position <= b.pos && b.filter.Match(&evs[i]) {
				kept = append(kept, evs[i])
			}
		}
		s, err := FoldAccount(kept)
		if err != nil || s == nil {
			return fmt.Errorf("refold %s: %d events, %v", id, len(kept), err)
		}
		b.cache[id] = &buildEntry{s: *s, dirty: true}
	}
	clear(b.refolds)
	// Other accounts' states are in the table only from now on.
	b.evicted = true
	return b.flush(ctx)
}

// flush resolves the pending snapshots and writes the dirty states to the
// build table in one transaction, in id order (appends to the primary key
// index rather than random inserts).
func (b *builder) flush(ctx context.Context) error {
	if err := b.finalize(ctx); err != nil {
		return err
	}
	dirty := make([]*AccountStatus, 0, len(b.cache))
	for _, e := range b.cache {
		if e.dirty {
			dirty = append(dirty, &e.s)
			e.dirty = false
		}
	}
	slices.SortFunc(dirty, func(x, y *AccountStatus) int { return strings.Compare(x.ID, y.ID) })
	tx, err := b.r.wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	rows, err := prepareAccountRows(ctx, tx, b.table)
	if err != nil {
		return err
	}
	defer rows.Close()
	for _, s := range dirty {
		if err := rows.store(ctx, s, nil); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// swap makes the build table live, with its checkpoint, in one
// transaction; it does not (false) when the live table's checkpoint is
// ahead of the build's. The transaction holds the write lock, so the live
// runner cannot move meanwhile: afterwards it either continues exactly
// where the build table ends or, behind it, finds the checkpoint moved at
// its next batch and resubscribes.
func (b *builder) swap(ctx context.Context) (bool, error) {
	tx, err := b.r.wdb.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	c, err := readCatalog(ctx, tx, b.name)
	if err != nil {
		return false, err
	}
	if c.BuildTable.String != b.table {
		return false, ErrRebuildSuperseded
	}
	if c.Checkpoint > b.pos {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE projection_catalog SET live_table = ?, checkpoint = ?, generation = generation + 1,
		events_applied = ?, last_received_at = ?, updated_at = ?, build_table = NULL WHERE name = ?`,
		b.table, int64(b.pos), b.applied, b.lastRcv, b.r.now().UnixMicro(), b.name); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, `DROP TABLE IF EXISTS `+c.LiveTable); err != nil {
		return false, err
	}
	return true, tx.Commit()
}
