package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/fcaudit/fcaudit/internal/atomicfile"
	"github.com/fcaudit/fcaudit/internal/logkey"
	"github.com/fcaudit/fcaudit/internal/sqlitewc"
	"github.com/fcaudit/fcaudit/store"
)

// FileName is the name of the event log file inside fcaudit's data directory;
// callers open filepath.Join(dataDir, FileName).
const FileName = "events.db"

// schemaVersion is stored in PRAGMA user_version; Open refuses files written
// by a newer fcaudit rather than misreading them. Version 2 (same tables)
// stores new provenance in a binary form (see provVersion); a read-write Open
// upgrades a version 1 file in place, and reads understand both forms. An
// fcaudit built for version 1 refuses an upgraded file. Version 3 adds the
// Merkle tree tables and the log id (merkle.go); an upgraded file's tree is
// built from its events by the first read-write Open.
const schemaVersion = 3

// oldestReadable is the oldest schema version a read-only Open accepts.
const oldestReadable = 1

const (
	defaultMaxBatch     = 512
	defaultPollInterval = 100 * time.Millisecond
	// busyTimeoutMS bounds how long a connection waits for another
	// connection's lock (another process's write, a WAL recovery) before
	// SQLITE_BUSY; modernc sets none by default.
	busyTimeoutMS = 10000
	// defaultReadLimit and maxReadLimit bound one ReadAll page; bounded pages
	// keep read snapshots short so the WAL can reset.
	defaultReadLimit = 1000
	maxReadLimit     = 10000
)

var _ store.Store = (*Store)(nil)

// Options configure Open.
type Options struct {
	// ReadOnly opens the file for reading only (mode=ro): no writer is
	// started, Append returns store.ErrReadOnly and Ping only checks that
	// the file can be read. The file must exist.
	ReadOnly bool
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
	// MaxBatch caps the events committed in one group commit (default 512).
	// A single Append larger than MaxBatch is still committed whole.
	MaxBatch int
	// PollInterval is how often Subscribe looks for events written by other
	// processes (default 100ms). Writes of this process wake subscribers at
	// once.
	PollInterval time.Duration
	// OnCommit, if set, is called by the writer after every group commit
	// (successful or not), e.g. to feed metrics. It must not block for long:
	// the next commit waits for it.
	OnCommit func(CommitStats)
	// PlainVFS writes through SQLite's default unix VFS instead of the
	// write-combining one of internal/sqlitewc (slower, equally durable):
	// the off switch for when that VFS is in doubt (see docs/reliability.md).
	PlainVFS bool

	// withoutTree turns the Merkle tree off; benchmarks only, to measure
	// what it costs the append path.
	withoutTree bool
}

// CommitStats describes one group commit, for OnCommit.
type CommitStats struct {
	// Requests is the number of Append/Ping calls in the transaction and
	// Events the number of events it inserted.
	Requests, Events int
	// Duration is the time from BEGIN to the end of COMMIT.
	Duration time.Duration
	// Err is the commit's error (nil on success).
	Err error
}

// Store is the embedded SQLite event log. It is safe for concurrent use;
// see the package documentation for its durability and concurrency model.
type Store struct {
	path string
	opts Options
	log  *slog.Logger

	rdb *sql.DB // read pool (mode=ro connections)
	wdb *sql.DB // nil when read-only; holds the writer's single connection
	cdb *sql.DB // nil when read-only; the background checkpointer's connection

	nudge            chan struct{} // wakes the checkpointer (checkpoint.go)
	checkpointerDone chan struct{} // closed when the checkpointer has exited

	reqs       chan *request
	closing    chan struct{} // closed by Close: stop accepting
	writerDone chan struct{} // closed when the writer goroutine has exited
	closeOnce  sync.Once
	closeErr   error

	// committed is closed and replaced after every commit that inserted
	// events, waking in-process subscribers without polling. notifyMu also
	// guards the tail (see tail.go).
	notifyMu  sync.Mutex
	committed chan struct{}
	tail      tail
	stmtMu    sync.Mutex
	stmts     map[string]*sql.Stmt // prepared reads on rdb, by query text
	tailMax   int                  // tailMaxBytes; tests lower it
	subs      atomic.Int32         // running Subscribe calls
	headReads atomic.Int64         // stream heads the writer read from the file (not cached); tests watch it
}

// Open opens (creating it and its parent directory, 0700, unless
// opts.ReadOnly) the event log at path.
func Open(path string, opts Options) (*Store, error) {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = defaultMaxBatch
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = defaultPollInterval
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		path:       path,
		opts:       opts,
		log:        log.With("component", "store/sqlite", "path", path),
		closing:    make(chan struct{}),
		writerDone: make(chan struct{}),
		committed:  make(chan struct{}),
		tailMax:    tailMaxBytes,
	}
	if err := s.open(); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("open event log %s: %w", path, err)
	}
	if opts.ReadOnly {
		close(s.writerDone)
		return s, nil
	}
	s.reqs = make(chan *request, 4*opts.MaxBatch)
	w, err := s.newWriter()
	if err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("open event log %s: %w", path, err)
	}
	if !opts.withoutTree {
		if err := w.buildTree(); err != nil {
			w.conn.Close()
			s.closeDBs()
			return nil, fmt.Errorf("open event log %s: %w", path, err)
		}
	}
	s.startCheckpointer()
	go w.run()
	return s, nil
}

// busyPragma is the busy_timeout every connection runs with.
func busyPragma() string { return fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS) }

func dsn(path string, params url.Values) string {
	// The "file:" URI form lets mode=ro through; the path is escaped so
	// names with '?' or '#' stay file names.
	u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: params.Encode()}
	return u.String()
}

