package audit

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/internal/atomicfile"
)

// Export writes the file the command asks for (mode 0600: it holds event
// data) and the bundle; the command only prints.
func TestExportToFileAndBundle(t *testing.T) {
	st := fixtureLog(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "history.csv")
	res, err := Export(context.Background(), st, ExportRequest{ExportOptions: ExportOptions{Account: fixtureAccount},
		Format: "csv", Out: out, Bundle: filepath.Join(dir, "bundle"), Now: time.Unix(1_800_000_000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Written || res.Selected != 7 || res.Total != 7 || res.Bundle == nil || res.Broken != nil {
		t.Fatalf("result %+v", res)
	}
	b, err := os.ReadFile(out)
	if err != nil || !strings.HasPrefix(string(b), "position,revision,id,") {
		t.Fatalf("export file: %q, %v", b, err)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
		t.Errorf("export file mode %v, want 0600", fi.Mode().Perm())
	}
	bundle := filepath.Join(dir, "bundle")
	err = filepath.WalkDir(bundle, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// An existing --out is refused (and left alone) unless
// Force, which keeps its mode; a non-regular target always is; a non-empty
// bundle directory is refused before anything is written.
func TestExportNeverClobbers(t *testing.T) {
	st := fixtureLog(t)
	dir := t.TempDir()
	req := func(out string, force bool) ExportRequest {
		return ExportRequest{ExportOptions: ExportOptions{Account: fixtureAccount}, Format: "ndjson", Out: out, Force: force}
	}
	out := filepath.Join(dir, "existing.ndjson")
	if err := os.WriteFile(out, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(out, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := Export(context.Background(), st, req(out, false)); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("existing file without force: %v, want ErrExist", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "old" {
		t.Fatalf("refused export changed the file: %q", b)
	}
	if _, err := Export(context.Background(), st, req(out, true)); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o640 {
		t.Errorf("--force: mode %v, want the file's own 0640", fi.Mode().Perm())
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(out, link); err != nil {
		t.Fatal(err)
	}
	for _, force := range []bool{false, true} {
		if _, err := Export(context.Background(), st, req(link, force)); !errors.Is(err, atomicfile.ErrNotRegular) {
			t.Errorf("symlink target (force %v): %v, want ErrNotRegular", force, err)
		}
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the symlink was replaced")
	}
	full := filepath.Join(dir, "full")
	if err := os.MkdirAll(full, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := req(filepath.Join(dir, "new.ndjson"), false)
	r.Bundle = full
	if res, err := Export(context.Background(), st, r); err == nil || res.Written {
		t.Errorf("non-empty bundle directory: %+v, %v", res, err)
	}
	if _, err := os.Stat(r.Out); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the export was written although the bundle was refused: %v", err)
	}
}

func TestExportToStdoutSelects(t *testing.T) {
	st := fixtureLog(t)
	var buf bytes.Buffer
	h, err := LoadHistory(context.Background(), st, ExportOptions{Account: fixtureAccount})
	if err != nil {
		t.Fatal(err)
	}
	since := h.Events[3]
	res, err := Export(context.Background(), st, ExportRequest{Format: "ndjson", Out: "-", Stdout: &buf,
		ExportOptions: ExportOptions{Account: fixtureAccount, Since: since.Created + 1}})
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(buf.String(), "\n"); lines != res.Selected || res.Selected == 0 || res.Selected >= res.Total {
		t.Errorf("%d lines, result %+v", lines, res)
	}
}

// Failures leave an existing --out file as it was.
func TestExportFailures(t *testing.T) {
	st := fixtureLog(t)
	out := filepath.Join(t.TempDir(), "keep.ndjson")
	if err := os.WriteFile(out, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Export(context.Background(), st, ExportRequest{ExportOptions: ExportOptions{Account: "fca_unknown"}, Format: "ndjson", Out: out, Force: true})
	if !errors.Is(err, ErrUnknownAccount) {
		t.Errorf("unknown account: %v", err)
	}
	res, err := Export(context.Background(), st, ExportRequest{ExportOptions: ExportOptions{Account: fixtureAccount}, Format: "xml", Out: out, Force: true})
	if !errors.Is(err, ErrExportFormat) || res.Written {
		t.Errorf("xml: %v, %+v", err, res)
	}
	if b, _ := os.ReadFile(out); string(b) != "old" {
		t.Errorf("--out file now %q", b)
	}
}
