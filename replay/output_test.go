package replay

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/fcaudit/fcaudit/api"
	"github.com/fcaudit/fcaudit/internal/record"
	"github.com/fcaudit/fcaudit/store"
)

// planLines renders what WritePlan should print for events.
func planLines(evs []store.RecordedEvent) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "%d\t%s\t%s\t%s\n", ev.Position, ev.ID, ev.Type, ev.Account())
	}
	return b.String()
}

func TestSelectionFilters(t *testing.T) {
	st, _ := openStore(t)
	stored := seed(t, st, 4, 7)
	// A non-Stripe record that no selection may return.
	if err := AppendRun(context.Background(), st, RunRecord{ID: "replay_x", StartedAt: time.Unix(t0, 0)}); err != nil {
		t.Fatal(err)
	}
	keep := func(pred func(ev store.RecordedEvent, i int) bool) []store.RecordedEvent {
		var out []store.RecordedEvent
		for i, ev := range stored {
			if pred(ev, i) {
				out = append(out, ev)
			}
		}
		return out
	}
	created := func(i int) time.Time { return time.Unix(int64(t0+60*i), 0) }
	tests := []struct {
		name string
		sel  Selection
		want []store.RecordedEvent
	}{
		{"all", Selection{}, stored},
		{"one account", Selection{Accounts: []string{"fca_seed0001"}},
			keep(func(ev store.RecordedEvent, _ int) bool { return ev.Account() == "fca_seed0001" })},
		{"two accounts", Selection{Accounts: []string{"fca_seed0003", "fca_seed0000"}},
			keep(func(ev store.RecordedEvent, _ int) bool {
				return ev.Account() == "fca_seed0000" || ev.Account() == "fca_seed0003"
			})},
		{"type glob", Selection{Types: []string{"financial_connections.account.refreshed_*"}},
			keep(func(ev store.RecordedEvent, _ int) bool {
				return strings.HasPrefix(ev.Type, "financial_connections.account.refreshed_")
			})},
		{"exact type or glob", Selection{Types: []string{"financial_connections.account.created", "*.disconnected"}},
			keep(func(ev store.RecordedEvent, _ int) bool {
				return ev.Type == "financial_connections.account.created" || ev.Type == "financial_connections.account.disconnected"
			})},
		{"since/until inclusive", Selection{Since: created(5), Until: created(9)},
			keep(func(_ store.RecordedEvent, i int) bool { return i >= 5 && i <= 9 })},
		{"from position", Selection{FromPosition: stored[10].Position}, stored[11:]},
		{"limit", Selection{Limit: 3}, stored[:3]},
		{"account + limit + from", Selection{Accounts: []string{"fca_seed0002"}, FromPosition: stored[5].Position, Limit: 2},
			keep(func(ev store.RecordedEvent, i int) bool {
				return ev.Account() == "fca_seed0002" && i > 5 && i < 5+2*4+1
			})},
		{"nothing", Selection{Types: []string{"customer.*"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			n, err := WritePlan(context.Background(), st, tt.sel, &out, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if want := planLines(tt.want); out.String() != want || n != len(tt.want) {
				t.Fatalf("plan (%d lines):\n%s\nwant (%d):\n%s", n, out.String(), len(tt.want), want)
			}
		})
	}
}

func TestWriteNDJSON(t *testing.T) {
	st, _ := openStore(t)
	stored := seed(t, st, 3, 3)
	var out bytes.Buffer
	n, err := WriteNDJSON(context.Background(), st, Selection{Accounts: []string{"fca_seed0001"}}, &out)
	if err != nil || n != 3 {
		t.Fatalf("wrote %d, err %v", n, err)
	}
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<20)
	i := 0
	for sc.Scan() {
		var got record.Record
		if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		ev, err := st.EventByID(context.Background(), got.ID)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(record.From(&ev))
		again, _ := json.Marshal(got)
		if !bytes.Equal(want, again) || got.Account == nil || *got.Account != "fca_seed0001" {
			t.Fatalf("line %d:\n%s\nwant\n%s", i+1, again, want)
		}
		i++
	}
	if i != 3 || stored == nil {
		t.Fatalf("%d lines, want 3", i)
	}
}

func TestRunsAPI(t *testing.T) {
	st, _ := openStore(t)
	srv := api.NewServer(api.Config{Store: st, Tokens: []string{"tok"}, Routes: []func(*mux.Router, api.Helpers){Routes(st)}})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
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
		rec := RunRecord{ID: fmt.Sprintf("replay_%d", i), User: "alice", Host: "h", StartedAt: time.Unix(t0+int64(i), 0).UTC(),
			Target: Target{Kind: "http", URL: "https://example.com/hook"}, Counts: Result{Replayed: i}, Status: StatusSucceeded}
		if err := AppendRun(context.Background(), st, rec); err != nil {
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
