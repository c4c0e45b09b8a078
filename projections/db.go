package projections

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/fcaudit/fcaudit/internal/atomicfile"
	"github.com/fcaudit/fcaudit/internal/sqlitewc"
	"github.com/fcaudit/fcaudit/store"
)

// FileName is the read-model database inside the data directory; callers
// open filepath.Join(dataDir, FileName).
const FileName = "readmodels.db"

// AccountStatusName is the name of the account_status projection.
const AccountStatusName = "account_status"

// Names lists the projections, in the order rebuilds run them.
func Names() []string { return []string{AccountStatusName} }

// Errors.
var (
	// ErrUnknownProjection: a name that is not one of Names().
	ErrUnknownProjection = errors.New("unknown projection")
	// ErrAccountNotFound: no such account (now, or at the time asked).
	ErrAccountNotFound = errors.New("account not found")
	// ErrReadOnly: Run or Rebuild on a Runner opened read-only.
	ErrReadOnly = errors.New("read models opened read-only")
	// ErrNoReadModels: a read-only open of a file that does not exist yet
	// (no serve or rebuild has created it).
	ErrNoReadModels = errors.New("no read models yet")
	// ErrRebuildSuperseded: another rebuild of the same projection started
	// while this one ran; the other one wins.
	ErrRebuildSuperseded = errors.New("rebuild superseded by a newer rebuild")
)

const busyTimeoutMS = 10000

// catalogSchema: one row per projection. live_table is the table queries and
// the live runner use; checkpoint is the last global position applied to it,
// committed with its rows. generation changes on every swap. build_table is
// the table of a rebuild in progress (NULL when none).
const catalogSchema = `
CREATE TABLE IF NOT EXISTS projection_catalog (
	name             TEXT PRIMARY KEY,
	live_table       TEXT    NOT NULL,
	checkpoint       INTEGER NOT NULL DEFAULT 0,
	generation       INTEGER NOT NULL DEFAULT 1,
	events_applied   INTEGER NOT NULL DEFAULT 0,
	last_received_at INTEGER NOT NULL DEFAULT 0,
	updated_at       INTEGER NOT NULL DEFAULT 0,
	build_table      TEXT,
	next_seq         INTEGER NOT NULL DEFAULT 1
) WITHOUT ROWID;
`

// catalogRow is one projection's catalog entry.
type catalogRow struct {
	LiveTable      string
	Checkpoint     store.Position
	Generation     int64
	EventsApplied  int64
	LastReceivedAt int64 // µs since the epoch of the last applied event's receipt
	UpdatedAt      int64 // µs, wall time of the last commit
	BuildTable     sql.NullString
	NextSeq        int64
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func readCatalog(ctx context.Context, q queryer, name string) (catalogRow, error) {
	var c catalogRow
	var cp int64
	err := q.QueryRowContext(ctx, `SELECT live_table, checkpoint, generation, events_applied, last_received_at,
		updated_at, build_table, next_seq FROM projection_catalog WHERE name = ?`, name).
		Scan(&c.LiveTable, &cp, &c.Generation, &c.EventsApplied, &c.LastReceivedAt, &c.UpdatedAt, &c.BuildTable, &c.NextSeq)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("%w: %s has no catalog entry", ErrUnknownProjection, name)
	}
	c.Checkpoint = store.Position(cp)
	return c, err
}

// tableName is the physical table of generation seq of a projection; names
// are generated here only, so quoting is not needed.
func tableName(name string, seq int64) string { return fmt.Sprintf("%s_%d", name, seq) }

// createAccountTable creates an empty account_status table; indexes come
// later (createAccountIndexes), after a rebuild's bulk load. WITHOUT ROWID:
// rows are stored in the id index itself, so the live runner's update of a
// row is one B-tree seek instead of two (id index, then rowid). Tables made
// by earlier versions keep their rowid until the next rebuild; both work.
func createAccountTable(ctx context.Context, tx *sql.Tx, table string) error {
	_, err := tx.ExecContext(ctx, `CREATE TABLE `+table+` (
		id               TEXT PRIMARY KEY,
		status           TEXT    NOT NULL,
		institution_name TEXT    NOT NULL,
		livemode         INTEGER NOT NULL,
		state            BLOB    NOT NULL
	) WITHOUT ROWID`)
	return err
}

