package backfill_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/backfill"
	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/store"
)

// stripeMockVersion is what `make test` installs (Makefile STRIPE_MOCK_VERSION).
const stripeMockVersion = "v0.203.0"

// TestMakeTestInstallsStripeMock: `make test` needs nothing installed by
// hand: it installs this pinned stripe-mock itself and hands it to the
// tests, which then require it (never a silent skip).
func TestMakeTestInstallsStripeMock(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	out, err := exec.Command("make", "-C", "..", "-n", "-B", "test").CombinedOutput()
	if err != nil {
		t.Fatalf("make -n -B test: %v\n%s", err, out)
	}
	dry := string(out)
	install := "go install github.com/stripe/stripe-mock@" + stripeMockVersion
	if !strings.Contains(dry, install) {
		t.Errorf("make test does not run %q:\n%s", install, dry)
	}
	if !strings.Contains(dry, stripeMockEnv+"=") || strings.Index(dry, install) > strings.Index(dry, "go test") {
		t.Errorf("make test does not install stripe-mock before the tests and pass %s:\n%s", stripeMockEnv, dry)
	}
}

// The event fixtures_fc.json makes stripe-mock's /v1/events return.
const (
	mockEventID   = "evt_1OeXmB2eZvKYlo2CuE7yW3Hd"
	mockAccountID = "fca_1OeXkQ2eZvKYlo2CqT7hN3aB"
)

// stripeMockEnv names the binary `make test` installed; set, the test
// requires it.
const stripeMockEnv = "FCAUDIT_STRIPE_MOCK"

// findStripeMock returns the stripe-mock binary: $FCAUDIT_STRIPE_MOCK, else
// the pinned one `make test` installs in the repository's bin/, else one on
// PATH or in $(go env GOPATH)/bin.
func findStripeMock() (string, error) {
	if p := os.Getenv(stripeMockEnv); p != "" {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() {
			return "", fmt.Errorf("%s=%s: not a binary (%v)", stripeMockEnv, p, err)
		}
		return p, nil
	}
	if p, err := filepath.Abs(filepath.Join("..", "bin", "stripe-mock-"+stripeMockVersion)); err == nil {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		return p, nil
	}
	var dirs []string
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, d := range filepath.SplitList(strings.TrimSpace(string(out))) {
			dirs = append(dirs, filepath.Join(d, "bin"))
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "stripe-mock")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("stripe-mock is neither in bin/ (make test installs it), on PATH nor in $(go env GOPATH)/bin")
}

// startStripeMock runs stripe-mock on free loopback ports with the FC
// fixtures and returns its HTTP base URL once it answers. Under `make test`
// (FCAUDIT_STRIPE_MOCK set) or in CI (CI=true) a missing binary fails the
// test; a bare `go test` skips it, saying how to get it.
func startStripeMock(t *testing.T) string {
	t.Helper()
	bin, err := findStripeMock()
	if err != nil {
		msg := fmt.Sprintf("%v; `make test` installs it, or: go install github.com/stripe/stripe-mock@%s", err, stripeMockVersion)
		if os.Getenv("CI") == "true" || os.Getenv(stripeMockEnv) != "" {
			t.Fatalf("stripe-mock required here: %s", msg)
		}
		t.Skip("skipping the stripe-mock test: " + msg)
	}
	fixtures, err := filepath.Abs(filepath.Join("..", "testdata", "stripe-mock", "fixtures_fc.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Free ports can be taken between probing and stripe-mock's listen;
	// try a few times.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		base, err := tryStartStripeMock(t, bin, fixtures)
		if err == nil {
			return base
		}
		lastErr = err
	}
	t.Fatalf("start stripe-mock: %v", lastErr)
	return ""
}

func tryStartStripeMock(t *testing.T, bin, fixtures string) (string, error) {
	httpPort, err := freePort()
	if err != nil {
		return "", err
	}
	httpsPort, err := freePort()
	if err != nil {
		return "", err
	}
	logPath := filepath.Join(t.TempDir(), "stripe-mock.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	defer logFile.Close()
	cmd := exec.Command(bin,
		"-http-addr", "127.0.0.1:"+httpPort,
		"-https-addr", "127.0.0.1:"+httpsPort,
		"-fixtures", fixtures)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("run %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	base := "http://127.0.0.1:" + httpPort
	deadline := time.Now().Add(20 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case err := <-exited:
			out, _ := os.ReadFile(logPath)
			exited <- err
			return "", fmt.Errorf("stripe-mock exited (%v) before answering:\n%s", err, out)
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/events", nil)
		req.Header.Set("Authorization", "Bearer sk_test_123")
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Cleanup(stop)
				return base, nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			out, _ := os.ReadFile(logPath)
			return "", fmt.Errorf("stripe-mock did not answer GET %s/v1/events within 20s:\n%s", base, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}

// TestStripeMock proves the client wiring against a real Stripe API mock:
// stripe-mock ignores filters and is stateless, so it always lists the one
// fixture event.
func TestStripeMock(t *testing.T) {
	base := startStripeMock(t)
	ctx := context.Background()
	st := openStore(t)
	o := backfill.Options{APIKey: "sk_test_123", APIBase: base, MaxNetworkRetries: -1}

	rep, err := backfill.Run(ctx, st, o)
	if err != nil {
		t.Fatalf("Run against stripe-mock: %v", err)
	}
	if got, want := rep.Summary(), "fetched 1, already stored 0, appended 1"; got != want {
		t.Fatalf("summary %q, want %q", got, want)
	}
	e, err := st.EventByID(ctx, mockEventID)
	if err != nil {
		t.Fatalf("fixture event not stored: %v", err)
	}
	if e.Source != store.SourceBackfill || e.Stream != fc.AccountStream(mockAccountID) ||
		e.Type != fc.TypeRefreshedBalance || e.APIVersion != "2023-10-16" {
		t.Errorf("stored %s in %s, type %s, api_version %s", e.Source, e.Stream, e.Type, e.APIVersion)
	}
	// stripe-mock renders compact JSON (indented only for curl): the body
	// is the event object's bytes from the page.
	if env, err := fc.ParseEnvelope(e.Data); err != nil || env.ID != mockEventID ||
		!strings.HasPrefix(string(e.Data), `{"api_version":"2023-10-16",`) {
		t.Errorf("stored body is not the event as stripe-mock rendered it (%v):\n%.300s", err, e.Data)
	}

	rep, err = backfill.Run(ctx, st, o)
	if err != nil {
		t.Fatalf("second Run: %v", err)
	}
	if got, want := rep.Summary(), "fetched 1, already stored 1, appended 0"; got != want {
		t.Errorf("second summary %q, want %q", got, want)
	}
	// A platform listing a connected account's events: stripe-mock takes
	// the Stripe-Account header stripe-go sends.
	o.StripeAccount = "acct_1OeWz12eZvKYlo2C"
	if rep, err = backfill.Run(ctx, st, o); err != nil || rep.Fetched != 1 {
		t.Errorf("Run with StripeAccount: fetched %d, %v", rep.Fetched, err)
	}
	o.StripeAccount = ""

	// stripe-mock refuses a key that is not a test secret key.
	o.APIKey = "pk_test_123"
	if _, err := backfill.Run(ctx, st, o); !errors.Is(err, backfill.ErrKeyRejected) {
		t.Errorf("publishable key: err = %v, want ErrKeyRejected", err)
	}
}
