package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Backup writes a consistent snapshot of the event log to dst, which must
// not exist, and returns its size in bytes. It runs SQLite's VACUUM INTO on
// a read connection — a read transaction, so it neither blocks nor waits
// for the writer, and serve keeps ingesting — into a temporary file beside
// dst, fsyncs it, renames it to dst and fsyncs the directory: dst is either
// absent or complete. The copy is a single self-contained file (rollback
// journal mode, no -wal or -shm) holding every event committed when the
// snapshot began; it opens like any event log.
func (s *Store) Backup(ctx context.Context, dst string) (int64, error) {
	if _, err := os.Lstat(dst); err == nil {
		return 0, fmt.Errorf("backup to %s: %w", dst, os.ErrExist)
	} else if !os.IsNotExist(err) {
		return 0, fmt.Errorf("backup to %s: %w", dst, err)
	}
	dir := filepath.Dir(dst)
	tmp, err := os.CreateTemp(dir, filepath.Base(dst)+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("backup to %s: %w", dst, err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	// VACUUM INTO accepts an existing empty file and keeps its mode: the
	// copy is 0600 (CreateTemp's mode) from its first byte, and no other
	// backup can pick the same name.
	done := false
	defer func() {
		if !done {
			os.Remove(tmpName)
		}
	}()
	if _, err := s.rdb.ExecContext(ctx, "VACUUM INTO ?", tmpName); err != nil {
		return 0, fmt.Errorf("backup to %s: %w", dst, s.readErr(ctx, err))
	}
	if backupAfterVacuum != nil {
		backupAfterVacuum(tmpName)
	}
	// The log is evidence and personal data: owner-only, like DATA_DIR
	// (in case SQLite recreated the file).
	if err := os.Chmod(tmpName, 0o600); err != nil {
		return 0, fmt.Errorf("backup to %s: %w", dst, err)
	}
	size, err := syncFile(tmpName)
	if err != nil {
		return 0, fmt.Errorf("backup to %s: %w", dst, err)
	}
	// Link, not rename: it fails if dst appeared meanwhile instead of
	// replacing it.
	if err := os.Link(tmpName, dst); err != nil {
		return 0, fmt.Errorf("backup to %s: %w", dst, err)
	}
	done = true
	os.Remove(tmpName)
	if _, err := syncFile(dir); err != nil {
		return 0, fmt.Errorf("backup to %s: sync directory: %w", dst, err)
	}
	return size, nil
}

// backupAfterVacuum, set by tests, sees the temporary file as VACUUM INTO
// left it.
var backupAfterVacuum func(tmp string)

// syncFile fsyncs a file or directory and returns its size.
func syncFile(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
