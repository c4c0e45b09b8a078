package replay

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/record"
	"github.com/fcaudit/fcaudit/store"
)

// planLines renders what WritePlan should print for events.
func planLines(evs []store.RecordedEvent) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "%d\t%s\t%s\t%s\n", ev.Position, ev.ID, ev.Type, fc.AccountOf(ev.Stream))
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
			keep(func(ev store.RecordedEvent, _ int) bool { return fc.AccountOf(ev.Stream) == "fca_seed0001" })},
		{"two accounts", Selection{Accounts: []string{"fca_seed0003", "fca_seed0000"}},
			keep(func(ev store.RecordedEvent, _ int) bool {
				return fc.AccountOf(ev.Stream) == "fca_seed0000" || fc.AccountOf(ev.Stream) == "fca_seed0003"
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
				return fc.AccountOf(ev.Stream) == "fca_seed0002" && i > 5 && i < 5+2*4+1
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
