package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/fcevents"
	"github.com/fcaudit/fcaudit/internal/record"
	"github.com/fcaudit/fcaudit/replay"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

const replayTestSecret = "whsec_cmd_replay_receiver"

// replaySeed appends accounts×per events (round-robin over accounts, FC
// types in lifecycle order) to the embedded store in dir.
func replaySeed(t *testing.T, dir string, accounts, per int) []store.RecordedEvent {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(dir, sqlite.FileName), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var g fcevents.Generator
	types := fc.Types()
	created := int64(1705312800)
	for i := range per {
		for a := range accounts {
			fca := fmt.Sprintf("fca_cmdreplay%03d", a)
			body := g.Event(types[i%len(types)], fca, created)
			var env struct {
				ID   string `json:"id"`
				Type string `json:"type"`
			}
			if err := json.Unmarshal(body, &env); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Append(context.Background(), fc.AccountStream(fca), store.AnyRevision, store.Event{
				ID: env.ID, Type: env.Type, Data: body, Created: created, ReceivedAt: time.Unix(created, 0).UTC(),
				APIVersion: fcevents.APIVersion, Source: store.SourceWebhook,
			}); err != nil {
				t.Fatal(err)
			}
			created += 60
		}
	}
	var out []store.RecordedEvent
	var after store.Position
	for {
		page, err := st.ReadAll(context.Background(), store.ReadOptions{After: after, Filter: store.Filter{StreamPrefix: fc.AccountStreamPrefix}})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Position
	}
}

// replayReceiver verifies signatures with stripe-go and counts deliveries
// per event id; fail decides a non-200 answer.
type replayReceiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  map[string]int
	bad  []string
	fail func(id string) int
}

func newReplayReceiver(t *testing.T) *replayReceiver {
	rc := &replayReceiver{got: map[string]int{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ev, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), replayTestSecret,
			webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if err != nil || r.Header.Get("Fcaudit-Replay") != "true" || !strings.HasPrefix(r.Header.Get("Fcaudit-Replay-Id"), "replay_") {
			rc.bad = append(rc.bad, fmt.Sprintf("bad request: %v %v", err, r.Header))
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if rc.fail != nil {
			if code := rc.fail(ev.ID); code != 0 {
				w.WriteHeader(code)
				return
			}
		}
		rc.got[ev.ID]++
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *replayReceiver) counts(t *testing.T) map[string]int {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.bad) > 0 {
		t.Fatalf("receiver rejected %d requests: %s", len(rc.bad), rc.bad[0])
	}
	out := map[string]int{}
	for k, v := range rc.got {
		out[k] = v
	}
	return out
}

var summaryRE = regexp.MustCompile(`(?m)^replayed (\d+) events, (\d+) failed, (\d+) skipped in \S+$`)

func summary(t *testing.T, errOut string) (n, failed, skipped int) {
	t.Helper()
	m := summaryRE.FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("no summary line in stderr:\n%s", errOut)
	}
	fmt.Sscan(m[1], &n)
	fmt.Sscan(m[2], &failed)
	fmt.Sscan(m[3], &skipped)
	return
}

// replayRuns reads the audit log of replay runs straight from the store.
func replayRuns(t *testing.T, dir string) []replay.RunRecord {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(dir, sqlite.FileName), sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs, err := st.ReadStream(context.Background(), replay.RunsStream, 0, 0)
	if errors.Is(err, store.ErrStreamNotFound) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	var out []replay.RunRecord
	for _, ev := range evs {
		if ev.Source != store.SourceFcaudit || ev.Type != replay.RunEventType {
			t.Fatalf("run record with source %q type %q", ev.Source, ev.Type)
		}
		var rec replay.RunRecord
		if err := json.Unmarshal(ev.Data, &rec); err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
	}
	return out
}

