package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/audit"
	"github.com/fcaudit/fcaudit/internal/fcevents"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

// binPath is the fcaudit binary TestMain built for this test binary.
var binPath string

const (
	testSecret = "whsec_e2e_5f0c1b9d4a7e4c33a2f1"
	testToken  = "tok_e2e_8d2c7a61b0f94e5a"
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	// 1,000 idle connections plus the server's own descriptors: make sure
	// neither this process nor the children (who inherit the limit) run out.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	dir, err := os.MkdirTemp("", "fcaudit-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "fcaudit")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	// Not built with -race: the children are the system under test, the
	// race detector would only slow them down (the packages' own tests run
	// with it).
	build := exec.Command(goTool, "build", "-o", binPath, "github.com/fcaudit/fcaudit/cmd/fcaudit")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: go build ./cmd/fcaudit:", err)
		return 1
	}
	return m.Run()
}

// lockedBuffer collects a child's stderr; the reader goroutine writes while
// the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// server is a running `fcaudit serve` child process.
type server struct {
	t       testing.TB
	cmd     *exec.Cmd
	dataDir string
	url     string // http://127.0.0.1:PORT
	stderr  *lockedBuffer

	done    chan struct{} // closed when the process has been waited for
	waitErr error
}

type serveConfig struct {
	dataDir string
	// extra arguments after the defaults (e.g. --log-level debug).
	extra []string
	// env is added to the child's environment.
	env []string
	// noFile, when set, runs the child with RLIMIT_NOFILE (soft and hard)
	// lowered to it.
	noFile int
	// secrets, when set, replaces the default --webhook-secret and
	// --api-token arguments (e.g. with their file forms).
	secrets []string
}

// startServe runs `fcaudit serve` on 127.0.0.1:0 (the kernel picks a free
// port; the child logs it) and waits until it is serving. The process is
// killed when the test ends if it is still running.
func startServe(t testing.TB, c serveConfig) *server {
	t.Helper()
	secrets := c.secrets
	if secrets == nil {
		secrets = []string{"--webhook-secret", testSecret, "--api-token", testToken}
	}
	args := append([]string{"serve", "--data-dir", c.dataDir, "--listen", "127.0.0.1:0", "--log-format", "json"}, secrets...)
	args = append(args, c.extra...)
	cmd := exec.Command(binPath, args...)
	if c.noFile > 0 {
		cmd = exec.Command("/bin/sh", append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, c.noFile), binPath}, args...)...)
	}
	cmd.Env = append(os.Environ(), c.env...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, dataDir: c.dataDir, stderr: &lockedBuffer{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", binPath, err)
	}
	addrCh := make(chan string, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			s.stderr.Write(append(line, '\n'))
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "fcaudit serving" && rec.Addr != "" {
				select {
				case addrCh <- rec.Addr:
				default:
				}
			}
		}
		_, _ = io.Copy(s.stderr, pipe)
	}()
	go func() {
		<-readDone // Wait closes the pipe: read everything first
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
	})
	select {
	case addr := <-addrCh:
		s.url = "http://" + addr
	case <-s.done:
		t.Fatalf("fcaudit serve exited before serving (%v); stderr:\n%s", s.waitErr, s.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("fcaudit serve did not start serving within 30s; stderr:\n%s", s.stderr.String())
	}
	return s
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *server) kill() {
	s.t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.t.Fatalf("process %d still running 10s after SIGKILL", s.cmd.Process.Pid)
	}
}

