// Package atomicfile writes files durably and without clobbering: readers
// see the old content or the new, never a torn file; once a write returns
// nil the new content survives a crash or power loss; and what is at the
// path is replaced only as the caller's Policy allows.
//
// It is fcaudit's one temp-file-and-rename writer (checkpoints, exports, the
// evidence bundle, dev.json), and so the one place that decides what may be
// overwritten:
//
//   - a target that is not a regular file — a symlink, a device such as
//     /dev/null, a directory, a FIFO — is always refused (ErrNotRegular):
//     renaming over it would replace the link or the device node itself;
//   - an existing regular file is refused (fs.ErrExist) unless the policy
//     is Force (the user's --force: the file keeps its permission bits) or
//     Replace (fcaudit's own state files, which it rewrites by design);
//   - new files are created 0600 and directories 0700, whatever the umask:
//     what fcaudit writes holds event data.
//
// github.com/google/renameio/v2 was not taken: it promises atomicity only
// and leaves the directory unsynced, so a rename it reports done can vanish
// at a power loss.
//
// store/sqlite's Backup keeps its own variant on purpose: SQLite's VACUUM
// INTO writes the temporary file itself (no io.Writer to hand it); it
// follows the NoClobber policy the same way (a hard link that fails when the
// destination exists).
package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Policy says what a write does when its path already exists.
type Policy int

const (
	// NoClobber refuses an existing path (fs.ErrExist): the default for
	// files a user names (export --out, verify --write-checkpoint).
	NoClobber Policy = iota
	// Force replaces an existing regular file, which keeps its permission
	// bits (the user's --force).
	Force
	// Replace replaces an existing regular file and gives it the write's
	// perm: fcaudit's own state files (replay checkpoints, dev.json).
	Replace
)

// ErrNotRegular is returned for a target that exists and is not a regular
// file (a symlink, a device, a directory, a FIFO, a socket). No policy
// replaces one.
var ErrNotRegular = errors.New("not a regular file")

// Private file and directory modes: what fcaudit writes holds event data.
const (
	FileMode os.FileMode = 0o600
	DirMode  os.FileMode = 0o700
)

// WriteFile writes data to path under policy; a new file gets mode perm.
func WriteFile(path string, data []byte, perm os.FileMode, policy Policy) error {
	return Write(path, perm, policy, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Check reports, without writing anything, whether a write to path under
// policy would be refused: an error wrapping ErrNotRegular or fs.ErrExist
// (or the error of looking at path). Commands call it before doing the work
// whose result they would then fail to write.
func Check(path string, policy Policy) error {
	_, err := check(path, policy)
	return err
}

// check returns the mode bits an existing file keeps under Force (0: none).
func check(path string, policy Policy) (keep os.FileMode, err error) {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return 0, nil
	case err != nil:
		return 0, err
	case !fi.Mode().IsRegular():
		return 0, fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, describe(fi.Mode()))
	case policy == NoClobber:
		return 0, fmt.Errorf("%s: %w", path, fs.ErrExist)
	case policy == Force:
		return fi.Mode().Perm(), nil
	}
	return 0, nil
}

func describe(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "mode " + m.String()
}

// Write writes what write produces (buffered) to path under policy; a new
// file gets mode perm. The temporary file is created in path's directory
// with mode 0600, so nobody else can read partial content; it is written,
// fsynced, given its final mode, and moved into place — linked under
// NoClobber, so a file that appeared meanwhile is not replaced either,
// renamed otherwise — and the directory is fsynced so the move itself is
// durable. When any step fails the temporary file is removed and path is
// left as it was.
func Write(path string, perm os.FileMode, policy Policy, write func(io.Writer) error) (err error) {
	keep, err := check(path, policy)
	if err != nil {
		return err
	}
	if keep != 0 {
		perm = keep
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, tempPattern(path))
	if err != nil {
		return err
	}
	placed := false
	defer func() {
		if !placed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriter(tmp)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if policy == NoClobber {
		if err := os.Link(tmp.Name(), path); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s: %w", path, fs.ErrExist)
			}
			return err
		}
		os.Remove(tmp.Name())
	} else {
		// The target may have changed since check: look again, as close
		// to the rename as we can.
		if _, err := check(path, policy); err != nil {
			return err
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return err
		}
	}
	placed = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("%s written but its directory not synced: %w", path, err)
	}
	return nil
}

