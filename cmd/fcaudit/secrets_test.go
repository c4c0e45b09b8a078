package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/fcaudit/fcaudit/api"
	"github.com/fcaudit/fcaudit/audit"
	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/internal/fcevents"
)

// secretEnv is every environment variable that holds a secret, with a value
// the tests look for in output.
var secretEnv = map[string]string{
	"STRIPE_WEBHOOK_SECRET":         "whsec_env_leak_1a2b",
	"FCAUDIT_API_TOKENS":            "tok_env_leak_3c4d",
	"FCAUDIT_REPLAY_SIGNING_SECRET": "whsec_env_replay_leak_5e6f",
	"FCAUDIT_EVENTSTORE":            "esdb://admin:pw_env_leak_7a8b@127.0.0.1:2113?tls=false",
}

func setSecretEnv(t *testing.T) {
	for k, v := range secretEnv {
		t.Setenv(k, v)
	}
}

func leaks(s string) []string {
	var found []string
	for _, secret := range []string{"whsec_env_leak_1a2b", "tok_env_leak_3c4d", "whsec_env_replay_leak_5e6f", "pw_env_leak_7a8b"} {
		if strings.Contains(s, secret) {
			found = append(found, secret)
		}
	}
	return found
}

// --help of every command shows where a secret comes
// from, never the secret itself.
func TestHelpHidesSecretsFromEnv(t *testing.T) {
	setSecretEnv(t)
	var names [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		for _, sub := range c.Commands() {
			p := append(append([]string(nil), path...), sub.Name())
			names = append(names, p)
			walk(sub, p)
		}
	}
	walk(NewRootCommand(nil, io.Discard, io.Discard), nil)
	var all strings.Builder
	for _, p := range names {
		code, out, errOut := runCmd(t, context.Background(), append(p, "--help")...)
		if code != 0 {
			t.Errorf("%v --help: exit %d", p, code)
		}
		if l := leaks(out + errOut); len(l) > 0 {
			t.Errorf("%v --help shows %v:\n%s", p, l, out)
		}
		all.WriteString(out)
	}
	for _, want := range []string{"(set from $STRIPE_WEBHOOK_SECRET)", "(set from $FCAUDIT_API_TOKENS)",
		"(set from $FCAUDIT_REPLAY_SIGNING_SECRET)", "(set from $FCAUDIT_EVENTSTORE)"} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("no command's --help says %q", want)
		}
	}
}

// An EventStoreDB connection string the client cannot parse is reported
// without its credentials.
func TestEventStoreErrorHidesCredentials(t *testing.T) {
	for _, conn := range []string{
		"esdb://admin:pw_env_leak_7a8b@127.0.0.1:notaport",
		"esdb://admin:pw_env_leak_7a8b@h1:1,h2:x",
		"mongodb://admin:pw_env_leak_7a8b@127.0.0.1:2113",
	} {
		code, out, errOut := runCmd(t, context.Background(), "verify", "--data-dir", t.TempDir(), "--eventstore", conn)
		if code == 0 {
			t.Errorf("%s: exit 0", conn)
		}
		if l := leaks(out + errOut); len(l) > 0 {
			t.Errorf("%s: output shows %v:\n%s%s", conn, l, out, errOut)
		}
	}
}

