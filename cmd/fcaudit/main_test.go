package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// runCmd runs one command line in-process and returns its exit status and output.
func runCmd(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(ctx, args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestVersionAndHelp(t *testing.T) {
	code, out, _ := runCmd(t, context.Background(), "version")
	if code != 0 || !strings.HasPrefix(out, "fcaudit ") || !strings.Contains(out, "2023-10-16") {
		t.Fatalf("version: %d %q", code, out)
	}
	root := NewRootCommand(nil, io.Discard, io.Discard)
	for _, c := range root.Commands() {
		if c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		if c.Example == "" && !c.HasSubCommands() {
			t.Errorf("%s --help has no example", c.Name())
		}
		code, out, _ := runCmd(t, context.Background(), c.Name(), "--help")
		if code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("%s --help: %d %q", c.Name(), code, out)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("STRIPE_WEBHOOK_SECRET", "")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--data-dir", dir}, "no webhook secret: set --webhook-secret or STRIPE_WEBHOOK_SECRET"},
		{[]string{"serve", "--data-dir", dir, "--webhook-secret", "whsec_x", "--tolerance", "0s"}, "--tolerance:"},
		{[]string{"serve", "--data-dir", dir, "--dev", "--listen", "0.0.0.0:0"}, "--listen:"},
		{[]string{"serve", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"trigger", "exploded", "--data-dir", dir}, `unknown event type "exploded"`},
		{[]string{"trigger", "created", "--data-dir", dir}, "start 'fcaudit serve --dev' first"},
		{[]string{"trigger", "created", "--account", "acct_1", "--url", "http://127.0.0.1:1", "--secret", "s"}, "--account:"},
		{[]string{"serve", "--data-dir", dir, "--webhook-secret", "whsec_x", "--log-format", "xml"}, "--log-format:"},
	}
	for _, tt := range tests {
		code, _, errOut := runCmd(t, context.Background(), tt.args...)
		if code != exitUsage || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 mentioning %q", tt.args, code, errOut, tt.want)
		}
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeDevAndTrigger runs `serve --dev` in-process on a free port, sends
// an event with `trigger`, reads it back over /v1 with the dev token, and
// shuts down through context cancellation (what SIGINT does).
func TestServeDevAndTrigger(t *testing.T) {
	dir := t.TempDir()
	addr := strings.TrimPrefix(startServe(t, dir, "--dev"), "http://")

	info, err := os.Stat(filepath.Join(dir, devConfigFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("dev.json: %v, mode %v", err, info.Mode())
	}
	dc, err := loadDevConfig(dir)
	if err != nil || !strings.HasPrefix(dc.WebhookSecret, "whsec_") || dc.APIToken == "" {
		t.Fatalf("dev config %+v: %v", dc, err)
	}

	code, out, errOut := runCmd(t, context.Background(), "trigger", "created", "--data-dir", dir, "--account", "fca_trig1")
	if code != 0 {
		t.Fatalf("trigger: %d %s %s", code, out, errOut)
	}
	var ack struct {
		ID     string `json:"id"`
		Stream string `json:"stream"`
	}
	if err := json.Unmarshal([]byte(out), &ack); err != nil || ack.Stream != "fcaccount-fca_trig1" {
		t.Fatalf("trigger output %q: %v", out, err)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/v1/accounts/fca_trig1/events", nil)
	req.Header.Set("Authorization", "Bearer "+dc.APIToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), ack.ID) {
		t.Fatalf("account events: %d %s", resp.StatusCode, body)
	}
}

// startServe runs `serve` in-process on a free port until the test ends.
func startServe(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return startServeLog(t, dir, &syncBuffer{}, args...)
}

// syncBuffer is a bytes.Buffer that serve's log and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServeLog is startServe with serve's stderr (its log) in serveErr.
func startServeLog(t *testing.T, dir string, serveErr *syncBuffer, args ...string) string {
	t.Helper()
	addr := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "--data-dir", dir, "--listen", addr}, args...), nil, io.Discard, serveErr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exited %d: %s", code, serveErr.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop after cancellation")
		}
	})
	waitReady(t, "http://"+addr+"/readyz")
	return "http://" + addr
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not ready within 20s", url)
}

// TestArgumentUsageErrors: every command-line mistake about positional
// arguments, anywhere in the tree, exits 2 and names the argument.
func TestArgumentUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"export", "fca_x"}, `unexpected argument "fca_x"`},
		{[]string{"verify", "extra"}, `unexpected argument "extra"`},
		{[]string{"trigger"}, "missing argument TYPE"},
		{[]string{"projections", "bogus"}, `unknown command "bogus"`},
		{[]string{"projections", "rebuild", "account_status", "more"}, `unexpected argument "more"`},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"completion", "bash", "x"}, `unexpected argument "x"`},
		{[]string{"help", "bogus"}, `unknown help topic "bogus"`},
		{[]string{"help", "projections", "bogus"}, `unknown help topic "projections bogus"`},
	}
	for _, tt := range tests {
		code, out, errOut := runCmd(t, context.Background(), tt.args...)
		if code != exitUsage || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, stdout %.80q, stderr %q; want exit 2 mentioning %q", tt.args, code, out, errOut, tt.want)
		}
	}
	// A bare group command is a request for its help, as is help TOPIC.
	if code, out, _ := runCmd(t, context.Background(), "projections"); code != 0 || !strings.Contains(out, "rebuild") {
		t.Errorf("projections: exit %d %q", code, out)
	}
	if code, out, _ := runCmd(t, context.Background(), "help", "accounts", "show"); code != 0 || !strings.Contains(out, "--as-of") {
		t.Errorf("help accounts show: exit %d %q", code, out)
	}
}

func TestVersionFlag(t *testing.T) {
	code, out, errOut := runCmd(t, context.Background(), "--version")
	_, want, _ := runCmd(t, context.Background(), "version")
	if code != 0 || out != want {
		t.Fatalf("--version: exit %d %q %q; want %q", code, out, errOut, want)
	}
}

// TestServeDevSecondPort: a second `serve --dev` on the same data directory
// but another port leaves dev.json naming the first (alive) server, so
// trigger keeps reaching it; a record whose server is gone is replaced.
func TestServeDevSecondPort(t *testing.T) {
	dir := t.TempDir()
	first := startServe(t, dir, "--dev")
	second := startServe(t, dir, "--dev")
	dc, err := loadDevConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if dc.URL != first+"/webhooks/stripe" {
		t.Fatalf("dev.json url %q after a second dev server (%s); want the first's %s", dc.URL, second, first)
	}

	// Stale: the recorded server is gone.
	stale := t.TempDir()
	dead := "http://" + freePort(t) + "/webhooks/stripe"
	if err := writeDevConfig(stale, devConfig{WebhookSecret: "whsec_dev_stale", APIToken: "fca_dev_stale", URL: dead}); err != nil {
		t.Fatal(err)
	}
	live := startServe(t, stale, "--dev")
	if dc, _ := loadDevConfig(stale); dc.URL != live+"/webhooks/stripe" || dc.WebhookSecret != "whsec_dev_stale" {
		t.Fatalf("stale dev.json not replaced: %+v; want url %s with the kept credentials", dc, live)
	}
}
