// Package atomicfile replaces a file durably: readers see the old content or
// the new, never a torn file, and once a write returns nil the new content
// survives a crash or power loss.
//
// It is fcaudit's one temp-file-and-rename writer (checkpoints, exports, the
// evidence bundle, dev.json). github.com/google/renameio/v2 was not taken:
// it promises atomicity only and leaves the directory unsynced, so a rename
// it reports done can vanish at a power loss.
//
// store/sqlite's Backup keeps its own variant on purpose: SQLite's VACUUM
// INTO writes the temporary file itself (no io.Writer to hand it), and the
// backup is hard-linked into place rather than renamed, so an existing
// destination is refused instead of replaced.
package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteFile replaces path with data, which ends with mode perm.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write replaces path with what write produces (buffered), which ends with
// mode perm. The temporary file is created in path's directory with mode
// 0600, so nobody else can read partial content; it is written, fsynced,
// given perm, renamed over path, and the directory is fsynced so the rename
// itself is durable. When any step fails the temporary file is removed and
// path keeps its old content.
func Write(path string, perm os.FileMode, write func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
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
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	renamed = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("%s written but its directory not synced: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