func createAccountIndexes(ctx context.Context, x interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}, table string) error {
	_, err := x.ExecContext(ctx, `CREATE INDEX IF NOT EXISTS `+table+`_status ON `+table+` (status, id);
		CREATE INDEX IF NOT EXISTS `+table+`_institution ON `+table+` (institution_name, id);`)
	return err
}

func dsn(path string, params url.Values) string {
	u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: params.Encode()}
	return u.String()
}

// openDBs opens the read-model file: a single-connection writer pool (nil
// when read-only) whose transactions start with BEGIN IMMEDIATE, so a
// rebuild in another process and the live runner queue for the write lock
// instead of failing to upgrade, and a read-only pool for queries. The
// writer uses the write-combining VFS unless plainVFS.
func openDBs(path string, readOnly, plainVFS bool) (wdb, rdb *sql.DB, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, err
	}
	busy := fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS)
	if readOnly {
		if _, err := os.Stat(abs); errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("%w at %s", ErrNoReadModels, abs)
		}
	} else {
		if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
			return nil, nil, err
		}
		// 0600 from creation, -wal and -shm included (the read models
		// hold account data), whatever the umask.
		if err := atomicfile.PrepareDB(abs); err != nil {
			return nil, nil, err
		}
		params := url.Values{
			// A 16 MiB page cache (default 2 MiB) holds the rows and
			// index pages of about 10,000 accounts (measured: 11 % of
			// page fetches missed after 60,000 events over 10,000);
			// past that, updates read pages back through the OS page
			// cache. 48 MiB was no faster under load (0.96x) and
			// cost 54 MiB of RSS.
			"_pragma": {busy, "journal_mode(WAL)", "synchronous(FULL)", "cache_size(-16384)"},
			"_txlock": {"immediate"},
		}
		if !plainVFS {
			// The write-combining VFS turns a commit's thousands of
			// WAL page writes into one write per 124 KiB; it needs
			// synchronous=FULL.
			params = sqlitewc.WithVFS(params)
		}
		wdb, err = sql.Open("sqlite", dsn(abs, params))
		if err != nil {
			return nil, nil, err
		}
		wdb.SetMaxOpenConns(1)
		wdb.SetMaxIdleConns(1)
		wdb.SetConnMaxLifetime(0)
		if err := migrate(wdb); err != nil {
			wdb.Close()
			return nil, nil, err
		}
	}
	rdb, err = sql.Open("sqlite", dsn(abs, url.Values{"mode": {"ro"}, "_pragma": {busy}}))
	if err != nil {
		if wdb != nil {
			wdb.Close()
		}
		return nil, nil, err
	}
	rdb.SetMaxIdleConns(4)
	if _, err := readCatalog(context.Background(), rdb, AccountStatusName); err != nil {
		rdb.Close()
		if wdb != nil {
			wdb.Close()
		}
		return nil, nil, fmt.Errorf("read catalog: %w", err)
	}
	return wdb, rdb, nil
}