func TestParseSecretLines(t *testing.T) {
	got, err := parseSecretLines([]byte("# rotated 2026-12-04\n\n  whsec_new \r\n\twhsec_old\n# whsec_retired\n"))
	if err != nil || strings.Join(got, ",") != "whsec_new,whsec_old" {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := parseSecretLines([]byte("whsec_a\x00b\n")); err == nil || strings.Contains(err.Error(), "whsec_a") {
		t.Fatalf("control character: %v", err)
	}
}

// The file forms, their precedence, and errors that name
// the file but never print what it holds.
func TestSecretSourceResolve(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	two := write("two", "whsec_file_a\nwhsec_file_b\n")
	one := write("one", "# the receiver's\nwhsec_file_c\n")
	empty := write("empty", "# nothing yet\n\n")
	for k := range secretEnv {
		t.Setenv(k, "")
	}
	for _, tc := range []struct {
		name    string
		list    bool
		args    []string
		env     map[string]string
		want    string // comma-joined secrets
		wantErr string
	}{
		{name: "flags", list: true, args: []string{"--s", "x", "--s", "y"}, want: "x,y"},
		{name: "file flag", list: true, args: []string{"--s-file", two}, want: "whsec_file_a,whsec_file_b"},
		{name: "env", list: true, env: map[string]string{"S": "x,y"}, want: "x,y"},
		{name: "env file", list: true, env: map[string]string{"S_FILE": two}, want: "whsec_file_a,whsec_file_b"},
		{name: "flag beats env file", list: true, args: []string{"--s", "x"}, env: map[string]string{"S_FILE": two}, want: "x"},
		{name: "file flag beats env", list: true, args: []string{"--s-file", one}, env: map[string]string{"S": "x"}, want: "whsec_file_c"},
		{name: "none", list: true, want: ""},
		{name: "both flags", list: true, args: []string{"--s", "x", "--s-file", two}, wantErr: "--s-file: cannot be combined with --s"},
		{name: "both env", list: true, env: map[string]string{"S": "x", "S_FILE": two}, wantErr: "S and S_FILE are both set"},
		{name: "missing file", list: true, args: []string{"--s-file", filepath.Join(dir, "nope")}, wantErr: "no such file"},
		{name: "empty file", list: true, args: []string{"--s-file", empty}, wantErr: "holds no secret"},
		{name: "single from file", args: []string{"--s-file", one}, want: "whsec_file_c"},
		{name: "single, two lines", args: []string{"--s-file", two}, wantErr: "holds 2 secrets, want one"},
		{name: "single env with comma", env: map[string]string{"S": "x,y"}, want: "x,y"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			s := &secretSource{name: "s", env: "S", list: tc.list}
			fl := pflag.NewFlagSet("t", pflag.ContinueOnError)
			s.register(fl, "a secret")
			if err := fl.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			got, _, err := s.resolve()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "whsec_file") {
					t.Fatalf("the error shows a secret: %v", err)
				}
				return
			}
			if err != nil || strings.Join(got, ",") != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// --help names the _FILE variables when they are set, not the path's
// content.
func TestHelpNamesSecretFileEnv(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s")
	if err := os.WriteFile(p, []byte("whsec_env_leak_1a2b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STRIPE_WEBHOOK_SECRET_FILE", p)
	_, out, _ := runCmd(t, context.Background(), "serve", "--help")
	if !strings.Contains(out, "(set from $STRIPE_WEBHOOK_SECRET_FILE)") || len(leaks(out)) > 0 {
		t.Fatalf("serve --help:\n%s", out)
	}
}

// trigger and loadgen take the webhook secret from the environment with
// serve's rule: the value and the _FILE form at once is a usage error.
func TestTriggerSecretEnvBothSet(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s")
	if err := os.WriteFile(p, []byte("whsec_from_file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STRIPE_WEBHOOK_SECRET", "whsec_from_env")
	t.Setenv("STRIPE_WEBHOOK_SECRET_FILE", p)
	for _, cmd := range [][]string{{"trigger", "created"}, {"loadgen", "-n", "1"}} {
		code, _, errOut := runCmd(t, context.Background(), append(cmd, "--url", "http://127.0.0.1:1/webhooks/stripe")...)
		if code != 2 || !strings.Contains(errOut, "both set") || strings.Contains(errOut, "whsec_from") {
			t.Errorf("%s: exit %d, stderr %q; want 2 naming both variables, no secret", cmd[0], code, errOut)
		}
	}
}

// A reload that fails keeps the secrets in use; one that succeeds replaces
// them (the dev secret stays).
func TestSecretReload(t *testing.T) {
	dir := t.TempDir()
	sf, tf := filepath.Join(dir, "secrets"), filepath.Join(dir, "tokens")
	for p, c := range map[string]string{sf: "whsec_old\n", tf: "tok_old\n"} {
		if err := os.WriteFile(p, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	v, err := ingest.NewVerifier([]string{"whsec_old", "whsec_dev"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	r := secretReload{
		webhookSecrets: &secretSource{name: "webhook-secret", list: true}, secretFile: sf, devSecret: []string{"whsec_dev"}, verifier: v,
		apiTokens: &secretSource{name: "api-token", list: true}, tokenFile: tf, tokens: api.NewTokenSet([]string{"tok_old"}),
		log: slog.New(slog.NewTextHandler(&logs, nil)),
	}
	fps := func() string { return strings.Join(v.Fingerprints(), ",") }
	if err := os.WriteFile(sf, []byte("# rolling\nwhsec_new\nwhsec_old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tf, []byte("tok_new\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.reload()
	want := strings.Join([]string{ingest.Fingerprint("whsec_new"), ingest.Fingerprint("whsec_old"), ingest.Fingerprint("whsec_dev")}, ",")
	if fps() != want || !r.tokens.Match("tok_new") || r.tokens.Match("tok_old") {
		t.Fatalf("after reload: fingerprints %s (want %s), tokens new %v old %v", fps(), want, r.tokens.Match("tok_new"), r.tokens.Match("tok_old"))
	}
	// A botched edit: the file is emptied. Everything in use is kept.
	if err := os.WriteFile(sf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(tf); err != nil {
		t.Fatal(err)
	}
	r.reload()
	if fps() != want || !r.tokens.Match("tok_new") {
		t.Fatalf("a failed reload changed the sets: %s", fps())
	}
	if !strings.Contains(logs.String(), "webhook secrets not reloaded") || !strings.Contains(logs.String(), "API tokens not reloaded") {
		t.Errorf("failed reloads not reported:\n%s", logs.String())
	}
	for _, s := range []string{"whsec_new", "whsec_old", "whsec_dev", "tok_new", "tok_old"} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("the log shows %s:\n%s", s, logs.String())
		}
	}
}

// verify --write-checkpoint never clobbers: an existing
// file is refused before the log is read (usage error) unless --force,
// which keeps the file's mode; a symlink is always refused; '-' writes the
// checkpoint to stdout and the report to stderr.
func TestVerifyWriteCheckpointNeverClobbers(t *testing.T) {
	dir := t.TempDir()
	cmdLog(t, dir, &fcevents.Generator{}, []string{"fca_clobber00000000000000000"}, 2, time.Unix(1705312800, 0))
	ctx := context.Background()
	existing := filepath.Join(dir, "cp.json")
	if err := os.WriteFile(existing, []byte("keep"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(existing, 0o640); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCmd(t, ctx, "verify", "--data-dir", dir, "--write-checkpoint", existing); code != exitUsage || !strings.Contains(errOut, "--force") {
		t.Errorf("existing file: exit %d, stderr %q; want 2 suggesting --force", code, errOut)
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep" {
		t.Fatalf("refused checkpoint changed the file: %q", b)
	}
	if code, _, errOut := runCmd(t, ctx, "verify", "--data-dir", dir, "--write-checkpoint", existing, "--force"); code != 0 {
		t.Fatalf("--force: exit %d %q", code, errOut)
	}
	if fi, _ := os.Stat(existing); fi.Mode().Perm() != 0o640 {
		t.Errorf("--force: mode %v, want the file's own 0640", fi.Mode().Perm())
	}
	fresh := filepath.Join(dir, "fresh.json")
	if code, _, errOut := runCmd(t, ctx, "verify", "--data-dir", dir, "--write-checkpoint", fresh); code != 0 {
		t.Fatalf("new file: exit %d %q", code, errOut)
	}
	if fi, _ := os.Stat(fresh); fi.Mode().Perm() != 0o600 {
		t.Errorf("new checkpoint mode %v, want 0600", fi.Mode().Perm())
	}
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(fresh, link); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCmd(t, ctx, "verify", "--data-dir", dir, "--write-checkpoint", link, "--force"); code != exitUsage || !strings.Contains(errOut, "not a regular file") {
		t.Errorf("symlink: exit %d, stderr %q", code, errOut)
	}
	code, out, errOut := runCmd(t, ctx, "verify", "--data-dir", dir, "--write-checkpoint", "-")
	if code != 0 || !strings.HasPrefix(out, "{") || !strings.Contains(errOut, "OK verified") {
		t.Fatalf("-: exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}
	p := filepath.Join(dir, "stdout.json")
	if err := os.WriteFile(p, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.ReadCheckpoint(p); err != nil {
		t.Errorf("the checkpoint on stdout does not read back: %v", err)
	}
}
