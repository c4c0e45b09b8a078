package sqlite

import (
	"context"
	"errors"
	"fmt"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/fcaudit/fcaudit/store"
)

// unavailableError keeps SQLite's own message while making
// errors.Is(err, store.ErrUnavailable) hold, so callers (ingest answering
// 503) need not know about SQLite.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return store.ErrUnavailable.Error() + ": " + e.err.Error() }

func (e *unavailableError) Unwrap() []error { return []error{store.ErrUnavailable, e.err} }

// isUnavailable reports whether err is an SQLite failure of the storage
// itself (disk full, I/O error, read-only file, lock timeout, not a database,
// corruption) rather than of the statement: the caller may retry later.
func isUnavailable(err error) bool {
	var se *msqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff { // primary result code; extended codes keep it in the low byte
	case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY,
		sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED,
		sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_PROTOCOL,
		sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_PERM, sqlite3.SQLITE_NOLFS:
		return true
	}
	return false
}

// mapErr translates a database error into the store vocabulary: a context
// error wins (the driver reports interrupted statements its own way), storage
// failures wrap store.ErrUnavailable, anything else is returned as is.
func mapErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx != nil && ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	if errors.Is(err, store.ErrUnavailable) {
		return err
	}
	if isUnavailable(err) {
		return &unavailableError{err: err}
	}
	return err
}
