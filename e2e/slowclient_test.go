package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/fcevents"
)

// drip writes data one byte every interval until the server closes the
// connection or everything was written. It reports whether the server cut
// the connection before the end, and the response it sent, if any.
func drip(t *testing.T, conn net.Conn, data []byte, interval time.Duration) (cut bool, resp string) {
	t.Helper()
	closed := make(chan struct{})
	var got []byte
	go func() {
		defer close(closed)
		got, _ = io.ReadAll(conn) // returns when the server closes (or resets)
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := range data {
		select {
		case <-closed:
			return true, string(got)
		case <-tick.C:
		}
		if _, err := conn.Write(data[i : i+1]); err != nil {
			<-closed
			return true, string(got)
		}
	}
	return false, ""
}

// TestSlowClients runs against the real binary, whose server has a 5 s
// read-header timeout and a 15 s read timeout (api/server.go): a client
// that trickles its headers or its body is cut off, nothing it sent is
// stored, and 1,000 idle connections do not keep a normal webhook from
// succeeding.
//
// Timeouts are asserted as "cut off long before the client would have
// finished", never as durations; the test takes about 15 s (the read
// timeout), its subtests run in parallel.
func TestSlowClients(t *testing.T) {
	t.Parallel()
	srv := startServe(t, serveConfig{dataDir: t.TempDir()})
	host := strings.TrimPrefix(srv.url, "http://")
	dial := func(t *testing.T) net.Conn {
		t.Helper()
		conn, err := net.DialTimeout("tcp", host, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}

	t.Run("headers", func(t *testing.T) {
		t.Parallel()
		conn := dial(t)
		if _, err := io.WriteString(conn, "POST /webhooks/stripe HTTP/1.1\r\nHost: "+host+"\r\n"); err != nil {
			t.Fatal(err)
		}
		// 300 header bytes at 10/s would take 30 s; the server must give up
		// at its read-header timeout, without answering.
		rest := "X-Slow: " + strings.Repeat("a", 290) + "\r\n\r\n"
		cut, resp := drip(t, conn, []byte(rest), 100*time.Millisecond)
		if !cut {
			t.Fatal("the server read 30 s of trickled headers without cutting the connection")
		}
		if resp != "" {
			t.Errorf("answered a request whose headers never ended: %q", resp)
		}
	})

	t.Run("body", func(t *testing.T) {
		t.Parallel()
		ev := newEvent(fc.TypeRefreshedBalance, "")
		conn := dial(t)
		head := fmt.Sprintf("POST /webhooks/stripe HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"+
			"Stripe-Signature: %s\r\nContent-Length: %d\r\n\r\n", host, fcevents.Sign(ev.body, testSecret, time.Now()), len(ev.body))
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatal(err)
		}
		// A ≈3 KiB body at 20 bytes/s would take minutes (the signature
		// would expire too); the read timeout must end it after 15 s.
		cut, resp := drip(t, conn, ev.body, 50*time.Millisecond)
		if !cut {
			t.Fatal("the server read a trickled body for minutes without cutting the connection")
		}
		// The handler sees the read fail and answers 400 (invalid_request,
		// naming the body), or the connection just ends; never a success.
		t.Logf("answer to the cut-off body: %.80q", resp)
		if resp != "" && !strings.HasPrefix(resp, "HTTP/1.1 400 ") {
			t.Errorf("answer to a body cut off by the read timeout: %q, want 400 or none", resp)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if code, body, err := get(ctx, newClient(1), srv.url+"/v1/events/"+ev.id, testToken); err != nil || code != http.StatusNotFound {
			t.Errorf("event whose body was cut off: GET %d %.200s %v, want 404", code, body, err)
		}
	})

	t.Run("idle", func(t *testing.T) {
		t.Parallel()
		const n = 1000
		conns := make([]net.Conn, 0, n)
		// Half have made one request and sit idle in keep-alive (held up to
		// the 120 s idle timeout); half never send a byte (held up to the
		// read-header timeout, so they are opened last).
		var mu sync.Mutex
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for range 10 {
			wg.Go(func() {
				for range n / 2 / 10 {
					conn, err := net.DialTimeout("tcp", host, 10*time.Second)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					conns = append(conns, conn)
					mu.Unlock()
					if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: "+host+"\r\n\r\n"); err != nil {
						errs <- err
						return
					}
					_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
					resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
					if err != nil {
						errs <- fmt.Errorf("keep-alive /healthz: %w", err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						errs <- fmt.Errorf("keep-alive /healthz: %s", resp.Status)
						return
					}
				}
			})
		}
		wg.Wait()
		for range n / 2 {
			conn, err := net.DialTimeout("tcp", host, 10*time.Second)
			if err != nil {
				errs <- err
				break
			}
			conns = append(conns, conn)
		}
		t.Cleanup(func() {
			for _, c := range conns {
				c.Close()
			}
		})
		close(errs)
		for err := range errs {
			t.Fatalf("opening %d idle connections: %v", n, err)
		}

		// With all of them open, a normal delivery and a read succeed.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c := newClient(1)
		ev := newEvent(fc.TypeCreated, "")
		code, a, err := postWebhook(ctx, c, srv.url, ev.body, testSecret)
		if err != nil || code != http.StatusOK {
			t.Fatalf("webhook beside %d idle connections: %d %+v %v", len(conns), code, a, err)
		}
		if code, body, err := get(ctx, c, srv.url+"/v1/events/"+ev.id, testToken); err != nil || code != http.StatusOK {
			t.Fatalf("GET beside %d idle connections: %d %.200s %v", len(conns), code, body, err)
		}
	})
}
