package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/fcevents"
)

// fcaudit runs the binary with args and env added to the environment, and
// returns its exit status, stdout and stderr.
func fcaudit(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errOut.String()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return 0, out.String(), errOut.String()
}

// --help of the real binary shows where each secret comes
// from, never its value.
func TestHelpShowsNoSecrets(t *testing.T) {
	env := []string{
		"STRIPE_WEBHOOK_SECRET=whsec_e2e_help_leak_41",
		"FCAUDIT_API_TOKENS=tok_e2e_help_leak_42",
		"FCAUDIT_REPLAY_SIGNING_SECRET=whsec_e2e_help_leak_43",
		"FCAUDIT_EVENTSTORE=esdb://admin:pw_e2e_help_leak_44@127.0.0.1:2113?tls=false",
	}
	for _, cmd := range []string{"serve", "replay", "verify", "export", "backup", "trigger", "projections"} {
		code, out, errOut := fcaudit(t, env, cmd, "--help")
		if code != 0 {
			t.Errorf("%s --help: exit %d", cmd, code)
		}
		if strings.Contains(out+errOut, "_help_leak_") {
			t.Errorf("%s --help shows a secret:\n%s", cmd, out)
		}
		if !strings.Contains(out, "(set from $FCAUDIT_EVENTSTORE)") {
			t.Errorf("%s --help does not say where --eventstore comes from:\n%s", cmd, out)
		}
	}
	_, out, _ := fcaudit(t, env, "serve", "--help")
	for _, want := range []string{"(set from $STRIPE_WEBHOOK_SECRET)", "(set from $FCAUDIT_API_TOKENS)", "--webhook-secret-file", "--api-token-file"} {
		if !strings.Contains(out, want) {
			t.Errorf("serve --help lacks %q", want)
		}
	}
	// A connection string the client cannot parse: its error hides the
	// password too.
	code, out, errOut := fcaudit(t, nil, "verify", "--eventstore", "esdb://admin:pw_e2e_help_leak_45@127.0.0.1:notaport")
	if code == 0 || strings.Contains(out+errOut, "_help_leak_") {
		t.Errorf("verify with a bad --eventstore: exit %d, output shows the password:\n%s%s", code, out, errOut)
	}
}

