package sqlite

import (
	"database/sql"
	"net/url"
	"time"

	"github.com/fcaudit/fcaudit/internal/logkey"
)

// WAL checkpoints are moved off the writer's path. By default SQLite
// checkpoints inside the COMMIT that pushes the WAL past 1000 pages, on the
// writer's connection: every appender of that group commit waits while
// pages are copied into the database file and both files are fsynced. In a
// profile of serve under load that was over a quarter of the writer's time.
//
// Instead a checkpointer goroutine with its own connection runs PASSIVE
// checkpoints (they never block the writer or readers) shortly after
// commits, so by the time the WAL reaches walRestartPages nearly all of it
// is already in the database file. The writer's own auto-checkpoint is kept
// at that higher threshold: it then only copies the few frames written since
// the last background checkpoint, after which SQLite restarts the WAL from
// its beginning. (A background checkpoint alone cannot do that under a
// steady write load — the writer keeps appending while it runs — so without
// the writer's share the WAL would only grow.)
const (
	// walRestartPages is the writer connection's wal_autocheckpoint: the
	// WAL size, in pages, at which the writer finishes the checkpoint itself
	// and the WAL starts over (16384 pages of 4 KiB = 64 MiB, the WAL file's
	// size on disk under steady load).
	walRestartPages = 16384
	// checkpointGap is the least time between two background checkpoints.
	// Each costs two fsyncs, the database file's flushing every page the
	// checkpoint wrote, and the writer's commit fsyncs queue behind them on
	// the same disk; an index leaf rewritten by many commits is copied once
	// per checkpoint. Measured under load (docs/performance.md): 100 ms with
	// a 64 MiB WAL gave 1.23x the throughput of 20 ms with a 16 MiB WAL;
	// 200 ms or a 128 MiB WAL were no better, 50 ms was 0.87x.
	checkpointGap = 100 * time.Millisecond
)

// openCheckpointerDB opens the checkpointer's connection (open calls it
// next to the writer's).
func (s *Store) openCheckpointerDB(abs string) (*sql.DB, error) {
	// FULL makes each checkpoint sync the database file before it records
	// its progress, which the write-combining VFS relies on.
	db, err := sql.Open("sqlite", dsn(abs, s.withVFS(url.Values{"_pragma": {busyPragma(), "synchronous(FULL)"}})))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	return db, nil
}

// startCheckpointer starts the checkpointer on s.cdb; the writer nudges it
// after commits that inserted events.
func (s *Store) startCheckpointer() {
	s.nudge = make(chan struct{}, 1)
	s.checkpointerDone = make(chan struct{})
	go s.runCheckpointer()
}

// checkpointLogEvery bounds how often a persisting checkpoint failure is
// logged (the checkpointer retries after every commit).
const checkpointLogEvery = time.Minute

func (s *Store) runCheckpointer() {
	defer close(s.checkpointerDone)
	var (
		failing    bool
		lastLogged time.Time
	)
	for {
		select {
		case <-s.nudge:
		case <-s.closing:
			return
		}
		// PASSIVE copies what it can without waiting for anyone. Failures
		// (a full disk, I/O errors) are not the appenders' concern: the
		// writer's commits report those themselves, and the next nudge
		// retries.
		_, err := s.cdb.Exec("PRAGMA wal_checkpoint(PASSIVE)")
		switch {
		case err != nil && (!failing || time.Since(lastLogged) >= checkpointLogEvery):
			s.log.Warn("background WAL checkpoint failed; retrying after each commit", logkey.Err(err))
			failing, lastLogged = true, time.Now()
		case err == nil && failing:
			s.log.Info("background WAL checkpoint works again")
			failing = false
		}
		select {
		case <-time.After(checkpointGap):
		case <-s.closing:
			return
		}
	}
}

// nudgeCheckpointer asks for a background checkpoint without waiting.
func (s *Store) nudgeCheckpointer() {
	select {
	case s.nudge <- struct{}{}:
	default:
	}
}