func TestReplayUsageErrors(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("FCAUDIT_REPLAY_SIGNING_SECRET", "")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"replay"}, "--to: a target is required"},
		{[]string{"replay", "--to", "-", "--projection", "account_status"}, "--projection: cannot be combined"},
		{[]string{"replay", "--to", "ftp://x/y"}, "--to: "},
		{[]string{"replay", "--to", "http://localhost:1/hook"}, "--signing-secret: required"},
		{[]string{"replay", "--to", "http://localhost:1/hook", "--signing-secret", "s", "--rate", "-1"}, "--rate: "},
		{[]string{"replay", "--to", "http://localhost:1/hook", "--signing-secret", "s", "--rate", "NaN"}, "--rate: "},
		{[]string{"replay", "--to", "http://localhost:1/hook", "--signing-secret", "s", "--concurrency", "0"}, "--concurrency: "},
		{[]string{"replay", "--to", "http://localhost:1/hook", "--signing-secret", "s", "--timeout", "0s"}, "--timeout: "},
		{[]string{"replay", "--to", "-", "--since", "yesterday"}, "--since: "},
		{[]string{"replay", "--to", "-", "--until", "2024-13-01"}, "--until: "},
		{[]string{"replay", "--to", "-", "--since", "2024-02-01T00:00:00Z", "--until", "2024-01-01T00:00:00Z"}, "--since: "},
		{[]string{"replay", "--to", "-", "--limit", "-4"}, "--limit: "},
		{[]string{"replay", "--to", "-", "--until", "0001-01-01T00:00:00Z"}, "--until: 0001-01-01T00:00:00Z is at or before the Unix epoch"},
		{[]string{"replay", "--to", "-", "--until", "1970-01-01T00:00:00Z"}, "--until: 1970-01-01T00:00:00Z is at or before"},
		{[]string{"replay", "--to", "-", "--until", "0", "--dry-run"}, "--until: 0 is at or before"},
		{[]string{"replay", "--to", "-", "--checkpoint", "cp"}, "--checkpoint: only applies to --to URL"},
		{[]string{"replay", "--to", "-", "--rate", "3"}, "--rate: only applies"},
		{[]string{"replay", "--projection", "nope"}, "--projection: unknown read model"},
		{[]string{"replay", "--projection", "account_status", "--limit", "3"}, "--limit: replay --projection"},
		{[]string{"replay", "--to", "-", "--from-position", "x"}, "from-position"},
	}
	for _, tt := range tests {
		code, out, errOut := runCmd(t, context.Background(), append(tt.args, "--data-dir", dir)...)
		if code != exitUsage || !strings.Contains(errOut, tt.want) || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 mentioning %q", tt.args, code, out, errOut, tt.want)
		}
	}
}

func TestReplayCommandDeliversAndRecordsRun(t *testing.T) {
	dir := t.TempDir()
	stored := replaySeed(t, dir, 20, 5)
	rc := newReplayReceiver(t)
	code, out, errOut := runCmd(t, context.Background(), "replay", "--data-dir", dir, "--to", rc.srv.URL+"/hook?token=sekrit",
		"--signing-secret", replayTestSecret, "--concurrency", "16")
	if code != 0 || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
	if n, f, s := summary(t, errOut); n != len(stored) || f != 0 || s != 0 {
		t.Fatalf("summary %d/%d/%d, want %d/0/0", n, f, s, len(stored))
	}
	got := rc.counts(t)
	for _, ev := range stored {
		if got[ev.ID] != 1 {
			t.Fatalf("%s delivered %d times", ev.ID, got[ev.ID])
		}
	}
	runs := replayRuns(t, dir)
	if len(runs) != 1 {
		t.Fatalf("%d run records, want 1", len(runs))
	}
	r := runs[0]
	if r.Status != replay.StatusSucceeded || r.Counts.Replayed != len(stored) || r.User == "" ||
		r.Target.URL != rc.srv.URL+"/hook?token=REDACTED" || r.FinishedAt.Before(r.StartedAt) || r.Settings.Concurrency != 16 {
		t.Fatalf("run record %+v", r)
	}

	// A second run never selects the run record itself.
	code, out, errOut = runCmd(t, context.Background(), "replay", "--data-dir", dir, "--to", "-")
	if code != 0 || strings.Count(out, "\n") != len(stored) || strings.Contains(out, "replay_") {
		t.Fatalf("ndjson after a run: exit %d, %d lines\n%s", code, strings.Count(out, "\n"), errOut)
	}
}

