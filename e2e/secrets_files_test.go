package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
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

// Issue 16 item 7: --help of the real binary shows where each secret comes
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

// Issue 16 item 8: serve reads its secrets from files and re-reads them on
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
