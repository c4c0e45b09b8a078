package projections

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

// fixtureAccount is the account of testdata/stripe's timeline.
const fixtureAccount = "fca_1OeXkQ2eZvKYlo2CqT7hN3aB"

var fixtureNames = []string{
	"01_account.created.json",
	"02_account.refreshed_balance.json",
	"03_account.refreshed_ownership.json",
	"04_account.refreshed_transactions.json",
	"05_account.deactivated.json",
	"06_account.reactivated.json",
	"07_account.disconnected.json",
}

func readFixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "stripe", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// envelope is the metadata a test needs from a Stripe event body.
type envelope struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Created  int64  `json:"created"`
	Livemode bool   `json:"livemode"`
	Version  string `json:"api_version"`
}

func toEvent(tb testing.TB, body []byte, received time.Time) store.Event {
	tb.Helper()
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		tb.Fatal(err)
	}
	return store.Event{ID: env.ID, Type: env.Type, Data: body, ReceivedAt: received, Created: env.Created,
		Livemode: env.Livemode, APIVersion: env.Version, Source: store.SourceWebhook}
}

// fixtureEvents returns the 7 fixture events as recorded events of one
// stream, positions 1..7 in file order, received one minute after created.
func fixtureEvents(tb testing.TB) []store.RecordedEvent {
	tb.Helper()
	out := make([]store.RecordedEvent, len(fixtureNames))
	for i, n := range fixtureNames {
		e := toEvent(tb, readFixture(tb, n), time.Time{})
		e.ReceivedAt = time.Unix(e.Created+60, 0).UTC()
		out[i] = store.RecordedEvent{Event: e, Stream: fc.AccountStream(fixtureAccount), Revision: uint64(i), Position: store.Position(i + 1)}
	}
	return out
}

func openStore(tb testing.TB, dir string) *sqlite.Store {
	tb.Helper()
	st, err := sqlite.Open(filepath.Join(dir, sqlite.FileName), sqlite.Options{PollInterval: 20 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

func openRunner(tb testing.TB, dir string, log Log, opts Options) *Runner {
	tb.Helper()
	r, err := Open(filepath.Join(dir, FileName), log, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

// startRunner runs r.Run until the test ends (or the returned stop is called).
func startRunner(tb testing.TB, r *Runner) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				tb.Errorf("Run: %v", err)
			}
		})
	}
	tb.Cleanup(stop)
	return stop
}

// waitCaughtUp polls until r has nothing left to apply (bounded).
func waitCaughtUp(tb testing.TB, r *Runner) Status {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last Status
	for time.Now().Before(deadline) {
		sts, err := r.Status(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		last = sts[0]
		if last.EventsBehind == 0 && last.Error == "" {
			return last
		}
		time.Sleep(10 * time.Millisecond)
	}
	tb.Fatalf("projection did not catch up in 30s: %+v", last)
	return last
}

// templates are the fixture bodies with their account id, event id and
// created time as placeholders, used to generate realistic histories.
type template struct {
	typ  string
	body []byte
}

func templates(tb testing.TB) []template {
	tb.Helper()
	out := make([]template, len(fixtureNames))
	for i, n := range fixtureNames {
		b := readFixture(tb, n)
		var env envelope
		if err := json.Unmarshal(b, &env); err != nil {
			tb.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte(fixtureAccount), []byte("{{ACCOUNT}}"))
		b = bytes.ReplaceAll(b, []byte(env.ID), []byte("{{EVENT}}"))
		b = bytes.Replace(b, []byte(fmt.Sprintf(`"created": %d,`, env.Created)), []byte(`"created": {{CREATED}},`), 1)
		out[i] = template{typ: env.Type, body: b}
	}
	return out
}

// history generates nEvents events over nAccounts accounts: each account
// walks the fixture timeline (created, refreshes, deactivated, reactivated,
// …, cycling through the refresh/deactivate/reactivate part), and about one
// event in ten is delivered late (its created is older than its
// predecessor's). Events of different accounts interleave.
type history struct {
	perAccount map[string][]store.Event
	accounts   []string
	total      int
}

func genHistory(tb testing.TB, seed uint64, nEvents, nAccounts int) *history {
	tb.Helper()
	tpl := templates(tb)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	h := &history{perAccount: make(map[string][]store.Event, nAccounts)}
	base := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	for a := range nAccounts {
		id := fmt.Sprintf("fca_gen%08d%04x", a, seed&0xffff)
		h.accounts = append(h.accounts, id)
	}
	for i := range nEvents {
		id := h.accounts[i%nAccounts]
		k := len(h.perAccount[id])
		t := tpl[0]
		if k > 0 {
			t = tpl[1+(k-1)%(len(tpl)-1)]
		}
		created := base.Unix() + int64(k)*3600 + int64(rng.IntN(600))
		if k > 1 && rng.IntN(10) == 0 {
			created -= 2 * 3600 // delivered late: older than the previous event
		}
		evID := fmt.Sprintf("evt_gen%010d%04x", i, seed&0xffff)
		body := bytes.ReplaceAll(t.body, []byte("{{ACCOUNT}}"), []byte(id))
		body = bytes.ReplaceAll(body, []byte("{{EVENT}}"), []byte(evID))
		body = bytes.Replace(body, []byte("{{CREATED}}"), []byte(fmt.Sprint(created)), 1)
		h.perAccount[id] = append(h.perAccount[id], store.Event{ID: evID, Type: t.typ, Data: body,
			ReceivedAt: base.Add(time.Duration(i) * time.Millisecond), Created: created,
			APIVersion: "2023-10-16", Source: store.SourceWebhook})
	}
	h.total = nEvents
	return h
}

// appendHistory appends the history in rounds (event k of every account,
// then k+1, …) from several goroutines, so streams interleave in the log.
func appendHistory(tb testing.TB, st store.Store, h *history) {
	tb.Helper()
	const workers = 8
	rounds := 0
	for _, evs := range h.perAccount {
		rounds = max(rounds, len(evs))
	}
	for k := range rounds {
		inParallel(tb, workers, func(w int) error {
			for a := w; a < len(h.accounts); a += workers {
				id := h.accounts[a]
				if k >= len(h.perAccount[id]) {
					continue
				}
				if _, err := st.Append(context.Background(), fc.AccountStream(id), store.AnyRevision, h.perAccount[id][k]); err != nil {
					return err
				}
			}
			return nil
		})
	}
}

// inParallel runs fn(0), …, fn(n-1) on n goroutines and fails tb with the
// first error any returned.
func inParallel(tb testing.TB, n int, fn func(w int) error) {
	tb.Helper()
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() { errs <- fn(w) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// allAccounts lists every row of the live read model.
func allAccounts(tb testing.TB, r *Runner) []AccountStatus {
	tb.Helper()
	var out []AccountStatus
	after := ""
	for {
		page, more, err := r.Accounts(context.Background(), ListOptions{StartingAfter: after, Limit: 1000})
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, page...)
		if !more {
			return out
		}
		after = page[len(page)-1].ID
	}
}

// expectedFromLog folds every account stream of the log with FoldAccount:
// the reference the projections must equal.
func expectedFromLog(tb testing.TB, st store.Store, accounts []string) []AccountStatus {
	tb.Helper()
	ids := append([]string(nil), accounts...)
	sort.Strings(ids)
	out := make([]AccountStatus, 0, len(ids))
	for _, id := range ids {
		evs, err := st.ReadStream(context.Background(), fc.AccountStream(id), 0, 0)
		if err != nil {
			tb.Fatal(err)
		}
		s, err := FoldAccount(evs)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, *s)
	}
	return out
}