func TestReplayCommandFailureExit1(t *testing.T) {
	dir := t.TempDir()
	stored := replaySeed(t, dir, 3, 3)
	rc := newReplayReceiver(t)
	bad := stored[1].ID // first event of the second account
	rc.fail = func(id string) int {
		if id == bad {
			return http.StatusBadRequest
		}
		return 0
	}
	code, _, errOut := runCmd(t, context.Background(), "replay", "--data-dir", dir, "--to", rc.srv.URL,
		"--signing-secret", replayTestSecret)
	if code != exitFailure {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, errOut)
	}
	if n, f, s := summary(t, errOut); n != len(stored)-3 || f != 1 || s != 2 {
		t.Fatalf("summary %d/%d/%d, want %d/1/2\n%s", n, f, s, len(stored)-3, errOut)
	}
	if !strings.Contains(errOut, "failed: "+bad+" ") || !strings.Contains(errOut, "HTTP 400") {
		t.Fatalf("stderr does not list the failed id %s:\n%s", bad, errOut)
	}
	runs := replayRuns(t, dir)
	if len(runs) != 1 || runs[0].Status != replay.StatusFailed || runs[0].ExitCode != 1 ||
		len(runs[0].FailedIDs) != 1 || runs[0].FailedIDs[0] != bad {
		t.Fatalf("run records %+v", runs)
	}
}