// migrate creates the catalog and each projection's first table.
func migrate(wdb *sql.DB) error {
	ctx := context.Background()
	tx, err := wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.ExecContext(ctx, catalogSchema); err != nil {
		return err
	}
	for _, name := range Names() {
		_, err := readCatalog(ctx, tx, name)
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrUnknownProjection) {
			return err
		}
		table := tableName(name, 1)
		if err := createAccountTable(ctx, tx, table); err != nil {
			return err
		}
		if err := createAccountIndexes(ctx, tx, table); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO projection_catalog (name, live_table, next_seq) VALUES (?, ?, 2)`,
			name, table); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// accountRows loads and stores account_status rows inside one transaction.
type accountRows struct {
	get, put, setState *sql.Stmt
	buf                []byte // state encoding, reused (the driver copies it)
}

func prepareAccountRows(ctx context.Context, tx *sql.Tx, table string) (*accountRows, error) {
	a := &accountRows{}
	var err error
	prep := func(dst **sql.Stmt, q string) {
		if err == nil {
			*dst, err = tx.PrepareContext(ctx, q)
		}
	}
	prep(&a.get, fmt.Sprintf(getRowQuery, table))
	prep(&a.put, `INSERT INTO `+table+` (id, status, institution_name, livemode, state)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET status = excluded.status,
		institution_name = excluded.institution_name, livemode = excluded.livemode, state = excluded.state`)
	// Assigning only state leaves the (status, id) and (institution_name,
	// id) indexes alone; the upsert above rewrites both entries of every
	// row it touches, even when their values did not change.
	prep(&a.setState, `UPDATE `+table+` SET state = ? WHERE id = ?`)
	if err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func (a *accountRows) Close() {
	for _, st := range []*sql.Stmt{a.get, a.put, a.setState} {
		if st != nil {
			st.Close()
		}
	}
}

// getRowQuery selects what load scans.
const getRowQuery = `SELECT state, status, institution_name, livemode FROM %s WHERE id = ?`

// load returns the stored state of id and its row's other columns as
// stored, or a new empty state and nil when there is no row.
func (a *accountRows) load(ctx context.Context, id string) (*AccountStatus, *rowColumns, error) {
	var (
		b    []byte
		cols rowColumns
	)
	err := a.get.QueryRowContext(ctx, id).Scan(&b, &cols.status, &cols.institution, &cols.livemode)
	if errors.Is(err, sql.ErrNoRows) {
		return &AccountStatus{}, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", id, err)
	}
	s, err := decodeState(id, b)
	if err != nil {
		return nil, nil, err
	}
	return s, &cols, nil
}

// rowColumns are the columns of an account_status row besides id and state:
// what its indexes and filters use.
type rowColumns struct {
	status, institution string
	livemode            bool
}

func columnsOf(s *AccountStatus) rowColumns {
	return rowColumns{status: s.Status, institution: s.InstitutionName, livemode: s.Livemode}
}

// storedState is a row's state column: the AccountStatus as the API shows
// it plus the fold's private part.
type storedState struct {
	*AccountStatus
	Unreadable []rank `json:"unreadable_ranks,omitempty"`
}

func decodeState(id string, b []byte) (*AccountStatus, error) {
	st := storedState{AccountStatus: new(AccountStatus)}
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("decode state of %s: %w", id, err)
	}
	// A row written before the ranks were kept has a count without them;
	// the ranks decide from now on (a rebuild recomputes the count).
	st.setUnreadable(st.Unreadable)
	return st.AccountStatus, nil
}

// store writes s's row. stored is the row's columns as they are in the
// table, nil when there may be no row: when they still match s, only the
// state column is written.
func (a *accountRows) store(ctx context.Context, s *AccountStatus, stored *rowColumns) error {
	a.buf = appendState(a.buf[:0], s)
	b := a.buf
	var err error
	if stored != nil && *stored == columnsOf(s) {
		_, err = a.setState.ExecContext(ctx, b, s.ID)
	} else {
		live := 0
		if s.Livemode {
			live = 1
		}
		_, err = a.put.ExecContext(ctx, s.ID, s.Status, s.InstitutionName, live, b)
	}
	if err != nil {
		return fmt.Errorf("store %s: %w", s.ID, err)
	}
	return nil
}

// validName reports whether name is a projection.
func validName(name string) bool {
	for _, n := range Names() {
		if n == name {
			return true
		}
	}
	return false
}

// unknownProjection returns ErrUnknownProjection naming the valid ones.
func unknownProjection(name string) error {
	return fmt.Errorf("%w %q (known: %s)", ErrUnknownProjection, name, strings.Join(Names(), ", "))
}
