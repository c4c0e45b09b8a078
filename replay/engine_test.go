package replay

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

func TestDeliverBytesSignaturesAndPerAccountOrder(t *testing.T) {
	st, _ := openStore(t)
	stored := seed(t, st, 40, 12)
	rc := newReceiver(t)
	res, err := Deliver(context.Background(), st, Selection{}, sender(rc, "replay_test1"), Options{Concurrency: 16})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed != len(stored) || res.Failed != 0 || res.Skipped != 0 || res.Interrupted {
		t.Fatalf("result %+v, want %d replayed and nothing else", res, len(stored))
	}
	got := rc.deliveries()
	if len(got) != len(stored) {
		t.Fatalf("receiver got %d deliveries, want %d", len(got), len(stored))
	}
	byID := map[string]store.RecordedEvent{}
	wantOrder := map[string][]string{}
	for _, ev := range stored {
		byID[ev.ID] = ev
		wantOrder[fc.AccountOf(ev.Stream)] = append(wantOrder[fc.AccountOf(ev.Stream)], ev.ID)
	}
	gotOrder := map[string][]string{}
	for _, d := range got {
		ev, ok := byID[d.id]
		if !ok {
			t.Fatalf("delivered unknown event %s", d.id)
		}
		if !bytes.Equal(d.body, ev.Data) {
			t.Fatalf("%s: body differs from the stored bytes (%d vs %d bytes)", d.id, len(d.body), len(ev.Data))
		}
		for h, want := range map[string]string{"Content-Type": "application/json", HeaderReplay: "true", HeaderReplayID: "replay_test1"} {
			if v := d.header.Get(h); v != want {
				t.Fatalf("%s: header %s = %q, want %q", d.id, h, v, want)
			}
		}
		gotOrder[d.account] = append(gotOrder[d.account], d.id)
	}
	for acct, want := range wantOrder {
		if !slices.Equal(gotOrder[acct], want) {
			t.Fatalf("account %s delivered in order %v, want store order %v", acct, gotOrder[acct], want)
		}
	}
}

