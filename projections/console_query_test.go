package projections

import (
	"context"
	"strings"
	"testing"

	"github.com/fcaudit/fcaudit/fc"
)

// TestStatusCountsAndIDPrefix: the counts by status add up to the rows of
// the read model, status by status, and an id prefix selects exactly the
// accounts whose id starts with it (literally: % and _ are not wildcards,
// case is not folded).
func TestStatusCountsAndIDPrefix(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	h := genHistory(t, 3, 70, 12) // 12 accounts fca_gen0000000N…
	appendHistory(t, st, h)
	r := openRunner(t, dir, st, Options{})
	startRunner(t, r)
	waitCaughtUp(t, r)
	all := allAccounts(t, r)
	if len(all) != 12 {
		t.Fatalf("%d accounts, want 12", len(all))
	}

	counts, err := r.StatusCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	for _, a := range all {
		want[a.Status]++
	}
	if len(counts) != len(want) {
		t.Fatalf("counts %v, want %v", counts, want)
	}
	for k, v := range want {
		if counts[k] != v {
			t.Fatalf("counts %v, want %v", counts, want)
		}
	}

	for _, tc := range []struct {
		prefix string
		want   int
	}{
		{"fca_gen0000001", 2}, // 10 and 11
		{"fca_gen00000005", 1},
		{"fca_", 12},
		{"FCA_", 0},
		{"fca%", 0},
		{"fca_gen_", 0},
		{"zzz", 0},
	} {
		got, _, err := r.Accounts(context.Background(), ListOptions{IDPrefix: tc.prefix, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tc.want {
			t.Errorf("prefix %q: %d accounts, want %d", tc.prefix, len(got), tc.want)
		}
		for _, a := range got {
			if !strings.HasPrefix(a.ID, tc.prefix) {
				t.Errorf("prefix %q: got %s", tc.prefix, a.ID)
			}
		}
	}
}

// TestFoldAt: folding a stream already read answers what AccountAt answers
// for every as_of and known_at cut of the fixture timeline.
func TestFoldAt(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	h := genHistory(t, 5, 40, 2)
	appendHistory(t, st, h)
	r := openRunner(t, dir, st, Options{})
	for _, id := range h.accounts {
		evs, err := st.ReadStream(context.Background(), fc.AccountStream(id), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			for _, at := range []AsOf{{Created: e.Created}, {Created: e.Created - 1}, {Received: e.ReceivedAt}} {
				want, werr := r.AccountAt(context.Background(), id, at)
				got, gerr := FoldAt(evs, at)
				if gerr != nil || (werr != nil) != (got == nil) {
					t.Fatalf("%s at %+v: FoldAt %v, %v; AccountAt %v", id, at, got, gerr, werr)
				}
				if got != nil && (got.Status != want.Status || got.EventsCount != want.EventsCount || got.LastEvent != want.LastEvent) {
					t.Fatalf("%s at %+v: FoldAt %+v, AccountAt %+v", id, at, got, want)
				}
			}
		}
	}
}
