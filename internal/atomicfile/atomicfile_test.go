package atomicfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWriteFileMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.json")
	if err := WriteFile(path, []byte("new\n"), 0o600, NoClobber); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(path); string(b) != "new\n" {
		t.Errorf("content %q", b)
	}
}

func TestWriteReplacesAndKeepsPerm(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.csv")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("new"), 0o644, Replace); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(path); string(b) != "new" {
		t.Errorf("content %q", b)
	}
}

// A write that fails half way leaves the old file as it was and no
// temporary file behind.
func TestFailedWriteKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "export.ndjson")
	if err := os.WriteFile(path, []byte("old content\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(path, 0o600, Replace, func(w io.Writer) error {
		if _, err := io.WriteString(w, "partial"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old content\n" {
		t.Errorf("old file now %q", b)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the old file: %v", len(ents), ents)
	}
}

// The temporary file is private while it is being written.
func TestTempFileIs0600WhileWriting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bundle.json")
	err := Write(path, 0o644, NoClobber, func(w io.Writer) error {
		ents, err := os.ReadDir(dir)
		if err != nil || len(ents) != 1 {
			t.Fatalf("want one temporary file, got %v, %v", ents, err)
		}
		fi, err := ents[0].Info()
		if err != nil {
			return err
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("temporary file mode %v, want 0600", fi.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestWriteIntoMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "file")
	if err := WriteFile(path, []byte("x"), 0o600, NoClobber); err == nil {
		t.Fatal("want an error")
	}
}

// An existing file is refused unless Force (which keeps
// its mode) or Replace; a target that is not a regular file is refused
// under every policy and left as it was.
func TestPolicies(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing")
	if err := os.WriteFile(existing, []byte("old"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(existing, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(existing, []byte("new"), FileMode, NoClobber); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("NoClobber over an existing file: %v, want ErrExist", err)
	}
	if b, _ := os.ReadFile(existing); string(b) != "old" {
		t.Fatalf("refused write changed the file: %q", b)
	}
	if err := WriteFile(existing, []byte("forced"), FileMode, Force); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(existing); fi.Mode().Perm() != 0o640 {
		t.Errorf("Force: mode %v, want the old 0640 kept", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(existing); string(b) != "forced" {
		t.Errorf("Force: content %q", b)
	}

	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("target"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{link, fifo, sub} {
		for _, pol := range []Policy{NoClobber, Force, Replace} {
			if err := WriteFile(p, []byte("x"), FileMode, pol); !errors.Is(err, ErrNotRegular) {
				t.Errorf("%s policy %d: %v, want ErrNotRegular", filepath.Base(p), pol, err)
			}
			if err := Check(p, pol); !errors.Is(err, ErrNotRegular) {
				t.Errorf("Check %s policy %d: %v, want ErrNotRegular", filepath.Base(p), pol, err)
			}
		}
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the symlink was replaced: %v %v", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(target); string(b) != "target" {
		t.Errorf("the symlink's target changed: %q", b)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		t.Errorf("the FIFO was replaced: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 5 {
		t.Errorf("temporary files left behind: %v", ents)
	}
}

// WriteDir leaves either nothing or the complete directory, 0700 with the
// files fill made; a non-empty target is refused.
func TestWriteDir(t *testing.T) {
	parent := t.TempDir()
	path := filepath.Join(parent, "bundle")
	boom := errors.New("boom")
	err := WriteDir(path, func(dir string) error {
		if err := WriteFile(filepath.Join(dir, "a"), []byte("a"), FileMode, Replace); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v, want boom", err)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 0 {
		t.Fatalf("a failed WriteDir left %v", ents)
	}
	if err := os.Mkdir(path, 0o755); err != nil { // an empty directory is fine
		t.Fatal(err)
	}
	if err := WriteDir(path, func(dir string) error {
		return WriteFile(filepath.Join(dir, "a"), []byte("a"), FileMode, NoClobber)
	}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != DirMode {
		t.Errorf("directory mode %v, want 0700", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(filepath.Join(path, "a")); string(b) != "a" {
		t.Errorf("content %q", b)
	}
	if err := WriteDir(path, func(string) error { return nil }); !errors.Is(err, fs.ErrExist) {
		t.Errorf("non-empty target: %v, want ErrExist", err)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 1 {
		t.Errorf("parent holds %v", ents)
	}
}
