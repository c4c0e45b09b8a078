package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/logkey"
	"github.com/fcaudit/fcaudit/store"
)

// Log is the part of the event log projections read.
type Log interface {
	ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]store.RecordedEvent, error)
	ReadAll(ctx context.Context, opts store.ReadOptions) ([]store.RecordedEvent, error)
	Head(ctx context.Context) (store.Position, error)
	Subscribe(ctx context.Context, after store.Position, filter store.Filter, h store.Handler) error
}

// Options configure Open.
type Options struct {
	// ReadOnly opens the read models for queries and Status only (another
	// process, e.g. serve, runs the projections). The file must exist.
	ReadOnly bool
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
	// Now is the clock for lag figures (time.Now when nil).
	Now func() time.Time

	// BatchWindow is how long the live projection gathers delivered
	// events, from the first one, before applying them in one transaction
	// (0: DefaultBatchWindow; negative: apply each delivered batch at
	// once). It bounds the lag it adds at ordinary rates. One commit per
	// window instead of one per delivery, and an account's events in a
	// window fold in memory.
	BatchWindow time.Duration
	// MaxBatchWindow is how far the window stretches under load
	// (0: DefaultMaxBatchWindow): after a window in which events arrived
	// faster than HeavyRate the next ones are this long, until they come
	// at under a quarter of that rate. Longer windows fold more of an
	// account's events into one row write, so the projection takes less of
	// the CPU that ingestion needs, at the cost of that much more lag.
	MaxBatchWindow time.Duration
	// BatchMax applies the gathered events early once they reach this
	// many (0: DefaultBatchMax), e.g. while catching up.
	BatchMax int
	// CacheAccounts bounds the account states the live projection keeps in
	// memory so that it does not read back the rows it wrote
	// (0: DefaultCacheAccounts, about 0.7 KB each; negative: none).
	CacheAccounts int

	// PlainVFS writes the read models through SQLite's default unix VFS
	// instead of the write-combining one of internal/sqlitewc (slower,
	// equally durable): the off switch for when that VFS is in doubt.
	PlainVFS bool

	// beforeCommit, if set, runs inside every live batch transaction just
	// before COMMIT (tests: crash while applying).
	beforeCommit func()
	// beforeSwap, if set, runs before each attempt of a rebuild to swap
	// its table in (tests: let the live runner get ahead).
	beforeSwap func()
	// rebuildCacheMax, if positive, replaces rebuildCacheMax (tests: make
	// a rebuild flush and reload its states).
	rebuildCacheMax int
}

// accountFilter selects what account_status folds.
var accountFilter = store.Filter{StreamPrefix: fc.AccountStreamPrefix}

// Runner runs the projections over a Log and answers queries on their read
// models. It is safe for concurrent use; Run and Rebuild may run at the same
// time (in this process or in different processes on the same file).
type Runner struct {
	log    Log
	logger *slog.Logger
	path   string
	opts   Options
	now    func() time.Time
	wdb    *sql.DB // nil when read-only
	rdb    *sql.DB

	live liveCache // owned by Run

	mu      sync.Mutex
	lastErr error // the live runner's last failure, cleared by a good batch
}