func TestReplayCommandDryRunAndNDJSON(t *testing.T) {
	dir := t.TempDir()
	stored := replaySeed(t, dir, 4, len(fc.Types())) // one event of each type per account
	var want strings.Builder
	var wantIDs []string
	for _, ev := range stored {
		if fc.AccountOf(ev.Stream) == "fca_cmdreplay002" && strings.HasPrefix(ev.Type, "financial_connections.account.refreshed_") {
			fmt.Fprintf(&want, "%d\t%s\t%s\t%s\n", ev.Position, ev.ID, ev.Type, fc.AccountOf(ev.Stream))
			wantIDs = append(wantIDs, ev.ID)
		}
	}
	sel := []string{"--data-dir", dir, "--account", "fca_cmdreplay002", "--type", "financial_connections.account.refreshed_*"}
	code, out, errOut := runCmd(t, context.Background(), append([]string{"replay", "--to", "http://127.0.0.1:1/never", "--dry-run"}, sel...)...)
	if code != 0 || out != want.String() {
		t.Fatalf("dry run: exit %d\n%s\nwant\n%s\nstderr: %s", code, out, want.String(), errOut)
	}
	// A plan needs no target.
	code, out, errOut = runCmd(t, context.Background(), append([]string{"replay", "--dry-run"}, sel...)...)
	if code != 0 || out != want.String() {
		t.Fatalf("dry run without a target: exit %d\n%s\nstderr: %s", code, out, errOut)
	}
	if runs := replayRuns(t, dir); len(runs) != 0 {
		t.Fatalf("a dry run was recorded: %+v", runs)
	}

	code, out, errOut = runCmd(t, context.Background(), append([]string{"replay", "--to", "-"}, sel...)...)
	if code != 0 {
		t.Fatalf("ndjson: exit %d: %s", code, errOut)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	var ids []string
	for sc.Scan() {
		var r record.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		for _, ev := range stored {
			if ev.ID == r.ID {
				want, _ := json.Marshal(record.From(&ev))
				got, _ := json.Marshal(r)
				if !bytes.Equal(want, got) {
					t.Fatalf("record %s differs:\n%s\n%s", r.ID, got, want)
				}
			}
		}
		ids = append(ids, r.ID)
	}
	if strings.Join(ids, ",") != strings.Join(wantIDs, ",") {
		t.Fatalf("ndjson ids %v, want %v", ids, wantIDs)
	}
	if n, _, _ := summary(t, errOut); n != len(wantIDs) {
		t.Fatalf("summary counts %d, want %d", n, len(wantIDs))
	}
	if runs := replayRuns(t, dir); len(runs) != 1 || runs[0].Target.Kind != "ndjson" {
		t.Fatalf("run records %+v", runs)
	}
}

// TestReplayCommandInterruptAndResume cancels a run (Ctrl-C) midway and
// resumes it from its checkpoint: every event arrives exactly once.
func TestReplayCommandInterruptAndResume(t *testing.T) {
	dir := t.TempDir()
	stored := replaySeed(t, dir, 12, 8)
	cp := filepath.Join(t.TempDir(), "run.checkpoint")
	rc := newReplayReceiver(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var n atomic.Int64
	rc.fail = func(string) int {
		if n.Add(1) == 40 {
			cancel()
		}
		return 0
	}
	args := []string{"replay", "--data-dir", dir, "--to", rc.srv.URL, "--signing-secret", replayTestSecret,
		"--concurrency", "6", "--checkpoint", cp}
	code, _, errOut := runCmd(t, ctx, args...)
	if code != replay.ExitInterrupted || !strings.Contains(errOut, "interrupted") || !strings.Contains(errOut, cp) {
		t.Fatalf("first run: exit %d, want %d; stderr:\n%s", code, replay.ExitInterrupted, errOut)
	}
	first, _, _ := summary(t, errOut)
	// The plan of the resumed run is exactly what is left.
	code, out, errOut := runCmd(t, context.Background(), append(args, "--dry-run")...)
	if code != 0 || strings.Count(out, "\n") != len(stored)-first {
		t.Fatalf("dry run with the checkpoint: exit %d, %d lines, want %d\n%s", code, strings.Count(out, "\n"), len(stored)-first, errOut)
	}
	// The checkpoint belongs to this target only.
	other := append(append([]string(nil), args...), "--dry-run")
	other[4] = rc.srv.URL + "/other"
	if code, _, errOut := runCmd(t, context.Background(), other...); code != exitUsage || !strings.Contains(errOut, "--checkpoint: ") {
		t.Fatalf("checkpoint of another target: exit %d\n%s", code, errOut)
	}
	code, _, errOut = runCmd(t, context.Background(), args...)
	if code != 0 {
		t.Fatalf("resumed run: exit %d\n%s", code, errOut)
	}
	second, _, _ := summary(t, errOut)
	got := rc.counts(t)
	for _, ev := range stored {
		if got[ev.ID] != 1 {
			t.Fatalf("%s delivered %d times across both runs", ev.ID, got[ev.ID])
		}
	}
	if first+second != len(stored) || first == 0 {
		t.Fatalf("runs replayed %d + %d, want a split of %d", first, second, len(stored))
	}
	runs := replayRuns(t, dir)
	if len(runs) != 2 || runs[0].Status != replay.StatusInterrupted || runs[0].ExitCode != replay.ExitInterrupted ||
		runs[1].Status != replay.StatusSucceeded || runs[1].Counts.AlreadyDone != first {
		t.Fatalf("run records %+v", runs)
	}
}

// TestReplayWhileServing replays from the store serve has open while
// webhooks keep arriving, then reads the run back from GET /v1/replays.
func TestReplayWhileServing(t *testing.T) {
	dir := t.TempDir()
	stored := replaySeed(t, dir, 10, 4)
	addr := strings.TrimPrefix(startServe(t, dir, "--dev"), "http://")
	dc, err := loadDevConfig(dir)
	if err != nil {
		t.Fatal(err)
	}

	// Webhooks keep arriving during the replay.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var posted atomic.Int64
	wg.Go(func() {
		var g fcevents.Generator
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			body := g.Event(fc.TypeRefreshedBalance, "fca_live"+fmt.Sprint(i%3), time.Now().Unix())
			req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/stripe", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Stripe-Signature", fcevents.Sign(body, dc.WebhookSecret, time.Now()))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("post webhook: %v", err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("post webhook: %d", resp.StatusCode)
				return
			}
			posted.Add(1)
		}
	})
	rc := newReplayReceiver(t)
	code, _, errOut := runCmd(t, context.Background(), "replay", "--data-dir", dir, "--to", rc.srv.URL,
		"--signing-secret", replayTestSecret, "--concurrency", "8")
	close(stop)
	wg.Wait()
	if code != 0 {
		t.Fatalf("replay while serving: exit %d\n%s", code, errOut)
	}
	got := rc.counts(t)
	for _, ev := range stored {
		if got[ev.ID] != 1 {
			t.Fatalf("%s delivered %d times", ev.ID, got[ev.ID])
		}
	}
	t.Logf("%d events replayed while serve ingested %d", len(got), posted.Load())

	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/replays", nil)
	req.Header.Set("Authorization", "Bearer "+dc.APIToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Object string             `json:"object"`
		Data   []replay.RunRecord `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != 200 || list.Object != "list" {
		t.Fatalf("GET /v1/replays: %d %v", resp.StatusCode, err)
	}
	if len(list.Data) != 1 || list.Data[0].Counts.Replayed != len(got) || list.Data[0].Target.URL != rc.srv.URL {
		t.Fatalf("GET /v1/replays: %+v", list.Data)
	}
}

func TestReplayCommandProjection(t *testing.T) {
	dir := t.TempDir()
	stored := replaySeed(t, dir, 5, 3)
	code, out, errOut := runCmd(t, context.Background(), "replay", "--data-dir", dir, "--projection", "account_status")
	if code != 0 || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
	if n, _, _ := summary(t, errOut); n != len(stored) {
		t.Fatalf("rebuilt from %d events, want %d\n%s", n, len(stored), errOut)
	}
	code, out, errOut = runCmd(t, context.Background(), "projections", "status", "--json", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, `"rows": 5`) {
		t.Fatalf("projections status after the rebuild: exit %d\n%s\n%s", code, out, errOut)
	}
	if runs := replayRuns(t, dir); len(runs) != 1 || runs[0].Target.Projection != "account_status" {
		t.Fatalf("run records %+v", runs)
	}

	// A selection would rebuild the whole read model from part of the
	// history (every other account then answered 404):
	// refused with exit 2 naming the flag, the read model left whole and
	// nothing recorded.
	for _, sel := range [][]string{
		{"--account", "fca_cmdreplay001"},
		{"--type", "financial_connections.account.created"},
		{"--since", "2024-01-15T10:00:00Z"},
		{"--until", "2030-01-01T00:00:00Z"},
		{"--from-position", "2"},
		{"--limit", "3"},
	} {
		args := append([]string{"replay", "--data-dir", dir, "--projection", "account_status"}, sel...)
		code, out, errOut := runCmd(t, context.Background(), args...)
		if code != exitUsage || !strings.Contains(errOut, sel[0]+": ") || !strings.Contains(errOut, "takes no selection") || out != "" {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 naming %s", sel, code, errOut, sel[0])
		}
	}
	code, out, errOut = runCmd(t, context.Background(), "projections", "status", "--json", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, `"rows": 5`) {
		t.Fatalf("projections status after the refused runs: exit %d\n%s\n%s", code, out, errOut)
	}
	if runs := replayRuns(t, dir); len(runs) != 1 {
		t.Fatalf("refused runs were recorded: %+v", runs)
	}
}