// exitCode waits (bounded) for the process to exit and returns its status.
func (s *server) exitCode(timeout time.Duration) int {
	s.t.Helper()
	select {
	case <-s.done:
	case <-time.After(timeout):
		s.t.Fatalf("process %d did not exit within %s; stderr:\n%s", s.cmd.Process.Pid, timeout, s.stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(s.waitErr, &ee) {
		return ee.ExitCode()
	}
	if s.waitErr != nil {
		s.t.Fatalf("wait: %v", s.waitErr)
	}
	return 0
}

// event is one generated, not yet signed FC event.
type event struct {
	id   string
	body []byte
}

// gen makes ≈3 KiB bodies, the size of real FC events.
var gen = &fcevents.Generator{Size: 3 << 10}

// newEvent makes an event of typ for account ("" for a new one). It is
// called from sender goroutines, so a generator bug panics instead of
// calling t.Fatal.
func newEvent(typ, account string) event {
	body := gen.Event(typ, account, time.Now().Unix())
	var head struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &head); err != nil || head.ID == "" {
		panic(fmt.Sprintf("generated event has no id (%v): %.200s", err, body))
	}
	return event{id: head.ID, body: body}
}

// answer is the JSON of a webhook response, success or error.
type answer struct {
	ID        string `json:"id"`
	Stream    string `json:"stream"`
	Revision  uint64 `json:"revision"`
	Position  uint64 `json:"position"`
	Duplicate bool   `json:"duplicate"`
	Error     *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

func (a answer) errType() string {
	if a.Error == nil {
		return ""
	}
	return a.Error.Type
}

// newClient returns a client for load: enough idle connections for the
// senders, and a bound on every request.
func newClient(conns int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns
	tr.MaxIdleConnsPerHost = conns
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// postWebhook signs body with secret now and posts it. err is a transport
// error (no answer).
func postWebhook(ctx context.Context, c *http.Client, baseURL string, body []byte, secret string) (int, answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/webhooks/stripe", bytes.NewReader(body))
	if err != nil {
		return 0, answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", fcevents.Sign(body, secret, time.Now()))
	return doJSON(c, req)
}

func doJSON(c *http.Client, req *http.Request) (int, answer, error) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, answer{}, fmt.Errorf("read answer: %w", err)
	}
	var a answer
	if err := json.Unmarshal(b, &a); err != nil {
		return resp.StatusCode, a, fmt.Errorf("answer %d is not JSON: %.300s", resp.StatusCode, b)
	}
	return resp.StatusCode, a, nil
}

// get sends an authenticated GET and returns the status and body.
func get(ctx context.Context, c *http.Client, url, token string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// waitStatus polls url until it answers want, failing after timeout with the
// last answer.
func waitStatus(t testing.TB, c *http.Client, url string, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		code, body, err := get(ctx, c, url, "")
		cancel()
		if err == nil && code == want {
			return
		}
		last = fmt.Sprintf("%d %s %v", code, bytes.TrimSpace(body), err)
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: still %s after %s, want %d", url, last, timeout, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// acked is what a 200 answer promised: the event is stored there.
type acked struct {
	stream   string
	position uint64
}

// checkStored fetches every acknowledged id from the API (8 at a time) and
// fails for each one that is missing or stored elsewhere than acknowledged.
func checkStored(t testing.TB, baseURL string, ids map[string]acked) {
	t.Helper()
	c := newClient(8)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type job struct {
		id string
		a  acked
	}
	jobs := make(chan job)
	var (
		mu       sync.Mutex
		problems []string
		wg       sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for j := range jobs {
				code, body, err := get(ctx, c, baseURL+"/v1/events/"+j.id, testToken)
				var rec struct {
					Stream   string `json:"stream"`
					Position uint64 `json:"position"`
				}
				switch {
				case err != nil:
				case code != http.StatusOK:
					err = fmt.Errorf("status %d: %.200s", code, body)
				default:
					if err = json.Unmarshal(body, &rec); err == nil && (rec.Stream != j.a.stream || rec.Position != j.a.position) {
						err = fmt.Errorf("stored at %s@%d, acknowledged at %s@%d", rec.Stream, rec.Position, j.a.stream, j.a.position)
					}
				}
				if err != nil {
					mu.Lock()
					problems = append(problems, fmt.Sprintf("%s: %v", j.id, err))
					mu.Unlock()
				}
			}
		})
	}
	for id, a := range ids {
		jobs <- job{id, a}
	}
	close(jobs)
	wg.Wait()
	if len(problems) > 0 {
		if len(problems) > 20 {
			problems = append(problems[:20], fmt.Sprintf("… and %d more", len(problems)-20))
		}
		t.Fatalf("%d of %d acknowledged events not retrievable:\n%s", len(problems), len(ids), strings.Join(problems, "\n"))
	}
}

// verifyChains checks every stream's hash chain and body hashes in dataDir:
// with `fcaudit verify` when the binary has it, and always with
// audit.Verify over a read-only handle (serve may still be running: readers
// beside the writer are supported). It returns the number of events checked.
func verifyChains(t testing.TB, dataDir string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if exec.CommandContext(ctx, binPath, "verify", "--help").Run() == nil {
		out, err := exec.CommandContext(ctx, binPath, "verify", "--data-dir", dataDir).CombinedOutput()
		if err != nil {
			t.Fatalf("fcaudit verify: %v\n%s", err, out)
		}
	}
	st, err := sqlite.Open(filepath.Join(dataDir, sqlite.FileName), sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open event log read-only: %v", err)
	}
	defer st.Close()
	// With the store's Merkle tree: the tree recomputed from the events
	// must equal the stored one and every published checkpoint.
	rep, err := audit.Verify(ctx, st, audit.VerifyOptions{Tree: st})
	if err != nil {
		t.Fatalf("audit.Verify: %v", err)
	}
	if !rep.Intact() || !rep.Tree.Checked {
		t.Fatalf("hash chains or Merkle tree broken after the crash: %v %v", rep.Damaged, rep.Tree.Problems)
	}
	return rep.Events
}

// storedIDs reads where every event of dataDir's log is stored, through a
// read-only handle (safe beside a running writer, or after it exited).
func storedIDs(t testing.TB, dataDir string) map[string]acked {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(dataDir, sqlite.FileName), sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open event log read-only: %v", err)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := map[string]acked{}
	var after store.Position
	for {
		evs, err := st.ReadAll(ctx, store.ReadOptions{After: after, Limit: 1000, WithoutData: true})
		if err != nil {
			t.Fatalf("read the event log: %v", err)
		}
		for _, e := range evs {
			out[e.ID] = acked{stream: e.Stream, position: uint64(e.Position)}
		}
		if len(evs) == 0 {
			return out
		}
		after = evs[len(evs)-1].Position
	}
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