// withVFS selects the write-combining VFS for a writing connection unless
// Options.PlainVFS switched it off.
func (s *Store) withVFS(params url.Values) url.Values {
	if s.opts.PlainVFS {
		return params
	}
	return sqlitewc.WithVFS(params)
}

func (s *Store) open() error {
	abs, err := filepath.Abs(s.path)
	if err != nil {
		return err
	}
	busy := busyPragma()
	if !s.opts.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
			return &unavailableError{err: err}
		}
		// 0600 from creation, -wal and -shm included, whatever the
		// umask and the data directory's mode.
		if err := atomicfile.PrepareDB(abs); err != nil {
			return err
		}
		if s.opts.PlainVFS {
			s.log.Info("writing through SQLite's default VFS (write combining switched off)")
		} else if _, err := sqlitewc.Register(); err != nil {
			s.log.Warn("write-combining VFS unavailable; writing through SQLite's default VFS (slower, equally durable)", logkey.Err(err))
		}
		// One connection only: the writer goroutine owns it. WAL lets
		// readers (in this and other processes) run beside it; FULL syncs
		// the WAL on every commit so an acknowledged append survives power
		// loss (NORMAL would not). Checkpoints mostly run in the
		// background (checkpoint.go).
		s.wdb, err = sql.Open("sqlite", dsn(abs, s.withVFS(url.Values{"_pragma": {busy, "journal_mode(WAL)", "synchronous(FULL)",
			fmt.Sprintf("wal_autocheckpoint(%d)", walRestartPages)}})))
		if err != nil {
			return err
		}
		s.wdb.SetMaxOpenConns(1)
		s.wdb.SetMaxIdleConns(1)
		s.wdb.SetConnMaxLifetime(0)
		if err := s.migrate(); err != nil {
			return err
		}
		if s.cdb, err = s.openCheckpointerDB(abs); err != nil {
			return err
		}
	} else if _, err := os.Stat(abs); err != nil {
		return &unavailableError{err: err}
	}
	s.rdb, err = sql.Open("sqlite", dsn(abs, url.Values{"mode": {"ro"}, "_pragma": {busy}}))
	if err != nil {
		return err
	}
	s.rdb.SetMaxIdleConns(4)
	var v int
	if err := s.rdb.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return mapErr(nil, err)
	}
	if v < oldestReadable || v > schemaVersion {
		return fmt.Errorf("%w: schema version %d, want %d (not an fcaudit event log, or written by another version)", store.ErrUnavailable, v, schemaVersion)
	}
	// Touch the table so a file that is not a database fails here, not on
	// the first read.
	if _, err := s.rdb.Exec("SELECT 1 FROM events LIMIT 1"); err != nil {
		return mapErr(nil, err)
	}
	return nil
}

const schema = `
CREATE TABLE events (
	position        INTEGER PRIMARY KEY,
	event_id        TEXT    NOT NULL UNIQUE,
	stream          TEXT    NOT NULL,
	revision        INTEGER NOT NULL,
	type            TEXT    NOT NULL,
	created         INTEGER NOT NULL,
	received_at     INTEGER NOT NULL,
	livemode        INTEGER NOT NULL,
	api_version     TEXT    NOT NULL,
	connect_account TEXT,
	source          TEXT    NOT NULL,
	body_sha256     BLOB    NOT NULL,
	chain_hash      BLOB    NOT NULL,
	provenance      TEXT,
	body            BLOB    NOT NULL,
	UNIQUE (stream, revision)
);
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;
PRAGMA user_version = 2;
`

// migrate creates the schema on a new file. It runs inside BEGIN IMMEDIATE
// so two processes opening a new file at once do not both create it.
func (s *Store) migrate() error {
	ctx := context.Background()
	conn, err := s.wdb.Conn(ctx)
	if err != nil {
		return mapErr(nil, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return mapErr(nil, err)
	}
	var v int
	err = conn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v)
	switch {
	case err != nil:
	case v == 0:
		if _, err = conn.ExecContext(ctx, schema); err == nil {
			err = migrateMerkle(ctx, conn)
		}
	case v == 1, v == 2:
		// Version 2 has the same tables; only new provenance values are
		// written differently.
		err = migrateMerkle(ctx, conn)
	case v > schemaVersion:
		err = fmt.Errorf("schema version %d is newer than this fcaudit (%d)", v, schemaVersion)
	}
	if err != nil {
		_, _ = conn.ExecContext(ctx, "ROLLBACK")
		return mapErr(nil, err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		_, _ = conn.ExecContext(ctx, "ROLLBACK")
		return mapErr(nil, err)
	}
	return nil
}

// Close stops accepting appends, lets the group commit in progress finish,
// fails appends still queued with store.ErrClosed and closes the database.
// Later calls of any method return store.ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		<-s.writerDone
		if s.checkpointerDone != nil {
			<-s.checkpointerDone
		}
		s.closeErr = s.closeDBs()
	})
	return s.closeErr
}

func (s *Store) closeDBs() error {
	var errs []error
	s.stmtMu.Lock()
	for _, st := range s.stmts {
		errs = append(errs, st.Close())
	}
	s.stmts = nil
	s.stmtMu.Unlock()
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	// The writer's connection closes last: the last connection to a WAL
	// database checkpoints it fully and removes the WAL file.
	if s.cdb != nil {
		errs = append(errs, s.cdb.Close())
	}
	if s.wdb != nil {
		errs = append(errs, s.wdb.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close event log %s: %w", s.path, err)
	}
	return nil
}

func (s *Store) isClosed() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}