func TestRetries(t *testing.T) {
	const base = 100 * time.Millisecond
	httpDate := func(c *fakeClock, d time.Duration) string { return c.Now().Add(d).UTC().Format(http.TimeFormat) }
	tests := []struct {
		name string
		// answers[i] is the status of attempt i+1 (then 200); header is
		// set on every non-200 answer.
		answers    []int
		retryAfter func(c *fakeClock) string
		maxRetries int
		wantOK     bool
		wantTries  int
		// wantSleeps are exact (noJitter), or checked by check when set.
		wantSleeps []time.Duration
		check      func(t *testing.T, sleeps []time.Duration)
	}{
		{name: "5xx then success", answers: []int{500, 502, 503}, wantOK: true, wantTries: 4,
			wantSleeps: []time.Duration{base, 2 * base, 4 * base}},
		{name: "429 with Retry-After seconds", answers: []int{429}, retryAfter: func(*fakeClock) string { return "7" },
			wantOK: true, wantTries: 2, wantSleeps: []time.Duration{7 * time.Second}},
		{name: "503 with Retry-After HTTP date", answers: []int{503}, wantOK: true, wantTries: 2,
			retryAfter: func(c *fakeClock) string { return httpDate(c, 90*time.Second) },
			check: func(t *testing.T, s []time.Duration) {
				// HTTP dates have whole seconds: 89–90 s.
				if len(s) != 1 || s[0] < 89*time.Second || s[0] > 90*time.Second {
					t.Fatalf("sleeps %v, want one of ~90s", s)
				}
			}},
		{name: "400 not retried", answers: []int{400}, wantOK: false, wantTries: 1},
		{name: "404 not retried", answers: []int{404}, wantOK: false, wantTries: 1},
		{name: "redirect not followed", answers: []int{302}, wantOK: false, wantTries: 1},
		{name: "5xx until retries run out", answers: []int{500, 500, 500, 500}, maxRetries: 3, wantOK: false, wantTries: 4,
			wantSleeps: []time.Duration{base, 2 * base, 4 * base}},
		{name: "backoff capped", answers: []int{500, 500, 500, 500, 500, 500}, maxRetries: 10, wantOK: true, wantTries: 7,
			wantSleeps: []time.Duration{base, 2 * base, 4 * base, 8 * base, 10 * base, 10 * base}},
		{name: "never retry", answers: []int{500}, maxRetries: -1, wantOK: false, wantTries: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, _ := openStore(t)
			seed(t, st, 1, 1)
			clk := newFakeClock()
			rc := newReceiver(t)
			rc.respond = func(n int, _ string, w http.ResponseWriter) bool {
				if n > len(tt.answers) {
					return false
				}
				if tt.retryAfter != nil {
					w.Header().Set("Retry-After", tt.retryAfter(clk))
				}
				if tt.answers[n-1] == 302 {
					w.Header().Set("Location", "/elsewhere")
				}
				http.Error(w, "nope", tt.answers[n-1])
				return true
			}
			res, err := Deliver(context.Background(), st, Selection{}, sender(rc, "r"), Options{
				Concurrency: 2, MaxRetries: tt.maxRetries, BaseBackoff: base, MaxBackoff: 10 * base,
				Clock: clk, Jitter: noJitter,
			})
			if err != nil {
				t.Fatal(err)
			}
			rc.deliveries() // receiver-side checks
			if ok := res.Replayed == 1; ok != tt.wantOK || res.Replayed+res.Failed != 1 {
				t.Fatalf("result %+v, want replayed=%v", res, tt.wantOK)
			}
			rc.mu.Lock()
			tries := rc.attempts["evt_seed0000_0000"]
			rc.mu.Unlock()
			if tries != tt.wantTries {
				t.Fatalf("%d attempts, want %d", tries, tt.wantTries)
			}
			if !tt.wantOK && (len(res.Failures) != 1 || res.Failures[0].Attempts != tt.wantTries) {
				t.Fatalf("failures %+v, want one with %d attempts", res.Failures, tt.wantTries)
			}
			if tt.check != nil {
				tt.check(t, clk.slept())
			} else if s := clk.slept(); !slices.Equal(s, tt.wantSleeps) {
				t.Fatalf("slept %v, want %v", s, tt.wantSleeps)
			}
		})
	}
}