// tempPattern names a temporary file beside path. The name is bounded so a
// long target name (up to the file system's limit) still leaves room for
// the temporary one.
func tempPattern(path string) string {
	base := filepath.Base(path)
	if len(base) > 64 {
		base = base[:64]
	}
	return "." + base + ".tmp-*"
}

// WriteDir creates the directory path with what fill writes into a fresh
// private directory (mode 0700; fill should create files 0600, e.g. with
// WriteFile under Replace): it is built under a temporary name beside path,
// every file and directory in it is fsynced, and it is renamed into place,
// so path is either absent or complete — never a partial directory. path
// must not exist or be an empty directory (which is replaced); anything
// else is refused (fs.ErrExist, or ErrNotRegular for a symlink or a file).
func WriteDir(path string, fill func(dir string) error) error {
	if err := CheckDir(path); err != nil {
		return err
	}
	parent := filepath.Dir(path)
	tmp, err := os.MkdirTemp(parent, tempPattern(path))
	if err != nil {
		return err
	}
	placed := false
	defer func() {
		if !placed {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, DirMode); err != nil {
		return err
	}
	if err := fill(tmp); err != nil {
		return err
	}
	if err := syncTree(tmp); err != nil {
		return err
	}
	if err := CheckDir(path); err != nil {
		return err
	}
	// rename(2) itself, not os.Rename: os.Rename refuses any existing
	// directory, the system call replaces an empty one atomically (and
	// fails with ENOTEMPTY/EEXIST for one that filled up meanwhile).
	if err := syscall.Rename(tmp, path); err != nil {
		if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("%s is not empty: %w", path, fs.ErrExist)
		}
		return &os.LinkError{Op: "rename", Old: tmp, New: path, Err: err}
	}
	placed = true
	if err := syncDir(parent); err != nil {
		return fmt.Errorf("%s written but its directory not synced: %w", path, err)
	}
	return nil
}

// CheckDir reports, without writing anything, whether WriteDir would
// refuse path: nil for an absent path or an empty directory.
func CheckDir(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, describe(fi.Mode()))
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		return fmt.Errorf("%s is not empty: %w", path, fs.ErrExist)
	}
	return nil
}

// syncTree fsyncs every regular file and directory under root, root last.
func syncTree(root string) error {
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p == root {
				return nil
			}
			return syncDir(p)
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
	if err != nil {
		return err
	}
	return syncDir(root)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// PrepareDB makes an SQLite database file at path private before SQLite
// opens it for writing: it creates the file empty with mode 0600 when it
// does not exist — SQLite gives the -wal, -shm and journal files it creates
// the database file's mode, so they are 0600 from creation too, whatever
// the umask or the data directory's mode — and tightens an existing
// database and its -wal and -shm to 0600 (files written by an older
// version, or under a looser umask). Nothing that holds event data is ever
// readable by others, even for a moment.
func PrepareDB(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, FileMode)
	switch {
	case err == nil:
		if err := f.Close(); err != nil {
			return err
		}
		return syncDir(filepath.Dir(path))
	case !errors.Is(err, fs.ErrExist):
		return err
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) && p != path {
			continue
		}
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: %w (%s)", p, ErrNotRegular, describe(fi.Mode()))
		}
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, fi.Mode().Perm()&^0o077); err != nil {
				return fmt.Errorf("make %s private: %w", p, err)
			}
		}
	}
	return nil
}
