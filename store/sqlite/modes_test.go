package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/store"
)

// withUmask runs the test under umask 022, the common default, so file
// modes do not depend on the test runner's umask.
func withUmask(t *testing.T, mask int) {
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

func wantMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	if fi.Mode().Perm() != want {
		t.Errorf("%s: mode %v, want %v", filepath.Base(path), fi.Mode().Perm(), want)
	}
}

// events.db and its -wal and -shm are 0600 even when the
// data directory already exists (and the umask would allow 0644), and an
// existing, too open log is tightened when a writer opens it.
func TestFileModesPrivate(t *testing.T) {
	withUmask(t, 0o022)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, FileName)
	s := openTest(t, path, Options{})
	ev := store.Event{ID: "evt_mode", Type: fc.TypeCreated, Data: []byte(`{"id":"evt_mode"}`),
		ReceivedAt: time.Unix(1700000000, 0), Created: 1700000000, Source: store.SourceWebhook}
	if _, err := s.Append(context.Background(), "fcaccount-fca_mode", store.AnyRevision, ev); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		wantMode(t, p, 0o600)
	}

	// A log written by an older version, 0644: a writer tightens it.
	old := filepath.Join(t.TempDir(), FileName)
	o := openTest(t, old, Options{})
	if _, err := o.Append(context.Background(), "fcaccount-fca_mode", store.AnyRevision, ev); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{old, old + "-wal", old + "-shm"} {
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	openTest(t, old, Options{})
	for _, p := range []string{old, old + "-wal", old + "-shm"} {
		wantMode(t, p, 0o600)
	}
}

// The backup's temporary file is 0600 from its creation: VACUUM INTO
// writes the whole log into it.
func TestBackupTempFilePrivate(t *testing.T) {
	withUmask(t, 0o022)
	s := openTest(t, filepath.Join(t.TempDir(), FileName), Options{})
	ev := store.Event{ID: "evt_bk", Type: fc.TypeCreated, Data: []byte(`{"id":"evt_bk"}`),
		ReceivedAt: time.Unix(1700000000, 0), Created: 1700000000, Source: store.SourceWebhook}
	if _, err := s.Append(context.Background(), "fcaccount-fca_bk", store.AnyRevision, ev); err != nil {
		t.Fatal(err)
	}
	var seen int
	backupAfterVacuum = func(tmp string) {
		seen++
		wantMode(t, tmp, 0o600)
	}
	t.Cleanup(func() { backupAfterVacuum = nil })
	dst := filepath.Join(t.TempDir(), "copy.db")
	if _, err := s.Backup(context.Background(), dst); err != nil {
		t.Fatal(err)
	}
	if seen != 1 {
		t.Fatalf("hook ran %d times", seen)
	}
	wantMode(t, dst, 0o600)
}
