package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/fcevents"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts it
// when the test ends (register it before anything that uses the directory,
// so the users are cleaned up first). It skips the test when mounting is not
// allowed (not root, or no CAP_SYS_ADMIN in a container).
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Skipf("cannot mount a tmpfs to fill up (%v): the full-disk test needs root with CAP_SYS_ADMIN; "+
			"store/sqlite's TestDiskFull covers the store's side with max_page_count", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a file until the file system is full (ENOSPC).
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		_, err := f.Write(chunk)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatalf("fill %s: %v", path, err)
		}
	}
	// Use up the last partial block too.
	for {
		if _, err := f.Write(chunk[:512]); err != nil {
			break
		}
	}
}

// TestDiskFull runs serve on a small tmpfs and fills it: webhooks get 503
// store_unavailable with the JSON error envelope and Retry-After, /readyz
// fails, reads still work; once space is freed, serve recovers without a
// restart, and every event acknowledged before or after is stored.
func TestDiskFull(t *testing.T) {
	dir := mountTmpfs(t, 16<<20)
	dataDir := filepath.Join(dir, "data")
	srv := startServe(t, serveConfig{dataDir: dataDir})
	c := newClient(4)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	ids := map[string]acked{}
	post := func(ev event) (int, answer) {
		t.Helper()
		code, a, err := postWebhook(ctx, c, srv.url, ev.body, testSecret)
		if err != nil {
			t.Fatalf("post %s: %v", ev.id, err)
		}
		if code == http.StatusOK {
			ids[ev.id] = acked{stream: a.Stream, position: a.Position}
		}
		return code, a
	}
	account := gen.NewAccountID()
	for range 20 {
		if code, a := post(newEvent(fc.TypeRefreshedBalance, account)); code != http.StatusOK {
			t.Fatalf("before the disk filled: %d %+v", code, a)
		}
	}

	filler := filepath.Join(dir, "filler")
	fill(t, filler)
	// SQLite may still have room in already allocated WAL frames, so a few
	// appends can succeed after the disk is full; the WAL cannot grow or be
	// checkpointed into the database file for long.
	for i := 0; ; i++ {
		if i == 5000 {
			t.Fatalf("5000 webhooks all stored on a full disk (%d acknowledged)", len(ids))
		}
		code, a := post(newEvent(fc.TypeRefreshedBalance, account))
		if code == http.StatusOK {
			continue
		}
		if code != http.StatusServiceUnavailable || a.errType() != "store_unavailable" || a.Error.Message == "" {
			t.Fatalf("webhook on a full disk: %d %+v, want 503 store_unavailable", code, a)
		}
		t.Logf("first 503 after %d more acknowledged appends on the full disk: %s", i, a.Error.Message)
		break
	}
	// While full: more webhooks fail the same way, /readyz says not ready,
	// reads still answer.
	for range 3 {
		ev := newEvent(fc.TypeRefreshedBalance, account)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.url+"/webhooks/stripe", bytesReader(ev.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Stripe-Signature", fcevents.Sign(ev.body, testSecret, time.Now()))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
			resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("webhook while full: %d Retry-After=%q Content-Type=%q, want 503 JSON with Retry-After",
				resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"))
		}
	}
	waitStatus(t, c, srv.url+"/readyz", http.StatusServiceUnavailable, 30*time.Second)
	checkStored(t, srv.url, ids)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, srv.url+"/readyz", http.StatusOK, 30*time.Second)
	for range 20 {
		if code, a := post(newEvent(fc.TypeRefreshedBalance, account)); code != http.StatusOK {
			t.Fatalf("after space was freed: %d %+v", code, a)
		}
	}
	checkStored(t, srv.url, ids)
	if n := verifyChains(t, dataDir); n != int64(len(ids)) {
		t.Fatalf("log holds %d events, acknowledged %d: a failed append was stored", n, len(ids))
	}
}
