package audit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Export writes the file the command asks for (replacing it, mode 0644 as
// an export for others to read) and the bundle; the command only prints.
func TestExportToFileAndBundle(t *testing.T) {
	st := fixtureLog(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "history.csv")
	if err := os.WriteFile(out, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
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
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o644 {
		t.Errorf("export file mode %v, want 0644", fi.Mode().Perm())
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
	_, err := Export(context.Background(), st, ExportRequest{ExportOptions: ExportOptions{Account: "fca_unknown"}, Format: "ndjson", Out: out})
	if !errors.Is(err, ErrUnknownAccount) {
		t.Errorf("unknown account: %v", err)
	}
	res, err := Export(context.Background(), st, ExportRequest{ExportOptions: ExportOptions{Account: fixtureAccount}, Format: "xml", Out: out})
	if !errors.Is(err, ErrExportFormat) || res.Written {
		t.Errorf("xml: %v, %+v", err, res)
	}
	if b, _ := os.ReadFile(out); string(b) != "old" {
		t.Errorf("--out file now %q", b)
	}
}
