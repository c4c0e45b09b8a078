package projections

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/fcaudit/fcaudit/store"
)

const (
	// rebuildPage is the number of events read per ReadAll page: small
	// enough that pages in flight stay a few MB, large enough to amortise
	// the query.
	rebuildPage = 5000
	// rebuildCacheMax bounds the account states a rebuild keeps in memory
	// (~1 KB each); beyond it they are flushed and the cache starts over.
	rebuildCacheMax = 100_000
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
	b := &builder{r: r, name: name, table: table, cache: make(map[string]*buildEntry)}
	if err := b.run(ctx, f, some, progress); err != nil {
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

type buildEntry struct {
	s     AccountStatus
	dirty bool
}

// builder folds the log into a build table. The build table is written by
// this builder only, so its in-memory cache is authoritative; rows are
// read back only after the cache was flushed and cleared.
type builder struct {
	r       *Runner
	name    string
	table   string
	cache   map[string]*buildEntry
	evicted bool
	pos     store.Position
	applied int
	lastRcv int64
}

// page is one ReadAll page with data.object decoded ahead.
type page struct {
	evs  []store.RecordedEvent
	objs []*accountObject
	errs []error
	err  error
}

func (b *builder) run(ctx context.Context, f store.Filter, some bool, progress func(int)) error {
	if some {
		// Catch up in a pipeline: one goroutine reads and decodes pages
		// while this one folds the previous page.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		pages := make(chan page, 1)
		go b.r.readPages(ctx, f, 0, pages)
		for p := range pages {
			if p.err != nil {
				return p.err
			}
			if err := b.fold(ctx, p); err != nil {
				return err
			}
			if progress != nil {
				progress(b.applied)
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if err := b.flush(ctx); err != nil {
		return err
	}
	if err := createAccountIndexes(ctx, b.r.wdb, b.table); err != nil {
		return fmt.Errorf("index %s: %w", b.table, err)
	}
	// Whatever arrived while indexing: catch up once more, then swap with
	// a checkpoint no older than the head seen before this last pass, so
	// the live runner continues exactly after what the table holds.
	head, err := b.r.log.Head(ctx)
	if err != nil {
		return err
	}
	if some {
		for {
			p := b.r.readPage(ctx, f, b.pos)
			if p.err != nil {
				return p.err
			}
			if len(p.evs) == 0 {
				break
			}
			if err := b.fold(ctx, p); err != nil {
				return err
			}
		}
		if progress != nil {
			progress(b.applied)
		}
	}
	b.pos = max(b.pos, head)
	return b.swap(ctx)
}

// readPages sends decoded pages after `after` until the end of the log.
func (r *Runner) readPages(ctx context.Context, f store.Filter, after store.Position, out chan<- page) {
	defer close(out)
	for {
		p := r.readPage(ctx, f, after)
		if p.err == nil && len(p.evs) == 0 {
			return
		}
		select {
		case out <- p:
		case <-ctx.Done():
			return
		}
		if p.err != nil {
			return
		}
		after = p.evs[len(p.evs)-1].Position
	}
}

// readPage reads one page and decodes every event's data.object on all
// cores (decoding costs more than reading).
func (r *Runner) readPage(ctx context.Context, f store.Filter, after store.Position) page {
	evs, err := r.log.ReadAll(ctx, store.ReadOptions{After: after, Limit: rebuildPage, Filter: f})
	if err != nil {
		return page{err: err}
	}
	p := page{evs: evs, objs: make([]*accountObject, len(evs)), errs: make([]error, len(evs))}
	workers := min(runtime.GOMAXPROCS(0), max(1, len(evs)/256))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(evs); i += workers {
				p.objs[i], p.errs[i] = decodeAccount(evs[i].Data)
				evs[i].Data = nil // the body is no longer needed; let it go
			}
		}()
	}
	wg.Wait()
	return p
}

// fold applies a page to the cache; when the cache is full it is flushed.
func (b *builder) fold(ctx context.Context, p page) error {
	var missing []string
	if b.evicted {
		for i := range p.evs {
			if _, ok := b.cache[p.evs[i].Account()]; !ok {
				missing = append(missing, p.evs[i].Account())
			}
		}
		if err := b.loadMissing(ctx, missing); err != nil {
			return err
		}
	}
	for i := range p.evs {
		ev := &p.evs[i]
		id := ev.Account()
		e := b.cache[id]
		if e == nil {
			e = new(buildEntry)
			b.cache[id] = e
		}
		decErr := p.errs[i]
		if p.objs[i] == nil && decErr == nil {
			decErr = fmt.Errorf("no data.object")
		}
		if err := e.s.apply(ev, p.objs[i], decErr); err != nil {
			return err
		}
		e.dirty = true
		b.applied++
		b.pos = ev.Position
		b.lastRcv = ev.ReceivedAt.UnixMicro()
	}
	if len(b.cache) >= rebuildCacheMax {
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
	get, err := tx.PrepareContext(ctx, `SELECT state FROM `+b.table+` WHERE id = ?`)
	if err != nil {
		return err
	}
	defer get.Close()
	rows := &accountRows{get: get}
	for _, id := range ids {
		if _, ok := b.cache[id]; ok {
			continue
		}
		s, err := rows.load(ctx, id)
		if err != nil {
			return err
		}
		b.cache[id] = &buildEntry{s: *s}
	}
	return nil
}

// flush writes the dirty states to the build table in one transaction.
func (b *builder) flush(ctx context.Context) error {
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
	for _, e := range b.cache {
		if !e.dirty {
			continue
		}
		if err := rows.store(ctx, &e.s); err != nil {
			return err
		}
		e.dirty = false
	}
	return tx.Commit()
}

// swap makes the build table live, with its checkpoint, in one transaction.
func (b *builder) swap(ctx context.Context) error {
	if err := b.flush(ctx); err != nil {
		return err
	}
	tx, err := b.r.wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	c, err := readCatalog(ctx, tx, b.name)
	if err != nil {
		return err
	}
	if c.BuildTable.String != b.table {
		return ErrRebuildSuperseded
	}
	if _, err := tx.ExecContext(ctx, `UPDATE projection_catalog SET live_table = ?, checkpoint = ?, generation = generation + 1,
		events_applied = ?, last_received_at = ?, updated_at = ?, build_table = NULL WHERE name = ?`,
		b.table, int64(b.pos), b.applied, b.lastRcv, b.r.now().UnixMicro(), b.name); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DROP TABLE IF EXISTS `+c.LiveTable); err != nil {
		return err
	}
	return tx.Commit()
}
