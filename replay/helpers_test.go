package replay

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

const testSecret = "whsec_replay_test_0123456789abcdef"

// openStore opens a fresh embedded store in a temp dir.
func openStore(tb testing.TB) (*sqlite.Store, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), sqlite.FileName)
	st, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st, path
}

var (
	reEvt     = regexp.MustCompile(`"evt_[A-Za-z0-9]+"`)
	reFca     = regexp.MustCompile(`"fca_[A-Za-z0-9]+"`)
	reCreated = regexp.MustCompile(`\n  "created": [0-9]+`)
	reType    = regexp.MustCompile(`\n  "type": "([^"]+)"`)
)

// template is a Stripe fixture whose ids and created time can be replaced.
type template struct {
	body []byte
	typ  string
}

func templates(tb testing.TB) []template {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join("..", "testdata", "stripe", "0*.json"))
	if err != nil || len(names) != 7 {
		tb.Fatalf("fixtures: %v (%d files)", err, len(names))
	}
	sort.Strings(names)
	var out []template
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			tb.Fatal(err)
		}
		m := reType.FindSubmatch(b)
		if m == nil {
			tb.Fatalf("%s: no type", n)
		}
		out = append(out, template{body: b, typ: string(m[1])})
	}
	return out
}

// body renders a template with new ids and created time.
func (t template) render(evt, fca string, created int64) []byte {
	b := reEvt.ReplaceAll(t.body, []byte(`"`+evt+`"`))
	b = reFca.ReplaceAll(b, []byte(`"`+fca+`"`))
	return reCreated.ReplaceAll(b, fmt.Appendf(nil, "\n  \"created\": %d", created))
}

// t0 is the created time of the first seeded event.
const t0 = 1705312800

// seed appends accounts×perAccount events, interleaved across accounts
// (round-robin), event i of an account using fixture i%len(templates); created grows by
// 60 s per event in store order. It returns the events in store order.
func seed(tb testing.TB, st store.Store, accounts, perAccount int) []store.RecordedEvent {
	tb.Helper()
	tpls := templates(tb)
	ctx := context.Background()
	n := 0
	for i := range perAccount {
		for a := range accounts {
			fca := fmt.Sprintf("fca_seed%04d", a)
			evt := fmt.Sprintf("evt_seed%04d_%04d", a, i)
			tpl := tpls[i%len(tpls)]
			created := int64(t0 + 60*n)
			n++
			_, err := st.Append(ctx, fc.AccountStream(fca), store.AnyRevision, store.Event{
				ID: evt, Type: tpl.typ, Data: tpl.render(evt, fca, created),
				ReceivedAt: time.Unix(created+5, 0).UTC(), Created: created,
				APIVersion: "2023-10-16", Source: store.SourceWebhook,
			})
			if err != nil {
				tb.Fatal(err)
			}
		}
	}
	return readAll(tb, st)
}

func readAll(tb testing.TB, st store.Store) []store.RecordedEvent {
	tb.Helper()
	var out []store.RecordedEvent
	var after store.Position
	for {
		page, err := st.ReadAll(context.Background(), store.ReadOptions{After: after, Limit: 10000})
		if err != nil {
			tb.Fatal(err)
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Position
	}
}

// delivery is one request the receiver accepted.
type delivery struct {
	id, account string
	body        []byte
	header      http.Header
}

// receiver is an httptest webhook endpoint that verifies signatures with
// stripe-go, records deliveries, and checks that no two requests of one
// account overlap. respond, if set, picks the answer (default 200).
type receiver struct {
	tb      testing.TB
	srv     *httptest.Server
	respond func(n int, id string, w http.ResponseWriter) bool // true: answered

	mu       sync.Mutex
	got      []delivery
	attempts map[string]int
	inFlight map[string]bool
	errs     []string
}

func newReceiver(tb testing.TB) *receiver {
	rc := &receiver{tb: tb, attempts: map[string]int{}, inFlight: map[string]bool{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.handle))
	tb.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) handle(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		rc.fail("read body: %v", err)
		return
	}
	ev, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), testSecret,
		webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	if err != nil {
		rc.fail("signature rejected: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	acct := fmt.Sprint(ev.Data.Object["id"])
	rc.mu.Lock()
	if rc.inFlight[acct] {
		rc.errs = append(rc.errs, fmt.Sprintf("two requests of %s in flight at once", acct))
	}
	rc.inFlight[acct] = true
	rc.attempts[ev.ID]++
	n := rc.attempts[ev.ID]
	rc.mu.Unlock()
	defer func() {
		rc.mu.Lock()
		rc.inFlight[acct] = false
		rc.mu.Unlock()
	}()
	if rc.respond != nil && rc.respond(n, ev.ID, w) {
		return
	}
	rc.mu.Lock()
	rc.got = append(rc.got, delivery{id: ev.ID, account: acct, body: body, header: r.Header.Clone()})
	rc.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (rc *receiver) fail(format string, args ...any) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.errs = append(rc.errs, fmt.Sprintf(format, args...))
}

// deliveries returns the accepted deliveries and fails the test on any
// receiver-side error.
func (rc *receiver) deliveries() []delivery {
	rc.tb.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.errs) > 0 {
		rc.tb.Fatalf("receiver saw %d errors, first: %s", len(rc.errs), strings.Join(rc.errs[:min(3, len(rc.errs))], "; "))
	}
	return append([]delivery(nil), rc.got...)
}

// fakeClock advances only when slept on; it records every sleep.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.sleeps = append(c.sleeps, d)
		c.now = c.now.Add(d)
	}
	return nil
}

func (c *fakeClock) slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// noJitter makes backoff deterministic: the upper bound itself.
func noJitter(d time.Duration) time.Duration { return d }

func sender(rc *receiver, runID string) *HTTPSender {
	return &HTTPSender{URL: rc.srv.URL + "/hook", Secret: testSecret, RunID: runID, Client: NewHTTPClient(16), Timeout: 10 * time.Second}
}
