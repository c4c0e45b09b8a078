package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/internal/progress"
	"github.com/fcaudit/fcaudit/store"
)

// recordedRuns reads the audit log of replays.
func recordedRuns(t *testing.T, st store.Store) []RunRecord {
	t.Helper()
	evs, err := st.ReadStream(context.Background(), RunsStream, 0, 100)
	if errors.Is(err, store.ErrStreamNotFound) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	var out []RunRecord
	for _, e := range evs {
		var rec RunRecord
		if err := json.Unmarshal(e.Data, &rec); err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
	}
	return out
}

func httpRequest(rc *receiver) RunRequest {
	return RunRequest{Target: Target{Kind: "http", URL: rc.srv.URL}, URL: rc.srv.URL, Secret: testSecret,
		Concurrency: 2, Timeout: 5 * time.Second, TargetKey: rc.srv.URL, Host: "h", User: "u"}
}

// Run decides a run's status and exit code and records it, whatever the
// outcome: success 0, failed events 1, interrupted 130.
func TestRunRecordsOutcome(t *testing.T) {
	t.Run("succeeded", func(t *testing.T) {
		st, _ := openStore(t)
		seed(t, st, 2, 3)
		rc := newReceiver(t)
		out, err := Run(context.Background(), st, httpRequest(rc))
		if err != nil || out.ExitCode != ExitSucceeded || out.RecordErr != nil || out.ExitMessage() != "" {
			t.Fatalf("outcome %+v, %v", out, err)
		}
		if got := len(rc.deliveries()); got != 6 {
			t.Errorf("%d deliveries", got)
		}
		recs := recordedRuns(t, st)
		if len(recs) != 1 || recs[0].Status != StatusSucceeded || recs[0].ExitCode != 0 || recs[0].Counts.Replayed != 6 ||
			recs[0].ID != out.Record.ID || recs[0].User != "u" || recs[0].Settings.Concurrency != 2 {
			t.Errorf("records %+v", recs)
		}
	})
	t.Run("failed", func(t *testing.T) {
		st, _ := openStore(t)
		seed(t, st, 2, 3)
		rc := newReceiver(t)
		rc.respond = func(n int, id string, w http.ResponseWriter) bool {
			w.WriteHeader(http.StatusBadRequest)
			return true
		}
		out, err := Run(context.Background(), st, httpRequest(rc))
		if err != nil || out.ExitCode != ExitFailure || out.Result.Failed != 2 || out.Result.Skipped != 4 {
			t.Fatalf("outcome %+v, %v", out.Result, err)
		}
		if msg := out.ExitMessage(); msg != "2 events failed, 4 skipped" {
			t.Errorf("exit message %q", msg)
		}
		var sum bytes.Buffer
		out.WriteSummary(&sum)
		if !strings.Contains(sum.String(), "replayed 0 events, 2 failed, 4 skipped") || strings.Count(sum.String(), "failed: evt_") != 2 {
			t.Errorf("summary %q", sum.String())
		}
		recs := recordedRuns(t, st)
		if len(recs) != 1 || recs[0].Status != StatusFailed || recs[0].ExitCode != ExitFailure || len(recs[0].FailedIDs) != 2 {
			t.Errorf("records %+v", recs)
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		st, _ := openStore(t)
		seed(t, st, 2, 3)
		var b bytes.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		out, err := Run(ctx, st, RunRequest{Target: Target{Kind: "ndjson"}, Out: &b})
		if err != nil || out.ExitCode != ExitInterrupted || out.RecordErr != nil {
			t.Fatalf("outcome %+v, %v", out, err)
		}
		if !strings.HasPrefix(out.ExitMessage(), "interrupted: ") {
			t.Errorf("exit message %q", out.ExitMessage())
		}
		recs := recordedRuns(t, st)
		if len(recs) != 1 || recs[0].Status != StatusInterrupted || recs[0].ExitCode != ExitInterrupted {
			t.Errorf("an interrupted run must be recorded: %+v", recs)
		}
	})
}

// A checkpoint of another target stops the run before anything is sent or
// recorded.
func TestRunCheckpointMismatchIsNotARun(t *testing.T) {
	st, _ := openStore(t)
	seed(t, st, 1, 2)
	rc := newReceiver(t)
	req := httpRequest(rc)
	req.Checkpoint = filepath.Join(t.TempDir(), "cp")
	if _, err := Run(context.Background(), st, req); err != nil {
		t.Fatal(err)
	}
	req.TargetKey = "another receiver"
	if _, err := Run(context.Background(), st, req); !errors.Is(err, ErrCheckpointMismatch) {
		t.Fatalf("err = %v, want ErrCheckpointMismatch", err)
	}
	if recs := recordedRuns(t, st); len(recs) != 1 {
		t.Errorf("%d runs recorded, want only the first", len(recs))
	}
}

// A rebuild that fails is recorded as an error, exit 1.
func TestRunErrorIsRecorded(t *testing.T) {
	st, _ := openStore(t)
	seed(t, st, 1, 2)
	boom := errors.New("boom")
	out, err := Run(context.Background(), st, RunRequest{Target: Target{Kind: "projection", Projection: "account_status"},
		Rebuilder: rebuildFunc(func(n func(int)) error { n(1); return boom })})
	if !errors.Is(err, boom) || out.ExitCode != ExitFailure {
		t.Fatalf("outcome %+v, %v", out, err)
	}
	recs := recordedRuns(t, st)
	if len(recs) != 1 || recs[0].Status != StatusError || !strings.Contains(recs[0].Error, "boom") {
		t.Errorf("records %+v", recs)
	}
}

// On a terminal the projection rebuild redraws its line in place and clears
// it at the end; elsewhere it draws nothing.
func TestRunProgressOnTerminal(t *testing.T) {
	for _, tty := range []bool{true, false} {
		st, _ := openStore(t)
		seed(t, st, 1, 2)
		var errOut bytes.Buffer
		_, err := Run(context.Background(), st, RunRequest{Target: Target{Kind: "projection", Projection: "account_status"},
			Progress:  progress.New(&errOut, tty),
			Rebuilder: rebuildFunc(func(n func(int)) error { n(1); n(2); return nil })})
		if err != nil {
			t.Fatal(err)
		}
		want := ""
		if tty {
			want = "\r\033[Krebuilding account_status: 1 events\r\033[Krebuilding account_status: 2 events\r\033[K"
		}
		if errOut.String() != want {
			t.Errorf("tty %v: progress %q, want %q", tty, errOut.String(), want)
		}
	}
}

type rebuildFunc func(progress func(int)) error

func (f rebuildFunc) Rebuild(_ context.Context, _ string, _ store.Filter, progress func(int)) error {
	return f(progress)
}

// A failure line quotes the target URL (net/http's errors do): neither the
// summary on stderr nor the audit record may show its query string or
// userinfo, and a redirect's Location is redacted too.
func TestRunFailureRedactsURL(t *testing.T) {
	const token = "tok_replay_leak_7c1e"
	st, _ := openStore(t)
	seed(t, st, 1, 1)
	rc := newReceiver(t)
	rc.respond = func(n int, id string, w http.ResponseWriter) bool {
		w.Header().Set("Location", "https://elsewhere.example/?token="+token)
		w.WriteHeader(http.StatusFound)
		return true
	}
	for name, target := range map[string]string{
		// Nothing listens on port 1: a network error quoting the URL.
		"network error": "http://user:" + token + "@127.0.0.1:1/hook?token=" + token,
		"redirect":      rc.srv.URL + "/hook?token=" + token,
	} {
		t.Run(name, func(t *testing.T) {
			req := httpRequest(rc)
			req.URL, req.Target.URL = target, RedactURL(target)
			req.MaxRetries = 0
			out, err := Run(context.Background(), st, req)
			var summary bytes.Buffer
			out.WriteSummary(&summary)
			if name == "network error" {
				// Nothing ever answered: the run stops at once
				// (ErrTargetUnreachable) and its error quotes the URL.
				if !errors.Is(err, ErrTargetUnreachable) {
					t.Fatalf("outcome %+v, %v: want ErrTargetUnreachable", out, err)
				}
				summary.WriteString(err.Error())
			} else {
				if err != nil || out.Result.Failed != 1 {
					t.Fatalf("outcome %+v, %v: want one failed event", out, err)
				}
				if !strings.Contains(summary.String(), "failed: ") {
					t.Fatalf("no failure line in %q", summary.String())
				}
			}
			rec, _ := json.Marshal(recordedRuns(t, st))
			for what, s := range map[string]string{"summary": summary.String(), "audit record": string(rec)} {
				if strings.Contains(s, token) {
					t.Errorf("the %s shows the URL's secret:\n%s", what, s)
				}
			}
		})
	}
}

// A read model is a fold over all history: a projection run with any
// selection field set is refused before the rebuilder is called (a filtered
// rebuild would replace every other account's row), and it is not recorded.
func TestRunProjectionRefusesSelection(t *testing.T) {
	st, _ := openStore(t)
	seed(t, st, 2, 2)
	at := time.Unix(1705312800, 0).UTC()
	for want, sel := range map[string]Selection{
		"account":       {Accounts: []string{"fca_x"}},
		"type":          {Types: []string{"financial_connections.account.created"}},
		"since":         {Since: at},
		"until":         {Until: at},
		"from-position": {FromPosition: 3},
		"limit":         {Limit: 5},
	} {
		called := false
		out, err := Run(context.Background(), st, RunRequest{Selection: sel, Target: Target{Kind: "projection", Projection: "account_status"},
			Rebuilder: rebuildFunc(func(func(int)) error { called = true; return nil })})
		if !errors.Is(err, ErrNotForProjection) || !strings.HasPrefix(err.Error(), want+": ") || called || out.ExitCode == ExitSucceeded {
			t.Errorf("%s: err %v, rebuilder called %v, exit %d; want ErrNotForProjection naming %s, no rebuild", want, err, called, out.ExitCode, want)
		}
		if n, err := RebuildProjection(context.Background(), rebuildFunc(func(func(int)) error { called = true; return nil }), sel, "account_status", nil); !errors.Is(err, ErrNotForProjection) || called || n != 0 {
			t.Errorf("RebuildProjection %s: %d, %v, called %v", want, n, err, called)
		}
	}
	if recs := recordedRuns(t, st); len(recs) != 0 {
		t.Errorf("refused runs recorded: %+v", recs)
	}
}
