package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/internal/fcevents"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

func call(t *testing.T, method, url, token string, body []byte, header map[string]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestAuditEndToEnd drives the real serve: webhooks signed with the second
// (rotated) secret are ingested into SQLite; GET /v1/events/{id} shows their
// provenance with that secret's fingerprint and never the secret; the verify
// route and `fcaudit verify` (while serve runs) find the chain intact; no
// method updates or deletes events; exports of unknown accounts fail.
func TestAuditEndToEnd(t *testing.T) {
	const (
		oldSecret = "whsec_e2e_primary_0000000000000000"
		newSecret = "whsec_e2e_rotated_1111111111111111"
		token     = "tok_e2e"
		account   = "fca_e2eAccount0000000000"
	)
	dir := t.TempDir()
	base := startServe(t, dir, "--webhook-secret", oldSecret, "--webhook-secret", newSecret, "--api-token", token)

	g := &fcevents.Generator{}
	var ids, headers []string
	for i, typ := range []string{fc.TypeCreated, fc.TypeRefreshedBalance, fc.TypeDeactivated} {
		body := g.Event(typ, account, time.Now().Unix()-int64(100-i))
		sig := fcevents.Sign(body, newSecret, time.Now())
		code, resp := call(t, "POST", base+"/webhooks/stripe", "", body, map[string]string{"Stripe-Signature": sig, "Content-Type": "application/json"})
		if code != 200 {
			t.Fatalf("webhook %s: %d %s", typ, code, resp)
		}
		env, _ := fc.ParseEnvelope(body)
		ids, headers = append(ids, env.ID), append(headers, sig)
	}

	// Provenance, end to end.
	var lastChain string
	for i, id := range ids {
		code, b := call(t, "GET", base+"/v1/events/"+id, token, nil, nil)
		if code != 200 {
			t.Fatalf("get event: %d %s", code, b)
		}
		var rec struct {
			ChainHash  string            `json:"chain_hash"`
			BodySHA256 string            `json:"body_sha256"`
			Provenance *store.Provenance `json:"provenance"`
		}
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatal(err)
		}
		p := rec.Provenance
		if p == nil || p.SignatureHeader != headers[i] || p.SecretFingerprint != ingest.Fingerprint(newSecret) ||
			p.SignedAt == 0 || p.VerifiedAt.IsZero() || len(rec.ChainHash) != 64 || len(rec.BodySHA256) != 64 {
			t.Errorf("event %s: provenance %+v chain %q; want header %q and fingerprint %s (the rotated secret's)",
				id, p, rec.ChainHash, headers[i], ingest.Fingerprint(newSecret))
		}
		if bytes.Contains(b, []byte(newSecret)) || bytes.Contains(b, []byte(oldSecret)) {
			t.Errorf("event %s record contains a webhook secret", id)
		}
		lastChain = rec.ChainHash
	}

	// The account's chain check over the API.
	code, b := call(t, "GET", base+"/v1/accounts/"+account+"/verify", token, nil, nil)
	var v struct {
		Account      string          `json:"account"`
		Stream       string          `json:"stream"`
		Events       int             `json:"events"`
		Intact       bool            `json:"intact"`
		FirstBroken  json.RawMessage `json:"first_broken"`
		LastRevision uint64          `json:"last_revision"`
		ChainHash    string          `json:"chain_hash"`
		Signatures   struct {
			Checked   *int64 `json:"checked"`
			Unchecked *int64 `json:"unchecked"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(b, &v); err != nil || code != 200 {
		t.Fatalf("verify route: %d %s", code, b)
	}
	if v.Account != account || v.Stream != "fcaccount-"+account || v.Events != 3 || !v.Intact ||
		string(v.FirstBroken) != "null" || v.LastRevision != 2 || v.ChainHash != lastChain {
		t.Errorf("verify route answered %s", b)
	}
	// serve re-checks the stored signatures with its own secrets.
	if sg := v.Signatures; sg.Checked == nil || *sg.Checked != 3 || sg.Unchecked == nil || *sg.Unchecked != 0 {
		t.Errorf("verify route signatures: %s; want 3 checked, 0 unchecked", b)
	}
	if code, b := call(t, "GET", base+"/v1/accounts/fca_unknown/verify", token, nil, nil); code != 404 || !strings.Contains(string(b), `"error"`) {
		t.Errorf("verify of an unknown account: %d %s", code, b)
	}
	if code, _ := call(t, "GET", base+"/v1/accounts/"+account+"/verify", "", nil, nil); code != 401 {
		t.Errorf("verify without a token: %d", code)
	}
	// The neighbouring routes still answer (nothing shadowed).
	if code, b := call(t, "GET", base+"/v1/accounts/"+account+"/events", token, nil, nil); code != 200 || !strings.Contains(string(b), ids[0]) {
		t.Errorf("account events: %d %s", code, b)
	}

	// Nothing updates or deletes an event.
	for _, path := range []string{"/v1/events", "/v1/events/" + ids[0], "/v1/accounts/" + account,
		"/v1/accounts/" + account + "/events", "/v1/accounts/" + account + "/verify", "/webhooks/stripe"} {
		for _, method := range []string{"DELETE", "PUT", "PATCH"} {
			code, b := call(t, method, base+path, token, []byte(`{"type":"x"}`), map[string]string{"Content-Type": "application/json"})
			var env struct {
				Error struct{ Type, Message string } `json:"error"`
			}
			if code != http.StatusMethodNotAllowed || json.Unmarshal(b, &env) != nil || env.Error.Type == "" {
				t.Errorf("%s %s: %d %s; want 405 with the error envelope", method, path, code, b)
			}
		}
	}

	// verify and export work beside the running serve.
	code, out, errOut := runCmd(t, context.Background(), "verify", "--data-dir", dir)
	if code != 0 || !strings.HasPrefix(out, "OK verified 3 events in 1 streams") {
		t.Errorf("verify while serving: %d %q %q", code, out, errOut)
	}
	code, out, errOut = runCmd(t, context.Background(), "export", "--data-dir", dir, "--account", account, "--format", "csv")
	if code != 0 || strings.Count(out, "\n") != 4 || !strings.Contains(out, ingest.Fingerprint(newSecret)) {
		t.Errorf("export while serving: %d %q %q", code, out, errOut)
	}
	code, _, errOut = runCmd(t, context.Background(), "export", "--data-dir", dir, "--account", "fca_unknown")
	if code != 1 || !strings.Contains(errOut, `no stored events for account "fca_unknown"`) {
		t.Errorf("export of an unknown account: %d %q", code, errOut)
	}

	// Provenance is outside the chain: give the first webhook the third's
	// signature header, behind serve's back. Only the signature re-check
	// can tell, and the verify route runs it.
	db, err := sql.Open("sqlite", filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE events SET provenance = (SELECT provenance FROM events WHERE event_id = ?) WHERE event_id = ?`, ids[2], ids[0]); err != nil {
		t.Fatal(err)
	}
	code, b = call(t, "GET", base+"/v1/accounts/"+account+"/verify", token, nil, nil)
	var broken struct {
		Intact      bool `json:"intact"`
		FirstBroken *struct {
			ID      string `json:"id"`
			Problem string `json:"problem"`
		} `json:"first_broken"`
	}
	if err := json.Unmarshal(b, &broken); err != nil || code != 200 || broken.Intact || broken.FirstBroken == nil ||
		broken.FirstBroken.ID != ids[0] || broken.FirstBroken.Problem != "signature_mismatch" {
		t.Errorf("verify route after swapping a provenance: %d %s; want intact false, first broken %s signature_mismatch", code, b, ids[0])
	}
}

// cmdLog writes n events for each account straight into DATA_DIR's log.
func cmdLog(t *testing.T, dir string, g *fcevents.Generator, accounts []string, n int, at time.Time) {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(dir, sqlite.FileName), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := 0; i < n; i++ {
		for j, acct := range accounts {
			body := g.Event(fc.Types()[i%len(fc.Types())], acct, at.Unix()+int64(i))
			env, err := fc.ParseEnvelope(body)
			if err != nil {
				t.Fatal(err)
			}
			ev := store.Event{ID: env.ID, Type: env.Type, Data: body, Created: env.Created, APIVersion: env.APIVersion,
				ReceivedAt: at.Add(time.Duration(i*len(accounts)+j) * time.Millisecond), Source: store.SourceImport}
			if _, err := st.Append(context.Background(), fc.AccountStream(acct), store.AnyRevision, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestVerifyCheckpoints(t *testing.T) {
	accounts := []string{"fca_cpAccountA0000000000000", "fca_cpAccountB0000000000000", "fca_cpAccountC0000000000000"}
	t0 := time.Unix(1705312800, 0).UTC()
	setup := func(t *testing.T) (dir, cp string) {
		dir = t.TempDir()
		cmdLog(t, dir, &fcevents.Generator{}, accounts, 4, t0)
		cp = filepath.Join(t.TempDir(), "cp.json")
		code, out, errOut := runCmd(t, context.Background(), "verify", "--data-dir", dir, "--write-checkpoint", cp)
		if code != 0 || !strings.Contains(out, "checkpoint written to "+cp) {
			t.Fatalf("write checkpoint: %d %q %q", code, out, errOut)
		}
		return dir, cp
	}
	exec := func(t *testing.T, dir, query string, args ...any) {
		db, err := sql.Open("sqlite", filepath.Join(dir, sqlite.FileName))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if res, err := db.Exec(query, args...); err != nil {
			t.Fatal(err)
		} else if n, _ := res.RowsAffected(); n == 0 {
			t.Fatalf("%q changed nothing", query)
		}
	}
	streamB := fc.AccountStream(accounts[1])
	for _, tc := range []struct {
		name     string
		change   func(t *testing.T, dir, cp string)
		wantCode int
		wantOut  string
	}{
		{"appends after the checkpoint pass", func(t *testing.T, dir, _ string) {
			cmdLog(t, dir, &fcevents.Generator{}, append(accounts, "fca_cpAccountNew000000000000"), 2, t0.Add(time.Hour))
		}, 0, "3 of 3 checkpoint streams hold their checkpointed prefix"},
		{"an edit before the checkpoint fails", func(t *testing.T, dir, _ string) {
			exec(t, dir, `UPDATE events SET received_at = received_at + 1 WHERE stream = ? AND revision = 1`, streamB)
		}, 1, "DAMAGED stream " + streamB + " revision 1"},
		{"a consistently re-chained rewrite fails against the checkpoint", func(t *testing.T, dir, _ string) {
			// Delete the last event of B: the chain alone cannot tell, the checkpoint can.
			exec(t, dir, `DELETE FROM events WHERE stream = ? AND revision = 3`, streamB)
		}, 1, "DAMAGED stream " + streamB + " revision 3 id -: truncated"},
		{"a deleted stream fails against the checkpoint", func(t *testing.T, dir, _ string) {
			exec(t, dir, `DELETE FROM events WHERE stream = ?`, streamB)
		}, 1, "DAMAGED stream " + streamB + " revision 3 id -: stream_missing"},
		{"a tampered checkpoint file fails", func(t *testing.T, _, cp string) {
			b, err := os.ReadFile(cp)
			if err != nil {
				t.Fatal(err)
			}
			b = bytes.Replace(b, []byte(`"revision": 3`), []byte(`"revision": 2`), 1)
			if err := os.WriteFile(cp, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, cp := setup(t)
			tc.change(t, dir, cp)
			code, out, errOut := runCmd(t, context.Background(), "verify", "--data-dir", dir, "--against", cp)
			if code != tc.wantCode || !strings.Contains(out, tc.wantOut) {
				t.Errorf("verify --against: exit %d (want %d)\nstdout %q (want %q)\nstderr %q", code, tc.wantCode, out, tc.wantOut, errOut)
			}
			if tc.wantOut == "" && !strings.Contains(errOut, "checkpoint file altered") {
				t.Errorf("tampered checkpoint: stderr %q", errOut)
			}
		})
	}
}

func TestVerifyExportUsage(t *testing.T) {
	dir := t.TempDir()
	cmdLog(t, dir, &fcevents.Generator{}, []string{"fca_usage000000000000000000"}, 1, time.Unix(1705312800, 0))
	for _, args := range [][]string{
		{"verify", "--data-dir", dir, "--page-size", "0"},
		{"verify", "--data-dir", dir, "--against", filepath.Join(dir, "missing.json")},
		{"verify", "--data-dir", dir, "--bogus"},
		{"export", "--data-dir", dir},
		{"export", "--data-dir", dir, "--account", "fca_x", "--format", "xml"},
		{"export", "--data-dir", dir, "--account", "fca_x", "--since", "yesterday"},
	} {
		if code, _, errOut := runCmd(t, context.Background(), args...); code != exitUsage {
			t.Errorf("%v: exit %d (%q), want 2", args, code, errOut)
		}
	}
}

// TestVerifyWebhookSignatures: webhooks ingested by serve keep their
// Stripe-Signature; `verify --webhook-secret` re-checks them against the
// stored bodies and counts those whose secret it was not given.
func TestVerifyWebhookSignatures(t *testing.T) {
	dir := t.TempDir()
	startServe(t, dir, "--dev")
	dc, err := loadDevConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"created", "refreshed_balance", "deactivated"} {
		if code, out, errOut := runCmd(t, context.Background(), "trigger", typ, "--data-dir", dir, "--account", "fca_sigcheck"); code != 0 {
			t.Fatalf("trigger %s: %d %s %s", typ, code, out, errOut)
		}
	}
	for _, tc := range []struct {
		secret string
		want   string
	}{
		{dc.WebhookSecret, "3 webhook signatures re-checked, 0 signed with a secret not given"},
		{"whsec_some_other_secret", "0 webhook signatures re-checked, 3 signed with a secret not given"},
	} {
		code, out, errOut := runCmd(t, context.Background(), "verify", "--data-dir", dir, "--webhook-secret", tc.secret)
		if code != 0 || !strings.Contains(out, tc.want) {
			t.Errorf("verify: exit %d, out %q, err %q; want 0 and %q", code, out, errOut, tc.want)
		}
		if strings.Contains(out+errOut, tc.secret) {
			t.Errorf("verify printed the secret")
		}
	}
	if code, _, errOut := runCmd(t, context.Background(), "verify", "--data-dir", dir, "--webhook-secret", ""); code != exitUsage || !strings.Contains(errOut, "webhook-secret") {
		t.Errorf("empty secret: exit %d, %q; want 2 naming the flag", code, errOut)
	}
}