// Open opens (creating it unless opts.ReadOnly) the read-model database at
// path for projections over log.
func Open(path string, log Log, opts Options) (*Runner, error) {
	wdb, rdb, err := openDBs(path, opts.ReadOnly, opts.PlainVFS)
	if err != nil {
		return nil, fmt.Errorf("open read models %s: %w", path, err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if opts.BatchWindow == 0 {
		opts.BatchWindow = DefaultBatchWindow
	}
	if opts.MaxBatchWindow == 0 {
		opts.MaxBatchWindow = DefaultMaxBatchWindow
	}
	opts.MaxBatchWindow = max(opts.MaxBatchWindow, opts.BatchWindow)
	if opts.BatchMax <= 0 {
		opts.BatchMax = DefaultBatchMax
	}
	if opts.CacheAccounts == 0 {
		opts.CacheAccounts = DefaultCacheAccounts
	}
	return &Runner{log: log, logger: logger.With("component", "projections"), path: path, opts: opts, now: now, wdb: wdb, rdb: rdb,
		live: liveCache{max: max(0, opts.CacheAccounts)}}, nil
}

// Close closes the database. Stop Run (cancel its context) first.
func (r *Runner) Close() error {
	err := r.rdb.Close()
	if r.wdb != nil {
		err = errors.Join(err, r.wdb.Close())
	}
	if err != nil {
		return fmt.Errorf("close read models %s: %w", r.path, err)
	}
	return nil
}

// errRestart: the catalog's checkpoint moved under the subscription (a
// rebuild swapped a table in); subscribe again from the new checkpoint.
var errRestart = errors.New("checkpoint moved; resubscribing")

// Run follows the log and applies it to every projection until ctx is
// cancelled (then it returns nil). It catches up from the checkpoint, then
// follows new events, whichever process appends them, applying what arrives
// within Options.BatchWindow in one transaction. Failures of the log or of
// the read-model database are logged, shown by Status, and retried with
// backoff; nothing is skipped. Call Run once per Runner (it owns the
// Runner's account cache); Rebuild and queries may run alongside.
func (r *Runner) Run(ctx context.Context) error {
	if r.wdb == nil {
		return ErrReadOnly
	}
	backoff := 100 * time.Millisecond
	for {
		c, err := readCatalog(ctx, r.wdb, AccountStatusName)
		if err == nil {
			err = r.follow(ctx, c.Checkpoint, func() { backoff = 100 * time.Millisecond })
		}
		// Whatever was folded into the cache but not committed is gone.
		r.live.reset()
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errRestart) {
			r.logger.Info("read model replaced; following it from its checkpoint", "projection", AccountStatusName)
			continue
		}
		r.setErr(err)
		r.logger.Error("projection stopped; retrying", "projection", AccountStatusName, logkey.Err(err), "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (r *Runner) setErr(err error) {
	r.mu.Lock()
	r.lastErr = err
	r.mu.Unlock()
}

// MaxCountedLag caps the count of events behind that Status reports (it
// reads metadata only, but a projection far behind would make every /metrics
// scrape a scan); EventsBehind == MaxCountedLag means "at least".
const MaxCountedLag = 10000

// Status describes one projection's progress.
type Status struct {
	Name string `json:"name"`
	// Table is the live table and Generation counts its swaps.
	Table      string `json:"table"`
	Generation int64  `json:"generation"`
	// Checkpoint is the last global position applied; Head the log's last
	// position. On EventStoreDB positions are byte offsets: compare them,
	// do not subtract them; EventsBehind is the honest figure.
	Checkpoint store.Position `json:"checkpoint"`
	Head       store.Position `json:"head"`
	// EventsBehind counts the events after Checkpoint the projection will
	// apply (those of its streams), up to MaxCountedLag.
	EventsBehind int64 `json:"events_behind"`
	// SecondsBehind is how long the oldest of those events has waited
	// (now − its received_at); 0 when caught up.
	SecondsBehind float64 `json:"seconds_behind"`
	// EventsApplied counts events applied to the live table since it was
	// built; Rows is its number of rows.
	EventsApplied int64 `json:"events_applied"`
	Rows          int64 `json:"rows"`
	// UpdatedAt is when the live table last committed (zero: never).
	UpdatedAt time.Time `json:"updated_at"`
	// Rebuilding names a rebuild's table while one runs (or was abandoned).
	Rebuilding string `json:"rebuilding,omitempty"`
	// Error is the live runner's last failure in this process, if any.
	Error string `json:"error,omitempty"`
}

// Status reports every projection's checkpoint and lag. It works on a
// read-only Runner while another process runs the projections.
func (r *Runner) Status(ctx context.Context) ([]Status, error) {
	out := make([]Status, 0, len(Names()))
	for _, name := range Names() {
		st, err := r.status(ctx, name)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func (r *Runner) status(ctx context.Context, name string) (Status, error) {
	tx, err := r.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Status{}, fmt.Errorf("status of %s: %w", name, err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	c, err := readCatalog(ctx, tx, name)
	if err != nil {
		return Status{}, fmt.Errorf("status of %s: %w", name, err)
	}
	st := Status{Name: name, Table: c.LiveTable, Generation: c.Generation, Checkpoint: c.Checkpoint,
		EventsApplied: c.EventsApplied, Rebuilding: c.BuildTable.String}
	if c.UpdatedAt != 0 {
		st.UpdatedAt = time.UnixMicro(c.UpdatedAt).UTC()
	}
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+c.LiveTable).Scan(&st.Rows); err != nil {
		return Status{}, fmt.Errorf("status of %s: count rows: %w", name, err)
	}
	_ = tx.Rollback()
	r.mu.Lock()
	if r.lastErr != nil {
		st.Error = r.lastErr.Error()
	}
	r.mu.Unlock()
	if st.Head, err = r.log.Head(ctx); err != nil {
		return Status{}, fmt.Errorf("status of %s: %w", name, err)
	}
	after := c.Checkpoint
	var oldest time.Time
	for st.EventsBehind < MaxCountedLag {
		page, err := r.log.ReadAll(ctx, store.ReadOptions{After: after, Filter: accountFilter, WithoutData: true,
			Limit: int(min(1000, MaxCountedLag-st.EventsBehind))})
		if err != nil {
			return Status{}, fmt.Errorf("status of %s: count lag: %w", name, err)
		}
		if len(page) == 0 {
			break
		}
		if oldest.IsZero() {
			oldest = page[0].ReceivedAt
		}
		st.EventsBehind += int64(len(page))
		after = page[len(page)-1].Position
	}
	if !oldest.IsZero() {
		st.SecondsBehind = max(0, r.now().Sub(oldest).Seconds())
	}
	return st, nil
}