func TestRetriesNetworkErrorAndTimeout(t *testing.T) {
	st, _ := openStore(t)
	seed(t, st, 2, 1)
	clk := newFakeClock()
	rc := newReceiver(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	rc.respond = func(n int, id string, w http.ResponseWriter) bool {
		if n > 1 {
			return false
		}
		if id == "evt_seed0000_0000" { // drop the connection
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return true
		}
		<-release // hang past the sender's timeout
		return true
	}
	s := sender(rc, "r")
	s.Timeout = 100 * time.Millisecond
	res, err := Deliver(context.Background(), st, Selection{}, s, Options{Clock: clk, Jitter: noJitter})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed != 2 || res.Retries != 2 {
		t.Fatalf("result %+v, want 2 replayed after 2 retries", res)
	}
}

func TestPermanentFailureSkipsLaterEventsOfTheAccount(t *testing.T) {
	st, _ := openStore(t)
	stored := seed(t, st, 5, 4)
	rc := newReceiver(t)
	const bad = "evt_seed0002_0001"
	rc.respond = func(_ int, id string, w http.ResponseWriter) bool {
		if id == bad {
			http.Error(w, `{"error":"handler bug"}`, http.StatusUnprocessableEntity)
			return true
		}
		return false
	}
	res, err := Deliver(context.Background(), st, Selection{}, sender(rc, "r"), Options{Concurrency: 8})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 1 || res.Skipped != 2 || res.Replayed != len(stored)-3 {
		t.Fatalf("result %+v, want 1 failed, 2 skipped, %d replayed", res, len(stored)-3)
	}
	if res.Failures[0].ID != bad || res.Failures[0].Error == "" {
		t.Fatalf("failures %+v", res.Failures)
	}
	if want := []string{"evt_seed0002_0002", "evt_seed0002_0003"}; !slices.Equal(res.SkippedIDs, want) {
		t.Fatalf("skipped %v, want %v", res.SkippedIDs, want)
	}
	for _, d := range rc.deliveries() {
		if d.account == "fca_seed0002" && d.id > bad {
			t.Fatalf("%s delivered after %s failed", d.id, bad)
		}
	}
}

func TestRateLimit(t *testing.T) {
	st, _ := openStore(t)
	seed(t, st, 3, 2)
	clk := newFakeClock()
	rc := newReceiver(t)
	res, err := Deliver(context.Background(), st, Selection{}, sender(rc, "r"), Options{Concurrency: 3, Rate: 10, Clock: clk})
	if err != nil || res.Replayed != 6 {
		t.Fatalf("result %+v, err %v", res, err)
	}
	// The fake clock only moves when slept on: 6 events at 10/s are spaced
	// 100ms apart, the first immediately, so 500ms of sleeping in total.
	var total time.Duration
	for _, d := range clk.slept() {
		total += d
	}
	if total != 500*time.Millisecond {
		t.Fatalf("rate limiter slept %v in total (%v), want 500ms", total, clk.slept())
	}
}

// TestCheckpointResume cancels a run midway, with one event failing
// permanently in the first run, then resumes with the same checkpoint: every
// event is delivered exactly once across both runs.
func TestCheckpointResume(t *testing.T) {
	st, _ := openStore(t)
	stored := seed(t, st, 10, 10)
	cpPath := filepath.Join(t.TempDir(), "replay.checkpoint")
	rc := newReceiver(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var delivered atomic.Int64
	var run atomic.Int32
	run.Store(1)
	const flaky = "evt_seed0003_0002"
	rc.respond = func(_ int, id string, w http.ResponseWriter) bool {
		if run.Load() == 1 && id == flaky {
			http.Error(w, "bad", http.StatusBadRequest)
			return true
		}
		if run.Load() == 1 && delivered.Add(1) == 37 {
			cancel() // Ctrl-C while requests are in flight
		}
		return false
	}
	opts := Options{Concurrency: 4, Checkpoint: cpPath, TargetKey: rc.srv.URL, CheckpointInterval: time.Nanosecond}
	res1, err := Deliver(ctx, st, Selection{}, sender(rc, "r1"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res1.Interrupted || res1.Replayed == 0 || res1.Replayed >= len(stored) {
		t.Fatalf("first run %+v: want an interrupted partial run", res1)
	}
	first := len(rc.deliveries())
	if first != res1.Replayed {
		t.Fatalf("receiver accepted %d, run counted %d replayed", first, res1.Replayed)
	}

	run.Store(2)
	res2, err := Deliver(context.Background(), st, Selection{}, sender(rc, "r2"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Interrupted || res2.Failed != 0 || res2.Skipped != 0 {
		t.Fatalf("second run %+v", res2)
	}
	seen := map[string]int{}
	for _, d := range rc.deliveries() {
		seen[d.id]++
	}
	for _, ev := range stored {
		if seen[ev.ID] != 1 {
			t.Fatalf("%s accepted %d times across both runs, want exactly 1", ev.ID, seen[ev.ID])
		}
	}
	if res1.Replayed+res2.Replayed != len(stored) {
		t.Fatalf("replayed %d + %d, want %d", res1.Replayed, res2.Replayed, len(stored))
	}
	// A third run has nothing left to do.
	res3, err := Deliver(context.Background(), st, Selection{}, sender(rc, "r3"), opts)
	if err != nil || res3.Replayed != 0 || res3.Failed != 0 {
		t.Fatalf("third run %+v, %v: want nothing to do", res3, err)
	}
	cp, err := LoadCheckpoint(cpPath)
	if err != nil || cp.Low != stored[len(stored)-1].Position || len(cp.Done) != 0 || cp.LowCount != len(stored) {
		t.Fatalf("final checkpoint %+v, %v", cp, err)
	}
}

func TestCheckpointMismatch(t *testing.T) {
	st, _ := openStore(t)
	seed(t, st, 1, 2)
	cpPath := filepath.Join(t.TempDir(), "cp")
	rc := newReceiver(t)
	if _, err := Deliver(context.Background(), st, Selection{}, sender(rc, "r"), Options{Checkpoint: cpPath, TargetKey: "a"}); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		sel Selection
		key string
	}{
		"other target":    {Selection{}, "b"},
		"other selection": {Selection{Types: []string{"x"}}, "a"},
	} {
		_, err := Deliver(context.Background(), st, tc.sel, sender(rc, "r"), Options{Checkpoint: cpPath, TargetKey: tc.key})
		if !errors.Is(err, ErrCheckpointMismatch) {
			t.Fatalf("%s: err %v, want ErrCheckpointMismatch", name, err)
		}
	}
}

func TestTracker(t *testing.T) {
	tr := newTracker(nil, 0)
	slots := map[store.Position]int{}
	for _, p := range []store.Position{3, 5, 8, 9, 12} {
		slots[p], _ = tr.add(p)
	}
	tr.done(slots[5])
	tr.done(slots[9])
	low, n, done := tr.snapshot()
	if low != 0 || n != 0 || !slices.Equal(done, []store.Position{5, 9}) {
		t.Fatalf("snapshot %d %d %v", low, n, done)
	}
	tr.done(slots[3])
	low, n, done = tr.snapshot()
	if low != 5 || n != 2 || !slices.Equal(done, []store.Position{9}) {
		t.Fatalf("snapshot %d %d %v", low, n, done)
	}
	// Resume: 12 was done before, 8 not; a run that stops before reaching
	// 12 must keep it.
	tr2 := newTracker(&Checkpoint{Low: 5, LowCount: 2, Done: []store.Position{9, 12}}, 0)
	if _, already := tr2.add(8); already {
		t.Fatal("8 reported done")
	}
	if _, already := tr2.add(9); !already {
		t.Fatal("9 not reported done")
	}
	low, n, done = tr2.snapshot()
	if low != 5 || n != 2 || !slices.Equal(done, []store.Position{9, 12}) {
		t.Fatalf("resumed snapshot %d %d %v", low, n, done)
	}
}

func TestSaveCheckpointAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cp.json")
	for i := range 3 {
		if err := SaveCheckpoint(path, &Checkpoint{Version: checkpointVersion, Low: store.Position(i)}); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := LoadCheckpoint(path)
	if err != nil || cp.Low != 2 {
		t.Fatalf("%+v %v", cp, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temp files left behind: %v", entries)
	}
	if err := os.WriteFile(path, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCheckpoint(path); err == nil {
		t.Fatal("garbage checkpoint accepted")
	}
}

// TestDeliverWhileAppending replays while another handle on the same file
// (as serve would) keeps appending.
func TestDeliverWhileAppending(t *testing.T) {
	st, path := openStore(t)
	before := seed(t, st, 8, 20)
	writer, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	tpl := templates(t)[1]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var appended atomic.Int64
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := "evt_live" + strconv.Itoa(i)
			fca := "fca_live" + strconv.Itoa(i%3)
			if _, err := writer.Append(context.Background(), fc.AccountStream(fca), store.AnyRevision, store.Event{
				ID: id, Type: tpl.typ, Data: tpl.render(id, fca, t0), Created: t0, ReceivedAt: time.Now().UTC(),
				Source: store.SourceWebhook,
			}); err != nil {
				t.Errorf("append: %v", err)
				return
			}
			appended.Add(1)
		}
	})
	rc := newReceiver(t)
	res, err := Deliver(context.Background(), st, Selection{}, sender(rc, "r"), Options{Concurrency: 8})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 0 || res.Replayed < len(before) {
		t.Fatalf("result %+v, want ≥ %d replayed and none failed", res, len(before))
	}
	got := map[string]bool{}
	for _, d := range rc.deliveries() {
		got[d.id] = true
	}
	for _, ev := range before {
		if !got[ev.ID] {
			t.Fatalf("%s (stored before the run) not delivered", ev.ID)
		}
	}
	t.Logf("replayed %d events while %d were appended", res.Replayed, appended.Load())
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"0", 0}, {"-3", 0}, {"12", 12 * time.Second}, {"soon", 0},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@example.com/hook?token=abc&x=1#frag": "https://example.com/hook?token=REDACTED&x=REDACTED",
		"http://localhost:3000/webhooks":                      "http://localhost:3000/webhooks",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
