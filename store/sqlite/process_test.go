package sqlite

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/store"
)

// childEnv switches the test binary into a child-process role (see TestMain).
const childEnv = "FCAUDIT_SQLITE_TEST_CHILD"

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(runChild(role, os.Getenv("FCAUDIT_SQLITE_TEST_PATH")))
	}
	os.Exit(m.Run())
}

// runChild is the body of a child process. "append" appends from many
// goroutines and prints every acknowledged id on stdout until killed.
func runChild(role, path string) int {
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	switch role {
	case "append-checkpoint":
		return runAppendCheckpoint(s)
	case "append":
		var (
			mu sync.Mutex // one line per write, never interleaved
			wg sync.WaitGroup
		)
		run := fmt.Sprintf("%d", os.Getpid())
		for g := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					id := fmt.Sprintf("evt_%s_%d_%d", run, g, i)
					e := store.Event{ID: id, Type: "t", Data: []byte(`{"id":"` + id + `"}`), ReceivedAt: time.Now(), Source: store.SourceWebhook}
					if _, err := s.Append(context.Background(), fmt.Sprintf("fcaccount-%d", g%4), store.AnyRevision, e); err != nil {
						fmt.Fprintln(os.Stderr, err)
						os.Exit(3)
					}
					mu.Lock()
					fmt.Fprintln(os.Stdout, id)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	return 0
}

func childCmd(t *testing.T, role, path string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+role, "FCAUDIT_SQLITE_TEST_PATH="+path)
	cmd.Stderr = &strings.Builder{}
	return cmd
}

// killAfter runs the child role on path, hands each line it prints to
// onLine and SIGKILLs it after n lines (lines already in the pipe are still
// read). It returns the number of lines read, and fails the test if the
// child exited before the kill.
func killAfter(t *testing.T, role, path string, n int, onLine func(string)) int {
	t.Helper()
	cmd := childCmd(t, role, path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	lines := 0
	killed := false
	for sc.Scan() {
		onLine(sc.Text())
		if lines++; lines == n && !killed {
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child %s exited after %d lines: %v\n%s", role, lines, err, cmd.Stderr)
	}
	return lines
}

// TestCrashKeepsAcknowledgedAppends SIGKILLs a child that appends
// concurrently and checks every append it acknowledged survived, with intact
// hash chains.
func TestCrashKeepsAcknowledgedAppends(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	path := filepath.Join(t.TempDir(), FileName)
	acked := map[string]bool{}
	for round := range 3 {
		n := killAfter(t, "append", path, 300, func(id string) { acked[id] = true })
		t.Logf("round %d: %d acknowledged before the kill took effect", round, n)

		s, err := Open(path, Options{ReadOnly: true})
		if err != nil {
			t.Fatalf("reopen after crash: %v", err)
		}
		stored := map[string]bool{}
		var after store.Position
		for {
			page, err := s.ReadAll(context.Background(), store.ReadOptions{After: after, Limit: 1000, WithoutData: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			for _, e := range page {
				if e.Position != after+1 {
					t.Fatalf("gap in positions: %d after %d", e.Position, after)
				}
				stored[e.ID] = true
				after = e.Position
			}
		}
		for id := range acked {
			if !stored[id] {
				t.Fatalf("round %d: acknowledged event %s lost in the crash", round, id)
			}
		}
		for g := range 4 {
			verifyChain(t, s, fmt.Sprintf("fcaccount-%d", g))
		}
		s.Close()
	}
}

func verifyChain(t *testing.T, s store.Store, stream string) {
	t.Helper()
	evs, err := s.ReadStream(context.Background(), stream, 0, 0)
	if err != nil {
		t.Fatalf("read %s: %v", stream, err)
	}
	prev := store.ChainSeed(stream)
	for i, e := range evs {
		if e.Revision != uint64(i) || e.BodySHA256 != sha256.Sum256(e.Data) {
			t.Fatalf("%s revision %d: bad revision or body hash", stream, i)
		}
		prev = store.ChainHash(prev, e.BodySHA256, e.ID, e.ReceivedAt)
		if prev != e.ChainHash {
			t.Fatalf("%s revision %d: chain broken", stream, i)
		}
	}
}

// TestOtherProcessReadsWhileWriting runs a writing child process while this
// process reads the same file read-only and also appends read-write to it.
func TestOtherProcessReadsWhileWriting(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	path := filepath.Join(t.TempDir(), FileName)
	rw := openTest(t, path, Options{}) // creates the file
	cmd := childCmd(t, "append", path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var acks atomic.Int64
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			acks.Add(1)
		}
	}()
	ro := openTest(t, path, Options{ReadOnly: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Our own appends, to a stream the child also writes, interleave with it.
	for i := range 50 {
		id := fmt.Sprintf("evt_parent_%d", i)
		if _, err := rw.Append(ctx, "fcaccount-0", store.AnyRevision, store.Event{ID: id, Type: "t", Data: []byte("{}"), ReceivedAt: time.Now(), Source: store.SourceImport}); err != nil {
			t.Fatalf("append beside another writer: %v", err)
		}
	}
	// The read-only handle follows the child's writes.
	seen := 0
	err = ro.Subscribe(ctx, 0, store.Filter{}, func(_ context.Context, b []store.RecordedEvent) error {
		seen += len(b)
		if seen >= 500 {
			return errDone
		}
		return nil
	})
	if !errors.Is(err, errDone) {
		t.Fatalf("read-only subscription: %v (saw %d events, child acked %d)\n%s", err, seen, acks.Load(), cmd.Stderr)
	}
	if _, err := ro.Append(ctx, "x", store.AnyRevision, store.Event{ID: "x", Type: "t", Data: []byte("{}"), Source: "s"}); !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("Append on a read-only store: %v, want ErrReadOnly", err)
	}
	if err := ro.Ping(ctx); err != nil {
		t.Errorf("Ping read-only: %v", err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	verifyChain(t, ro, "fcaccount-0")
	checkTree(t, ro)
}

var errDone = errors.New("done")
