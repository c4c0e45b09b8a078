package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/fcaudit/fcaudit/internal/fcevents"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/esdb"
	"github.com/fcaudit/fcaudit/store/esdb/esdbtest"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

// TestLogCommands: an auditor takes a checkpoint and the verifier key, the
// log grows, and verify-consistency proves the new checkpoint extends the
// old one; prove shows an event is in it. After a rewrite of history (a
// switched source, the tree rebuilt) verify-consistency fails.
func TestLogCommands(t *testing.T) {
	ctx := context.Background()
	accounts := []string{"fca_logAccountA000000000000", "fca_logAccountB000000000000"}
	t0 := time.Unix(1705312800, 0).UTC()
	dir := t.TempDir()
	cmdLog(t, dir, &fcevents.Generator{}, accounts, 3, t0)
	if code, _, errOut := runCmd(t, ctx, "log", "checkpoint", "--data-dir", dir); code != 1 || !strings.Contains(errOut, "no checkpoint published yet") {
		t.Fatalf("checkpoint before any: %d %q", code, errOut)
	}
	code, vkey, errOut := runCmd(t, ctx, "log", "key", "--data-dir", dir)
	vkey = strings.TrimSpace(vkey)
	if code != 0 || !strings.HasPrefix(vkey, "fcaudit/") {
		t.Fatalf("log key: %d %q %q", code, vkey, errOut)
	}
	if fi, err := os.Stat(filepath.Join(dir, "log-signing.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing key file: %v %v", fi, err)
	}
	keep := t.TempDir()
	publish := func(name string) string {
		t.Helper()
		code, out, errOut := runCmd(t, ctx, "log", "checkpoint", "--publish", "--data-dir", dir)
		if code != 0 || !strings.HasPrefix(out, "fcaudit/") {
			t.Fatalf("publish: %d %q %q", code, out, errOut)
		}
		p := filepath.Join(keep, name)
		if err := os.WriteFile(p, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		if code, latest, _ := runCmd(t, ctx, "log", "checkpoint", "--data-dir", dir); code != 0 || latest != out {
			t.Fatalf("latest checkpoint %q, published %q", latest, out)
		}
		return p
	}
	older := publish("old")
	cmdLog(t, dir, &fcevents.Generator{}, append(accounts, "fca_logAccountC000000000000"), 2, t0.Add(time.Hour))
	newer := publish("new")
	code, out, errOut := runCmd(t, ctx, "log", "verify-consistency", older, newer, "--key", vkey, "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "OK the tree of size 12 extends the tree of size 6") {
		t.Fatalf("verify-consistency: %d %q %q", code, out, errOut)
	}
	if code, _, _ := runCmd(t, ctx, "log", "verify-consistency", newer, older, "--key", vkey, "--data-dir", dir); code != exitUsage {
		t.Errorf("swapped checkpoints: exit %d, want 2", code)
	}
	otherDir := t.TempDir()
	cmdLog(t, otherDir, &fcevents.Generator{}, accounts, 1, t0)
	_, otherKey, _ := runCmd(t, ctx, "log", "key", "--data-dir", otherDir)
	if code, _, errOut := runCmd(t, ctx, "log", "verify-consistency", older, newer, "--key", strings.TrimSpace(otherKey), "--data-dir", dir); code != 1 || !strings.Contains(errOut, "invalid checkpoint") {
		t.Errorf("another log's key: exit %d %q", code, errOut)
	}

	// prove: the first event is in the old checkpoint's tree.
	db, err := sql.Open("sqlite", filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var first string
	if err := db.QueryRow(`SELECT event_id FROM events WHERE position = 1`).Scan(&first); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCmd(t, ctx, "log", "prove", "--event", first, "--checkpoint", older, "--key", vkey, "--data-dir", dir)
	var p inclusionProof
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil || p.LeafIndex != 0 || p.TreeSize != 6 || !strings.Contains(string(p.LeafData), first) {
		t.Fatalf("prove: %d %q %q", code, out, errOut)
	}
	var last string
	if err := db.QueryRow(`SELECT event_id FROM events WHERE position = 12`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCmd(t, ctx, "log", "prove", "--event", last, "--checkpoint", older, "--key", vkey, "--data-dir", dir); code != 1 || !strings.Contains(errOut, "not covered") {
		t.Errorf("prove beyond the checkpoint: %d %q", code, errOut)
	}

	// Rewrite: switch a source, drop the tree so fcaudit rebuilds it.
	for _, q := range []string{`UPDATE events SET source = 'backfill' WHERE position = 2`, `DELETE FROM merkle_tree`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	rewritten := publish("rewritten")
	if code, _, errOut := runCmd(t, ctx, "log", "verify-consistency", older, rewritten, "--key", vkey, "--data-dir", dir); code != 1 || !strings.Contains(errOut, "history was rewritten") {
		t.Errorf("verify-consistency after a rewrite: exit %d %q", code, errOut)
	}
}

// TestServePublishesCheckpointOnShutdown: with an interval longer than the
// test, the checkpoint taken at shutdown covers every stored event.
func TestServePublishesCheckpointOnShutdown(t *testing.T) {
	dir := t.TempDir()
	cmdLog(t, dir, &fcevents.Generator{}, []string{"fca_logShutdown000000000000"}, 5, time.Unix(1705312800, 0))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errOut bytes.Buffer
	addr := freePort(t)
	go func() {
		done <- run(ctx, []string{"serve", "--dev", "--data-dir", dir, "--listen", addr, "--checkpoint-interval", "1h"}, nil, io.Discard, &errOut)
	}()
	waitReady(t, "http://"+addr+"/readyz")
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve: %d %s", code, errOut.String())
	}
	code, out, stderr := runCmd(t, context.Background(), "log", "checkpoint", "--data-dir", dir)
	if code != 0 || !strings.HasPrefix(out, "fcaudit/") || strings.Split(out, "\n")[1] != "5" {
		t.Fatalf("checkpoint after shutdown: %d %q %q", code, out, stderr)
	}
}

// TestLogOnEventStoreDB: the log commands work on EventStoreDB: a
// checkpoint is published over the tree, an event proven in it, and verify
// recomputes the tree and confirms the checkpoint.
func TestLogOnEventStoreDB(t *testing.T) {
	ctx := context.Background()
	srv := esdbtest.Start(t)
	st, err := esdb.Open(ctx, srv.ConnString(), esdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := 0; i < 3; i++ {
		e := store.Event{ID: "evt_esdblog" + strconv.Itoa(i), Type: "financial_connections.account.created",
			Data: []byte(`{"id":"evt_esdblog` + strconv.Itoa(i) + `"}`), ReceivedAt: time.Now(), Source: store.SourceWebhook}
		if _, err := st.Append(ctx, "fcaccount-fca_esdblog", store.AnyRevision, e); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	code, out, errOut := runCmd(t, ctx, "log", "checkpoint", "--publish", "--eventstore", srv.ConnString(), "--data-dir", dir)
	if code != 0 || !strings.HasPrefix(out, "fcaudit/") || strings.Split(out, "\n")[1] != "3" {
		t.Fatalf("log checkpoint --publish on EventStoreDB: %d %q %q", code, out, errOut)
	}
	code, out, errOut = runCmd(t, ctx, "log", "prove", "--event", "evt_esdblog1", "--eventstore", srv.ConnString(), "--data-dir", dir)
	if code != 0 || !strings.Contains(out, `"leaf_index": 1`) {
		t.Fatalf("log prove on EventStoreDB: %d %q %q", code, out, errOut)
	}
	code, out, errOut = runCmd(t, ctx, "verify", "--skip-metadata", "--eventstore", srv.ConnString(), "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "Merkle tree of 3 leaves, 1 published and 0 held checkpoints confirmed") {
		t.Fatalf("verify on EventStoreDB: %d %q %q", code, out, errOut)
	}
}

// TestLogBackendsAgree: the same events (fcaudit's own fcaudit-replays
// record included, a duplicate and a provenance) stored in the embedded
// store and in EventStoreDB give the same leaves, hence the same root.
func TestLogBackendsAgree(t *testing.T) {
	ctx := context.Background()
	lite, err := sqlite.Open(filepath.Join(t.TempDir(), sqlite.FileName), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	es, err := esdb.Open(ctx, esdbtest.Start(t).ConnString(), esdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	at := time.Date(2026, 12, 4, 12, 0, 0, 123456000, time.UTC)
	appends := []struct {
		stream string
		id     string
	}{{"fcaccount-fca_agree1", "evt_agree0"}, {"fcaudit-replays", "evt_agree1"}, {"fcaccount-fca_agree2", "evt_agree2"},
		{"fcaccount-fca_agree1", "evt_agree0"}, {"stripe-fcobj_agree", "evt_agree3"}, {"fcaccount-fca_agree1", "evt_agree4"}}
	for i, a := range appends {
		e := store.Event{ID: a.id, Type: "financial_connections.account.created", Data: []byte(`{"id":"` + a.id + `"}`),
			ReceivedAt: at.Add(time.Duration(i) * time.Second), Source: store.SourceWebhook}
		if i%2 == 0 {
			e.Provenance = &store.Provenance{SignatureHeader: "t=1,v1=ab", SignedAt: 1, SecretFingerprint: "0011223344556677", VerifiedAt: at, Note: "n"}
		}
		for _, st := range []store.Store{lite, es} {
			if _, err := st.Append(ctx, a.stream, store.AnyRevision, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	hl, err := lite.TreeHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	he, err := es.TreeHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if hl.Size != 5 || he.Size != hl.Size || !bytes.Equal(he.Root, hl.Root) {
		t.Fatalf("embedded tree %d %x, EventStoreDB tree %d %x", hl.Size, hl.Root, he.Size, he.Root)
	}
}

// TestVerifyForkDetection: verify recomputes the tree and compares it with
// the published checkpoints and a held signed checkpoint (--against). A
// body edited and its stream re-chained passes every chain check, but not
// these.
func TestVerifyForkDetection(t *testing.T) {
	ctx := context.Background()
	accounts := []string{"fca_forkAccountA00000000000", "fca_forkAccountB00000000000"}
	dir := t.TempDir()
	cmdLog(t, dir, &fcevents.Generator{}, accounts, 4, time.Unix(1705312800, 0).UTC())
	code, held, errOut := runCmd(t, ctx, "log", "checkpoint", "--publish", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("publish: %d %s", code, errOut)
	}
	heldFile := filepath.Join(t.TempDir(), "held.checkpoint")
	if err := os.WriteFile(heldFile, []byte(held), 0o600); err != nil {
		t.Fatal(err)
	}
	_, vkey, _ := runCmd(t, ctx, "log", "key", "--data-dir", dir)
	vkey = strings.TrimSpace(vkey)
	code, out, errOut := runCmd(t, ctx, "verify", "--data-dir", dir, "--against", heldFile, "--key", vkey)
	if code != 0 || !strings.Contains(out, "Merkle tree of 8 leaves, 1 published and 1 held checkpoints confirmed") {
		t.Fatalf("verify of an intact log: %d %q %q", code, out, errOut)
	}

	// Rewrite event 3's body and re-chain its stream; drop the tree.
	db, err := sql.Open("sqlite", filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var stream string
	if err := db.QueryRow(`SELECT stream FROM events WHERE position = 3`).Scan(&stream); err != nil {
		t.Fatal(err)
	}
	rewriteAndRechain(t, db, 3, stream)
	for _, q := range []string{`DELETE FROM merkle_tree`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	code, out, _ = runCmd(t, ctx, "verify", "--data-dir", dir, "--skip-metadata")
	if code != 1 || !strings.Contains(out, "DAMAGED log: published checkpoint of tree size 8: its root differs") || strings.Contains(out, "DAMAGED stream") {
		t.Fatalf("verify after a re-chained rewrite: %d %q", code, out)
	}
	// The attacker also removes the published checkpoints: the held one
	// still exposes the rewrite.
	if _, err := db.Exec(`DELETE FROM log_checkpoints`); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runCmd(t, ctx, "verify", "--data-dir", dir, "--skip-metadata"); code != 0 {
		t.Fatalf("without any checkpoint the rewrite is expected to pass the chain checks: %d %q", code, out)
	}
	code, out, _ = runCmd(t, ctx, "verify", "--data-dir", dir, "--skip-metadata", "--against", heldFile, "--key", vkey)
	if code != 1 || !strings.Contains(out, "DAMAGED log: held checkpoint fcaudit/") {
		t.Fatalf("verify --against a held checkpoint after a rewrite: %d %q", code, out)
	}
}

// rewriteAndRechain replaces the body at pos and recomputes its stream's
// chain, as an attacker with write access would.
func rewriteAndRechain(t *testing.T, db *sql.DB, pos int, stream string) {
	t.Helper()
	var body []byte
	if err := db.QueryRow(`SELECT body FROM events WHERE position = ?`, pos).Scan(&body); err != nil {
		t.Fatal(err)
	}
	body = bytes.Replace(body, []byte(`"livemode"`), []byte(`"livemode" `), 1)
	sum := sha256.Sum256(body)
	if _, err := db.Exec(`UPDATE events SET body = ?, body_sha256 = ? WHERE position = ?`, body, sum[:], pos); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(`SELECT position, event_id, body_sha256, received_at FROM events WHERE stream = ? ORDER BY revision`, stream)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		pos  int64
		id   string
		sum  []byte
		recv int64
	}
	var rs []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.pos, &r.id, &r.sum, &r.recv); err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	rows.Close()
	prev := store.ChainSeed(stream)
	for _, r := range rs {
		prev = store.ChainHash(prev, [32]byte(r.sum), r.id, time.UnixMicro(r.recv).UTC())
		if _, err := db.Exec(`UPDATE events SET chain_hash = ? WHERE position = ?`, prev[:], r.pos); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBundleInclusionProofs: an evidence bundle carries each event's
// inclusion proof against the latest checkpoint, and they check with the
// library's verifier and note.Open alone — and with the README's Python
// (standard library only) when python3 is installed.
func TestBundleInclusionProofs(t *testing.T) {
	ctx := context.Background()
	acct := "fca_bundleProofAcct00000000"
	dir := t.TempDir()
	cmdLog(t, dir, &fcevents.Generator{}, []string{acct, "fca_bundleOther000000000000"}, 5, time.Unix(1705312800, 0).UTC())
	if code, _, errOut := runCmd(t, ctx, "log", "checkpoint", "--publish", "--data-dir", dir); code != 0 {
		t.Fatalf("publish: %s", errOut)
	}
	cmdLog(t, dir, &fcevents.Generator{}, []string{acct}, 1, time.Unix(1705412800, 0).UTC()) // after the checkpoint
	_, vkey, _ := runCmd(t, ctx, "log", "key", "--data-dir", dir)
	bundle := filepath.Join(t.TempDir(), "bundle")
	code, _, errOut := runCmd(t, ctx, "export", "--data-dir", dir, "--account", acct, "--out", filepath.Join(t.TempDir(), "x.ndjson"), "--bundle", bundle)
	if code != 0 || !strings.Contains(errOut, "1 event(s) arrived after the latest checkpoint") {
		t.Fatalf("export: %d %q", code, errOut)
	}
	b, err := os.ReadFile(filepath.Join(bundle, "log_proof.json"))
	if err != nil {
		t.Fatal(err)
	}
	var lp struct {
		Checkpoint string
		Events     []struct {
			ID        string
			BodyFile  string   `json:"body_file"`
			LeafIndex uint64   `json:"leaf_index"`
			LeafData  []byte   `json:"leaf_data"`
			Hashes    [][]byte `json:"hashes"`
		}
		NotCovered []string `json:"not_covered"`
	}
	if err := json.Unmarshal(b, &lp); err != nil || len(lp.Events) != 5 || len(lp.NotCovered) != 1 {
		t.Fatalf("log_proof.json: %v %s", err, b)
	}
	// Independent check: note.Open, proof.VerifyInclusion, the stdlib.
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open([]byte(lp.Checkpoint), note.VerifierList(v))
	if err != nil {
		t.Fatalf("checkpoint signature: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	size, _ := strconv.ParseUint(lines[1], 10, 64)
	root, _ := base64.StdEncoding.DecodeString(lines[2])
	for _, e := range lp.Events {
		body, err := os.ReadFile(filepath.Join(bundle, e.BodyFile))
		if err != nil {
			t.Fatal(err)
		}
		var leaf struct {
			ID         string `json:"id"`
			BodySHA256 string `json:"body_sha256"`
		}
		sum := sha256.Sum256(body)
		if json.Unmarshal(e.LeafData, &leaf) != nil || leaf.ID != e.ID || leaf.BodySHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("leaf data of %s: %s", e.ID, e.LeafData)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, e.LeafIndex, size, rfc6962.DefaultHasher.HashLeaf(e.LeafData), e.Hashes, root); err != nil {
			t.Fatalf("inclusion of %s: %v", e.ID, err)
		}
	}
	readme, err := os.ReadFile(filepath.Join(bundle, "README.txt"))
	if err != nil {
		t.Fatal(err)
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Log("python3 not installed: README snippet not run")
		return
	}
	text := string(readme)
	start := strings.Index(text, "     import base64")
	end := strings.Index(text[start:], "print(")
	end = start + end + strings.Index(text[start+end:], "\n")
	var script strings.Builder
	for _, l := range strings.Split(text[start:end], "\n") {
		script.WriteString(strings.TrimPrefix(l, "     ") + "\n")
	}
	cmd := exec.Command(py, "-c", script.String())
	cmd.Dir = bundle
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "5 events proven in the tree of size 10") {
		t.Fatalf("README's Python check: %v\n%s\n%s", err, out, script.String())
	}
	// And it fails for a tampered body.
	if err := os.WriteFile(filepath.Join(bundle, lp.Events[2].BodyFile), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(py, "-c", script.String())
	cmd.Dir = bundle
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("README's Python check passed a tampered body: %s", out)
	}
}