// serve reads its secrets from files and re-reads them on
// SIGHUP: a roll (both lines), then the old line removed; the old secret
// and token are refused afterwards, the new ones accepted, without a
// restart. A reload of a broken file keeps the secrets in use.
func TestSecretFilesRotateOnSIGHUP(t *testing.T) {
	const (
		oldSecret = "whsec_e2e_file_old_0a1b2c3d"
		newSecret = "whsec_e2e_file_new_4e5f6a7b"
		oldToken  = "tok_e2e_file_old_8c9d"
		newToken  = "tok_e2e_file_new_0e1f"
	)
	dir := t.TempDir()
	secretFile, tokenFile := filepath.Join(dir, "whsec"), filepath.Join(dir, "tokens")
	writeFile := func(p, content string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(secretFile, "# Stripe endpoint secret\n"+oldSecret+"\n")
	writeFile(tokenFile, oldToken+"\n")
	srv := startServe(t, serveConfig{dataDir: filepath.Join(dir, "data"),
		secrets: []string{"--webhook-secret-file", secretFile},
		env:     []string{"FCAUDIT_API_TOKENS_FILE=" + tokenFile}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newClient(1)

	check := func(stage, secret string, wantHook int, token string, wantAPI int) {
		t.Helper()
		ev := newEvent(fc.TypeCreated, "")
		if code, a, err := postWebhook(ctx, c, srv.url, ev.body, secret); err != nil || code != wantHook {
			t.Errorf("%s: webhook signed with %s: %d %+v %v, want %d", stage, secret, code, a, err, wantHook)
		}
		if code, _, err := get(ctx, c, srv.url+"/v1/events?limit=1", token); err != nil || code != wantAPI {
			t.Errorf("%s: GET /v1/events with %s: %d %v, want %d", stage, token, code, err, wantAPI)
		}
	}
	reloads := 0
	hup := func() {
		t.Helper()
		reloads++
		if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for strings.Count(srv.stderr.String(), `"SIGHUP`)+strings.Count(srv.stderr.String(), `"secrets reloaded"`) < reloads {
			if time.Now().After(deadline) {
				t.Fatalf("no reload logged after SIGHUP #%d; stderr:\n%s", reloads, srv.stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	check("start", oldSecret, http.StatusOK, oldToken, http.StatusOK)
	check("start", newSecret, http.StatusBadRequest, newToken, http.StatusUnauthorized)

	// The roll: both secrets and both tokens accepted.
	writeFile(secretFile, newSecret+"\n"+oldSecret+"\n")
	writeFile(tokenFile, newToken+"\n"+oldToken+"\n")
	hup()
	check("roll", oldSecret, http.StatusOK, oldToken, http.StatusOK)
	check("roll", newSecret, http.StatusOK, newToken, http.StatusOK)

	// The old ones removed.
	writeFile(secretFile, newSecret+"\n")
	writeFile(tokenFile, "# rotated\n"+newToken+"\n")
	hup()
	check("after", oldSecret, http.StatusBadRequest, oldToken, http.StatusUnauthorized)
	check("after", newSecret, http.StatusOK, newToken, http.StatusOK)

	// A botched edit (emptied file) is reported; the secrets stay.
	writeFile(secretFile, "")
	hup()
	check("botched", newSecret, http.StatusOK, newToken, http.StatusOK)
	if !strings.Contains(srv.stderr.String(), "webhook secrets not reloaded") {
		t.Errorf("the failed reload was not reported; stderr:\n%s", srv.stderr.String())
	}

	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := srv.exitCode(30 * time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM", code)
	}
	for _, s := range []string{oldSecret, newSecret, oldToken, newToken} {
		if strings.Contains(srv.stderr.String(), s) {
			t.Errorf("the log shows %s:\n%s", s, srv.stderr.String())
		}
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatal(err)
	}
	if code := s.exitCode(30 * time.Second); code != 0 {
		s.t.Fatalf("exit status %d after SIGTERM; stderr:\n%s", code, s.stderr.String())
	}
}

// rawEvent is a minimal signed-able Stripe event with the given ids.
func rawEvent(id, typ, objType, objID string) []byte {
	b, _ := json.Marshal(map[string]any{"id": id, "object": "event", "type": typ, "created": time.Now().Unix(),
		"livemode": false, "api_version": "2023-10-16",
		"data": map[string]any{"object": map[string]any{"id": objID, "object": objType, "status": "active"}}})
	return b
}

// ingestSome runs serve on a new data dir under umask 022 (the data dir
// created beforehand with mode 0755, as an operator would), stores n
// events of one account plus extra bodies, and stops it. It returns the
// data dir and the account.
func ingestSome(t *testing.T, n int, extra ...[]byte) (dataDir, account string) {
	t.Helper()
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
	dataDir = filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, serveConfig{dataDir: dataDir})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newClient(1)
	first := newEvent(fc.TypeCreated, "")
	var head struct {
		Data struct {
			Object struct {
				ID string `json:"id"`
			} `json:"object"`
		} `json:"data"`
	}
	if err := json.Unmarshal(first.body, &head); err != nil {
		t.Fatal(err)
	}
	account = head.Data.Object.ID
	bodies := [][]byte{first.body}
	for i := 1; i < n; i++ {
		bodies = append(bodies, newEvent(fc.TypeRefreshedBalance, account).body)
	}
	for _, b := range append(bodies, extra...) {
		if code, a, err := postWebhook(ctx, c, srv.url, b, testSecret); err != nil || code != http.StatusOK {
			t.Fatalf("webhook: %d %+v %v", code, a, err)
		}
	}
	srv.stop()
	return dataDir, account
}

func modeOf(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// export --out and verify --write-checkpoint never
// clobber: an existing file is refused (and kept) unless --force, which
// keeps its mode; a symlink (here to /dev/null) and a directory are always
// refused; '-' writes to stdout.
func TestOutputsNeverClobber(t *testing.T) {
	dataDir, account := ingestSome(t, 3)
	dir := t.TempDir()
	existing := filepath.Join(dir, "history.ndjson")
	if err := os.WriteFile(existing, []byte("keep me\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(existing, 0o640); err != nil {
		t.Fatal(err)
	}
	devnull := filepath.Join(dir, "devnull")
	if err := os.Symlink(os.DevNull, devnull); err != nil {
		t.Fatal(err)
	}
	export := func(args ...string) (int, string, string) {
		return fcaudit(t, nil, append([]string{"export", "--data-dir", dataDir, "--account", account}, args...)...)
	}
	verify := func(args ...string) (int, string, string) {
		return fcaudit(t, nil, append([]string{"verify", "--data-dir", dataDir}, args...)...)
	}
	for _, tc := range []struct {
		name string
		run  func(...string) (int, string, string)
		args []string
	}{
		{"export over a file", export, []string{"--out", existing}},
		{"export over a symlink", export, []string{"--out", devnull, "--force"}},
		{"export over a directory", export, []string{"--out", dir, "--force"}},
		{"checkpoint over a file", verify, []string{"--write-checkpoint", existing}},
		{"checkpoint over a symlink", verify, []string{"--write-checkpoint", devnull, "--force"}},
	} {
		code, _, errOut := tc.run(tc.args...)
		if code != 2 {
			t.Errorf("%s: exit %d, want 2; stderr %q", tc.name, code, errOut)
		}
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me\n" {
		t.Fatalf("a refused write changed the file: %q", b)
	}
	if fi, err := os.Lstat(devnull); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the symlink was replaced: %v", err)
	}
	if fi, err := os.Lstat(os.DevNull); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("%s is no longer a character device", os.DevNull)
	}
	if code, _, errOut := export("--out", existing, "--force"); code != 0 {
		t.Fatalf("export --force: exit %d %q", code, errOut)
	}
	if m := modeOf(t, existing); m != 0o640 {
		t.Errorf("export --force: mode %v, want the file's own 0640", m)
	}
	if b, _ := os.ReadFile(existing); strings.Count(string(b), "\n") != 3 {
		t.Errorf("export --force wrote %q", b)
	}
	code, out, errOut := export("--out", "-")
	if code != 0 || strings.Count(out, "\n") != 3 {
		t.Errorf("export --out -: exit %d, %d lines; stderr %q", code, strings.Count(out, "\n"), errOut)
	}
	code, out, errOut = verify("--write-checkpoint", "-")
	if code != 0 || !strings.HasPrefix(out, "{") || !strings.Contains(errOut, "OK verified") {
		t.Errorf("verify --write-checkpoint -: exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}
}

// Everything fcaudit writes that holds event data is
// 0600 (directories 0700) although the data directory already existed with
// 0755 and the umask is 022: the logs and their -wal/-shm, exports,
// bundles, checkpoints and backups.
func TestFilesArePrivate(t *testing.T) {
	dataDir, account := ingestSome(t, 3)
	// serve has stopped: the -wal and -shm are gone after a clean close,
	// so look at them while a writer holds the log open.
	out := t.TempDir()
	for _, args := range [][]string{
		{"export", "--data-dir", dataDir, "--account", account, "--out", filepath.Join(out, "h.csv"), "--format", "csv", "--bundle", filepath.Join(out, "bundle")},
		{"verify", "--data-dir", dataDir, "--write-checkpoint", filepath.Join(out, "cp.json")},
		{"backup", "--data-dir", dataDir, "--out", filepath.Join(out, "backup.db")},
	} {
		if code, _, errOut := fcaudit(t, nil, args...); code != 0 {
			t.Fatalf("%v: exit %d %q", args, code, errOut)
		}
	}
	var files []string
	for _, p := range []string{"h.csv", "cp.json", "backup.db"} {
		files = append(files, filepath.Join(out, p))
	}
	err := filepath.WalkDir(filepath.Join(out, "bundle"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if m := modeOf(t, p); m != 0o700 {
				t.Errorf("%s: mode %v, want 0700", p, m)
			}
		} else {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A running serve's files, -wal and -shm included.
	srv := startServe(t, serveConfig{dataDir: dataDir})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if code, _, err := postWebhook(ctx, newClient(1), srv.url, newEvent(fc.TypeCreated, "").body, testSecret); err != nil || code != http.StatusOK {
		t.Fatalf("webhook: %d %v", code, err)
	}
	for _, db := range []string{"events.db", "readmodels.db"} {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			files = append(files, filepath.Join(dataDir, db+suffix))
		}
	}
	for _, p := range files {
		if m := modeOf(t, p); m != 0o600 {
			t.Errorf("%s: mode %v, want 0600", p, m)
		}
	}
	srv.stop()
}

// Identifiers outside the accepted shapes are
// payload_invalid; a 255-byte id is stored, fetched and bundled; the
// stream collision of hyphenated types and ids cannot happen; provenance keeps only the
// signed parts of Stripe-Signature, and they still re-verify.
func TestIdentifiersAndProvenance(t *testing.T) {
	dataDir := t.TempDir()
	srv := startServe(t, serveConfig{dataDir: dataDir})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newClient(1)
	const acct = "financial_connections.account.created"
	for name, body := range map[string][]byte{
		"event id with /":            rawEvent("evt_a/b", acct, "financial_connections.account", "fca_ok1"),
		"event id of 256 bytes":      rawEvent("evt_"+strings.Repeat("x", 252), acct, "financial_connections.account", "fca_ok2"),
		"account id with /":          rawEvent("evt_ok3", acct, "financial_connections.account", "fca_a/b"),
		"account id with a space":    rawEvent("evt_ok4", acct, "financial_connections.account", "fca a"),
		"object type with -":         rawEvent("evt_ok5", "customer.created", "a-b", "c"),
		"type that is a glob":        rawEvent("evt_ok6", "financial_connections.account.*", "financial_connections.account", "fca_ok6"),
		"object id that is reserved": rawEvent("evt_ok7", "customer.created", "customer", "unidentified"),
	} {
		code, a, err := postWebhook(ctx, c, srv.url, body, testSecret)
		if err != nil || code != http.StatusBadRequest || a.errType() != "payload_invalid" {
			t.Errorf("%s: %d %+v %v, want 400 payload_invalid", name, code, a, err)
		}
	}
	// Object a id b-c is fine; object a-b id c was refused above.
	if code, a, err := postWebhook(ctx, c, srv.url, rawEvent("evt_ok8", "a.updated", "a", "b-c"), testSecret); err != nil || code != http.StatusOK || a.Stream != "stripe-a-b-c" {
		t.Errorf("object a id b-c: %d %+v %v", code, a, err)
	}

	longID := "evt_" + strings.Repeat("L", 251)
	account := "fca_" + strings.Repeat("A", 251)
	body := rawEvent(longID, acct, "financial_connections.account", account)
	now := time.Now()
	good := fcevents.Sign(body, testSecret, now)
	header := good + ",v0=" + strings.Repeat("0", 64) + ",x=" + strings.Repeat("p", 30<<10)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.url+"/webhooks/stripe", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", header)
	if code, a, err := doJSON(c, req); err != nil || code != http.StatusOK {
		t.Fatalf("255-byte ids: %d %+v %v", code, a, err)
	}
	code, b, err := get(ctx, c, srv.url+"/v1/events/"+longID, testToken)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET the 255-byte id: %d %v", code, err)
	}
	var rec struct {
		Provenance struct {
			SignatureHeader string `json:"signature_header"`
		} `json:"provenance"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Provenance.SignatureHeader != good {
		t.Errorf("stored signature header %.120q (%d bytes), want %q", rec.Provenance.SignatureHeader, len(rec.Provenance.SignatureHeader), good)
	}
	srv.stop()

	bundle := filepath.Join(t.TempDir(), "bundle")
	if code, _, errOut := fcaudit(t, nil, "export", "--data-dir", dataDir, "--account", account, "--bundle", bundle, "--out", filepath.Join(t.TempDir(), "h.ndjson")); code != 0 {
		t.Fatalf("export --bundle with a 255-byte id: exit %d %q", code, errOut)
	}
	if code, out, errOut := fcaudit(t, nil, "verify", "--data-dir", dataDir, "--webhook-secret", testSecret); code != 0 || !strings.Contains(out, "0 signed with a secret not given") {
		t.Fatalf("verify --webhook-secret: exit %d\n%s%s", code, out, errOut)
	}
}

// A bundle that cannot be written — here the disk fills
// up half way — leaves nothing behind, not a partial directory.
func TestBundleFailureLeavesNothing(t *testing.T) {
	small := mountTmpfs(t, 64<<10)
	dataDir, account := ingestSome(t, 20)
	bundle := filepath.Join(small, "bundle")
	out := filepath.Join(t.TempDir(), "h.ndjson")
	code, _, errOut := fcaudit(t, nil, "export", "--data-dir", dataDir, "--account", account, "--bundle", bundle, "--out", out)
	if code == 0 {
		t.Fatal("a bundle larger than the file system was written")
	}
	if !strings.Contains(errOut, "no space left") {
		t.Errorf("stderr %q, want the disk-full error", errOut)
	}
	if ents, err := os.ReadDir(small); err != nil || len(ents) != 0 {
		t.Errorf("the failed bundle left %v (%v)", ents, err)
	}
}

// A failed replay's lines never show the target's query
// string or credentials; the signing secret can come from a file.
func TestReplayFailureRedacted(t *testing.T) {
	const leak = "tok_e2e_replay_leak_9f"
	dataDir, _ := ingestSome(t, 1)
	secretFile := filepath.Join(t.TempDir(), "whsec")
	if err := os.WriteFile(secretFile, []byte("whsec_e2e_replay_target\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := fcaudit(t, nil, "replay", "--data-dir", dataDir, "--max-retries", "0", "--signing-secret-file", secretFile,
		"--to", "http://user:"+leak+"@127.0.0.1:1/hook?token="+leak)
	// Nothing ever answers: the run stops at once, its error quoting the
	// target URL (redacted).
	if code != 1 || !strings.Contains(errOut, "replay target unreachable: http://127.0.0.1:1/hook?token=REDACTED") {
		t.Fatalf("replay to a closed port: exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}
	if strings.Contains(out+errOut, leak) || strings.Contains(out+errOut, "whsec_e2e_replay_target") {
		t.Errorf("replay output shows a secret:\n%s%s", out, errOut)
	}
}
