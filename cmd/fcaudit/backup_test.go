package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fcaudit/fcaudit/store/sqlite"
)

// TestBackupWhileServingAndRestore: backup copies the log while serve runs;
// the copy is one owner-only file that a fresh serve restores from with
// every event; a second backup to the same file and bad command lines are
// refused.
func TestBackupWhileServingAndRestore(t *testing.T) {
	dir := t.TempDir()
	startServe(t, dir, "--dev")
	var ids []string
	for _, typ := range []string{"created", "refreshed_balance", "deactivated"} {
		code, out, errOut := runCmd(t, context.Background(), "trigger", typ, "--data-dir", dir, "--account", "fca_backup")
		var ack struct{ ID string }
		if code != 0 || json.NewDecoder(strings.NewReader(out)).Decode(&ack) != nil || ack.ID == "" {
			t.Fatalf("trigger %s: %d %s %s", typ, code, out, errOut)
		}
		ids = append(ids, ack.ID)
	}

	out := filepath.Join(t.TempDir(), "fcaudit.db")
	code, stdout, errOut := runCmd(t, context.Background(), "backup", "--data-dir", dir, "--out", out)
	if code != 0 || !strings.HasPrefix(stdout, "OK backed up 3 events in 1 streams (up to position 3)") || !strings.Contains(stdout, "hash chains verified") {
		t.Fatalf("backup while serving: exit %d, %q, %q", code, stdout, errOut)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v; want mode 0600", fi, err)
	}
	for _, side := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(out + side); !os.IsNotExist(err) {
			t.Errorf("%s%s exists beside the backup (%v); it must be one file", out, side, err)
		}
	}
	if m, _ := filepath.Glob(out + ".tmp-*"); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}

	// Restore into a fresh data directory; serve reads every event back.
	restored := t.TempDir()
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(restored, sqlite.FileName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	base := startServe(t, restored, "--webhook-secret", "whsec_restore", "--api-token", "tok_restore")
	for _, id := range ids {
		if code, body := call(t, "GET", base+"/v1/events/"+id, "tok_restore", nil, nil); code != 200 || !strings.Contains(string(body), id) {
			t.Errorf("restored serve: GET event %s: %d %s", id, code, body)
		}
	}

	// Refusals.
	if code, _, errOut := runCmd(t, context.Background(), "backup", "--data-dir", dir, "--out", out); code != exitUsage || !strings.Contains(errOut, "exists") {
		t.Errorf("backup over an existing file: exit %d, %q; want 2", code, errOut)
	}
	if code, _, errOut := runCmd(t, context.Background(), "backup", "--data-dir", dir); code != exitUsage || !strings.Contains(errOut, "--out") {
		t.Errorf("backup without --out: exit %d, %q; want 2", code, errOut)
	}
	if code, _, errOut := runCmd(t, context.Background(), "backup", "--eventstore", "esdb://127.0.0.1:1?tls=false", "--out", out+"2"); code != exitUsage || !strings.Contains(errOut, "EventStoreDB") {
		t.Errorf("backup of EventStoreDB: exit %d, %q; want 2", code, errOut)
	}
}

// TestBackupOfDamagedLog: the copy is faithful, so a damaged log gives a
// damaged copy; backup keeps it, names the damage and exits 1.
func TestBackupOfDamagedLog(t *testing.T) {
	dir := t.TempDir()
	startServe(t, dir, "--dev")
	for _, typ := range []string{"created", "refreshed_balance"} {
		if code, out, errOut := runCmd(t, context.Background(), "trigger", typ, "--data-dir", dir, "--account", "fca_damaged"); code != 0 {
			t.Fatalf("trigger: %d %s %s", code, out, errOut)
		}
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE events SET body = CAST(replace(CAST(body AS TEXT), 'StripeBank', 'StripeBonk') AS BLOB) WHERE revision = 0`); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "damaged.db")
	code, stdout, errOut := runCmd(t, context.Background(), "backup", "--data-dir", dir, "--out", out)
	if code != exitFailure || !strings.Contains(stdout, "DAMAGED stream fcaccount-fca_damaged") || !strings.Contains(errOut, "damaged") {
		t.Fatalf("backup of a damaged log: exit %d, %q, %q; want 1 naming the stream", code, stdout, errOut)
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("the faithful copy was not kept: %v", err)
	}
}
