package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/api"
	"github.com/fcaudit/fcaudit/replay"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

func TestReplaysAPI(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), sqlite.FileName), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const t0 = 1705312800
	ts := newServer(t, api.Config{Store: st, Tokens: []string{"tok"}, Replays: replay.NewRunLog(st)})
	get := func(path string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	if code, m := get("/v1/replays"); code != 200 || len(m["data"].([]any)) != 0 {
		t.Fatalf("empty log: %d %v", code, m)
	}
	for i := range 3 {
		rec := replay.RunRecord{ID: fmt.Sprintf("replay_%d", i), User: "alice", Host: "h", StartedAt: time.Unix(t0+int64(i), 0).UTC(),
			Target: replay.Target{Kind: "http", URL: "https://example.com/hook"}, Counts: replay.Result{Replayed: i}, Status: replay.StatusSucceeded}
		if err := replay.AppendRun(context.Background(), st, rec); err != nil {
			t.Fatal(err)
		}
	}
	code, m := get("/v1/replays?limit=2")
	data := m["data"].([]any)
	if code != 200 || len(data) != 2 || m["has_more"] != true || m["object"] != "list" {
		t.Fatalf("page 1: %d %v", code, m)
	}
	first := data[0].(map[string]any)
	if first["id"] != "replay_0" || first["object"] != "replay_run" || first["user"] != "alice" {
		t.Fatalf("first item %v", first)
	}
	code, m = get("/v1/replays?limit=2&starting_after=replay_1")
	if data = m["data"].([]any); code != 200 || len(data) != 1 || m["has_more"] != false || data[0].(map[string]any)["id"] != "replay_2" {
		t.Fatalf("page 2: %d %v", code, m)
	}
	if code, _ := get("/v1/replays/replay_2"); code != 200 {
		t.Fatalf("get one: %d", code)
	}
	for path, want := range map[string]int{"/v1/replays?starting_after=evt_nope": 400, "/v1/replays?limit=0": 400, "/v1/replays/evt_x": 404} {
		if code, _ := get(path); code != want {
			t.Fatalf("%s: %d, want %d", path, code, want)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v1/replays", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("without token: %v %v", resp, err)
	}
}

// badRuns lists one run that is not JSON, so the page cannot be encoded.
type badRuns struct{}

func (badRuns) List(context.Context, replay.RunListOptions) ([]json.RawMessage, bool, error) {
	return []json.RawMessage{json.RawMessage(`{`)}, false, nil
}

func (badRuns) Get(context.Context, string) (json.RawMessage, error) {
	return nil, replay.ErrRunNotFound
}

// TestListEncodingFailureIsLogged: a list item that cannot be encoded is
// answered 500 api_error through writeError, which logs it like every
// other server-side failure.
func TestListEncodingFailureIsLogged(t *testing.T) {
	logs := new(lockedBuffer)
	ts := newServer(t, api.Config{Tokens: []string{"tok"}, Replays: badRuns{},
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v1/replays", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), `"type":"api_error"`) {
		t.Fatalf("got %d %s, want 500 api_error", resp.StatusCode, body)
	}
	if s := logs.String(); !strings.Contains(s, "request failed") || !strings.Contains(s, "/v1/replays") {
		t.Fatalf("the failure was not logged: %q", s)
	}
}

// lockedBuffer is a bytes.Buffer the server's goroutines may write while
// the test reads it.
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
