package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestREADMEQuickstart runs the README's quickstart literally against the
// real binary: `make run` is `serve --dev` on ./fcaudit-data (here on a
// free port, which the test substitutes for 8080), then the second shell
// block, line by line under bash -e, from a directory holding bin/fcaudit.
// Its last line of output must be the account's status.
func TestREADMEQuickstart(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	start := strings.Index(section, "## Quickstart")
	if start < 0 {
		t.Fatal("README has no ## Quickstart")
	}
	section = section[start:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1)
	if len(blocks) < 2 || !strings.Contains(blocks[0][1], "make run") {
		t.Fatalf("quickstart: want a `make run` block then the commands block; got %d blocks", len(blocks))
	}
	script := blocks[1][1]

	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(binPath, filepath.Join(dir, "bin", "fcaudit")); err != nil {
		t.Fatal(err)
	}
	// make run = bin/fcaudit serve --dev --data-dir ./fcaudit-data
	serve := exec.Command(binPath, "serve", "--dev", "--data-dir", "./fcaudit-data", "--listen", "127.0.0.1:0", "--log-format", "json")
	serve.Dir = dir
	serve.Env = append(os.Environ(), "STRIPE_WEBHOOK_SECRET=", "FCAUDIT_API_TOKENS=")
	pipe, err := serve.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			stderr.Write(append(sc.Bytes(), '\n'))
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "fcaudit serving" && rec.Addr != "" {
				select {
				case addrCh <- rec.Addr:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() { _ = serve.Process.Kill(); _ = serve.Wait() })
	var addr string
	select {
	case addr = <-addrCh:
	case <-time.After(30 * time.Second):
		t.Fatalf("serve --dev did not start; stderr:\n%s", stderr.String())
	}
	port := addr[strings.LastIndex(addr, ":")+1:]
	script = strings.ReplaceAll(script, "localhost:8080", "127.0.0.1:"+port)

	cmd := exec.Command("bash", "-e", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "STRIPE_WEBHOOK_SECRET=")
	out, err := cmd.Output()
	if err != nil {
		var errOut string
		if ee, ok := err.(*exec.ExitError); ok {
			errOut = string(ee.Stderr)
		}
		t.Fatalf("quickstart commands: %v\nstdout:\n%s\nstderr:\n%s\nserve:\n%s", err, out, errOut, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := strings.Fields(lines[len(lines)-1])
	if len(last) == 0 || last[len(last)-1] != "active" {
		t.Fatalf("the quickstart's last line %q does not end with the account's status (active); output:\n%s", lines[len(lines)-1], out)
	}
}
