package audit

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/fcevents"
	"github.com/fcaudit/fcaudit/projections"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

const (
	fixtureAccount = "fca_1OeXkQ2eZvKYlo2CqT7hN3aB"
	goldenSecret   = "whsec_golden_test_secret"
)

// fixtureLog stores testdata/stripe's seven events of one account as
// webhooks with provenance, at fixed receipt times. 03 is delivered before
// 02 (Stripe does not deliver in order), so 02 arrives late.
func fixtureLog(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), sqlite.FileName), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	order := []string{"01_account.created", "03_account.refreshed_ownership", "02_account.refreshed_balance",
		"04_account.refreshed_transactions", "05_account.deactivated", "06_account.reactivated", "07_account.disconnected"}
	for i, name := range order {
		body, err := os.ReadFile(filepath.Join("..", "testdata", "stripe", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		ev := makeEvent(t, body, time.Time{})
		ev.ReceivedAt = time.Unix(ev.Created+int64(i)+2, 250000*1000).UTC()
		signed := time.Unix(ev.Created+1, 0)
		ev.Source = store.SourceWebhook
		ev.Provenance = &store.Provenance{SignatureHeader: fcevents.Sign(body, goldenSecret, signed), SignedAt: signed.Unix(),
			SecretFingerprint: "0123456789abcdef", VerifiedAt: ev.ReceivedAt.Add(40 * time.Microsecond)}
		if _, err := st.Append(context.Background(), fc.AccountStream(fixtureAccount), store.AnyRevision, ev); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./audit -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

func TestExportGolden(t *testing.T) {
	st := fixtureLog(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		opts   ExportOptions
		format string
		want   int
	}{
		{"all.ndjson", ExportOptions{}, "ndjson", 7},
		{"all.csv", ExportOptions{}, "csv", 7},
		// 2024-01-15T10:02:00Z .. 2024-01-18T10:01:00Z: 03, 04, 05
		{"window.csv", ExportOptions{Since: 1705312920, Until: 1705572060}, "csv", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.Account = fixtureAccount
			h, err := LoadHistory(ctx, st, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(h.Selected) != tc.want || h.Check.FirstBroken != nil {
				t.Fatalf("selected %d (want %d), chain %v", len(h.Selected), tc.want, h.Check.FirstBroken)
			}
			var buf bytes.Buffer
			write := h.WriteNDJSON
			if tc.format == "csv" {
				write = h.WriteCSV
			}
			if err := write(&buf); err != nil {
				t.Fatal(err)
			}
			golden(t, "export_"+tc.name, buf.Bytes())
		})
	}
}

func TestExportNDJSONRecords(t *testing.T) {
	st := fixtureLog(t)
	h, err := LoadHistory(context.Background(), st, ExportOptions{Account: fixtureAccount})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := h.WriteNDJSON(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 7 {
		t.Fatalf("%d lines, want 7", len(lines))
	}
	for i, line := range lines {
		var r struct {
			ID         string           `json:"id"`
			Revision   uint64           `json:"revision"`
			ChainHash  string           `json:"chain_hash"`
			Provenance store.Provenance `json:"provenance"`
			Payload    json.RawMessage  `json:"payload"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		e := h.Events[i]
		var compact bytes.Buffer
		_ = json.Compact(&compact, e.Data)
		if r.ID != e.ID || r.Revision != uint64(i) || r.ChainHash != hex.EncodeToString(e.ChainHash[:]) ||
			r.Provenance.SignatureHeader == "" || !bytes.Equal(r.Payload, compact.Bytes()) {
			t.Errorf("line %d does not carry event %s with its provenance and payload: %s", i, e.ID, line)
		}
	}
}

func TestExportUnknownAccount(t *testing.T) {
	st := fixtureLog(t)
	_, err := LoadHistory(context.Background(), st, ExportOptions{Account: "fca_unknown"})
	if !errors.Is(err, ErrUnknownAccount) {
		t.Fatalf("err = %v, want ErrUnknownAccount", err)
	}
}

func TestBundle(t *testing.T) {
	st := fixtureLog(t)
	h, err := LoadHistory(context.Background(), st, ExportOptions{Account: fixtureAccount, Since: 1705312920})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "bundle")
	res, err := WriteBundle(h, dir, time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{BundleReadme, BundleTimeline, BundleProof, BundleManifest} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "bundle_"+name, b)
	}
	// Every file is in the manifest with its SHA-256, and nothing else is
	// in the directory.
	mb, err := os.ReadFile(filepath.Join(dir, BundleManifest))
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(mb); hex.EncodeToString(sum[:]) != res.ManifestSHA256 {
		t.Errorf("reported manifest SHA-256 %s does not match the file", res.ManifestSHA256)
	}
	var m Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, f := range m.Files {
		b, err := os.ReadFile(filepath.Join(dir, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != f.SHA256 || len(b) != f.Bytes {
			t.Errorf("%s: manifest sha256 %s, file %x", f.Path, f.SHA256, sum)
		}
		listed[f.Path] = true
	}
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel = filepath.ToSlash(rel); rel != BundleManifest && !listed[rel] {
			t.Errorf("%s is in the bundle but not in the manifest", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.Events != 5 || len(listed) != 5+7 {
		t.Errorf("manifest: %d events, %d files; want 5 events, 12 files (5 + 7 bodies)", m.Events, len(listed))
	}
	// The chain proof recomputes with nothing but SHA-256, as README.txt says.
	var p ChainProof
	pb, _ := os.ReadFile(filepath.Join(dir, BundleProof))
	if err := json.Unmarshal(pb, &p); err != nil {
		t.Fatal(err)
	}
	prev := sha256.Sum256([]byte(p.Stream))
	for _, l := range p.Links {
		body, err := os.ReadFile(filepath.Join(dir, l.BodyFile))
		if err != nil {
			t.Fatal(err)
		}
		bs := sha256.Sum256(body)
		if hex.EncodeToString(bs[:]) != l.BodySHA256 {
			t.Fatalf("revision %d: body file hash differs", l.Revision)
		}
		buf := append(append(append(append(prev[:], bs[:]...), l.ID...), 0), l.ReceivedAt...)
		prev = sha256.Sum256(buf)
		if hex.EncodeToString(prev[:]) != l.ChainHash {
			t.Fatalf("revision %d: recomputed chain %x, proof says %s", l.Revision, prev, l.ChainHash)
		}
	}
	if _, err := WriteBundle(h, dir, time.Now()); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("second bundle into the same directory: %v, want a not-empty error", err)
	}
}

// With --until D the export stated a status taken from an
// event created after D (03 is stored before 02 but created after it). Every
// status in the export — CSV column, timeline, bundle summary — is now the
// as_of fold: GET /v1/accounts/{id}?as_of=D, projections.FoldStream.
func TestExportUntilStatusIsAsOf(t *testing.T) {
	st := fixtureLog(t)
	ctx := context.Background()
	all, err := st.ReadStream(ctx, fc.AccountStream(fixtureAccount), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Store order 01, 03, 02, …; until = 02's created selects 01 and 02.
	until := all[2].Created
	if all[1].Created <= until || !strings.HasSuffix(all[2].Type, "refreshed_balance") {
		t.Fatalf("fixture order changed: %s %d, %s %d", all[1].Type, all[1].Created, all[2].Type, all[2].Created)
	}
	h, err := LoadHistory(ctx, st, ExportOptions{Account: fixtureAccount, Until: until})
	if err != nil {
		t.Fatal(err)
	}
	want, err := projections.FoldStream(ctx, st, fixtureAccount, projections.AsOfCreated(time.Unix(until, 0)))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Selected) != 2 {
		t.Fatalf("selected %v, want 01 and 02", h.Selected)
	}
	last := h.StatusAfter[h.Selected[1]]
	if last.LastEvent.ID != all[2].ID || last.OwnershipRefresh != nil {
		t.Errorf("status after 02 taken from %s (ownership_refresh %v); want 02's snapshot, nothing from 03", last.LastEvent.ID, last.OwnershipRefresh)
	}
	if h.Status == nil || !reflect.DeepEqual(*h.Status, *want) || !reflect.DeepEqual(last, *want) {
		t.Errorf("export status %+v\nas_of fold     %+v", h.Status, want)
	}
	for _, e := range h.Timeline() {
		if e.StatusAfter.LastEvent.Created > until {
			t.Errorf("timeline: status after %s taken from %s, created after --until", e.ID, e.StatusAfter.LastEvent.ID)
		}
	}
	var csvOut bytes.Buffer
	if err := h.WriteCSV(&csvOut); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(csvOut.String(), all[1].ID) {
		t.Errorf("CSV names 03 (created after --until):\n%s", csvOut.String())
	}
	dir := filepath.Join(t.TempDir(), "b")
	if _, err := WriteBundle(h, dir, time.Now()); err != nil {
		t.Fatal(err)
	}
	var m Manifest
	mb, _ := os.ReadFile(filepath.Join(dir, BundleManifest))
	if err := json.Unmarshal(mb, &m); err != nil {
		t.Fatal(err)
	}
	if m.Status == nil || m.Status.LastEvent.ID != want.LastEvent.ID || m.Status.Status != want.Status || m.Status.EventsCount != want.EventsCount {
		t.Errorf("manifest status %+v, want the as_of fold %+v", m.Status, want)
	}
	readme, _ := os.ReadFile(filepath.Join(dir, BundleReadme))
	if !strings.Contains(string(readme), "Status:  "+want.Status+" as of ") || !strings.Contains(string(readme), want.LastEvent.ID) {
		t.Errorf("README.txt does not state the as_of status:\n%s", readme)
	}

	// An --until before every event selects nothing and states no status.
	h, err = LoadHistory(ctx, st, ExportOptions{Account: fixtureAccount, Until: -1})
	if err != nil || len(h.Selected) != 0 || h.Status != nil {
		t.Errorf("until before the epoch: %v selected, status %v, %v", h.Selected, h.Status, err)
	}
}

// TestBundleZip: the zip download holds exactly the files of the directory
// bundle, byte for byte, under the prefix, manifest.json first.
func TestBundleZip(t *testing.T) {
	st := fixtureLog(t)
	h, err := LoadHistory(context.Background(), st, ExportOptions{Account: fixtureAccount})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	dir := filepath.Join(t.TempDir(), "bundle")
	want, err := WriteBundle(h, dir, now)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	got, err := WriteBundleZip(&buf, h, "evidence/", now)
	if err != nil {
		t.Fatal(err)
	}
	if got.ManifestSHA256 != want.ManifestSHA256 || got.Files != want.Files {
		t.Fatalf("zip result %+v, directory %+v", got, want)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != want.Files || zr.File[0].Name != "evidence/"+BundleManifest {
		t.Fatalf("%d entries, first %q", len(zr.File), zr.File[0].Name)
	}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		disk, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(f.Name, "evidence/"))))
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		if !bytes.Equal(b, disk) {
			t.Errorf("%s differs from the directory bundle", f.Name)
		}
	}
}
