package projections

import (
	"context"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/store"
)

func TestFoldFixtureOrders(t *testing.T) {
	evs := fixtureEvents(t)
	reversed := slices.Clone(evs)
	slices.Reverse(reversed)
	shuffle := func(seed uint64) []store.RecordedEvent {
		s := slices.Clone(evs)
		rand.New(rand.NewPCG(seed, 1)).Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
		return s
	}
	duplicated := append(shuffle(7), shuffle(8)...)

	want, err := FoldAccount(evs)
	if err != nil {
		t.Fatal(err)
	}
	// Concrete fields of the in-order fold (testdata/stripe/README.md).
	if want.Status != "disconnected" {
		t.Errorf("status = %q, want disconnected (event 07)", want.Status)
	}
	if want.EventsCount != 7 {
		t.Errorf("events_count = %d, want 7", want.EventsCount)
	}
	if want.FirstSeenAt != 1705312800 {
		t.Errorf("first_seen_at = %d, want 1705312800 (event 01)", want.FirstSeenAt)
	}
	if want.LastEvent.ID != evs[6].ID || want.LastEvent.Type != fc.TypeDisconnected {
		t.Errorf("last_event = %+v, want 07 %s", want.LastEvent, evs[6].ID)
	}
	// 07's transaction_refresh: succeeded, attempted at T0+5d (from 06's refresh).
	if tr := want.TransactionRefresh; tr == nil || tr.Status != "succeeded" || tr.LastAttemptedAt != 1705744800 {
		t.Errorf("transaction_refresh = %+v, want succeeded at 1705744800 (07's snapshot)", tr)
	}
	if want.InstitutionName != "StripeBank" || want.Last4 != "6789" || want.Category != "cash" || want.Subcategory != "checking" {
		t.Errorf("snapshot fields = %q %q %q %q", want.InstitutionName, want.Last4, want.Category, want.Subcategory)
	}
	if want.Object != "account_status" || want.ID != fixtureAccount {
		t.Errorf("object/id = %q/%q", want.Object, want.ID)
	}
	if got := want.LastEventTimes[fc.TypeCreated]; got != 1705312800 {
		t.Errorf("last created time = %d", got)
	}
	if len(want.LastEventTimes) != 7 {
		t.Errorf("last_event_times has %d types, want 7", len(want.LastEventTimes))
	}

	tests := []struct {
		name string
		evs  []store.RecordedEvent
	}{
		{"in order", evs},
		{"reversed", reversed},
		{"shuffled 1", shuffle(1)},
		{"shuffled 2", shuffle(2)},
		{"duplicated and shuffled", duplicated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FoldAccount(tt.evs)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("fold differs:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestApplyPrefixes checks the status after each prefix of the timeline and
// that a late older event counts without overwriting newer state.
func TestApplyPrefixes(t *testing.T) {
	evs := fixtureEvents(t)
	wantStatus := []string{"active", "active", "active", "active", "inactive", "active", "disconnected"}
	wantTxn := []string{"", "", "", "succeeded", "failed", "succeeded", "succeeded"}
	var s AccountStatus
	for i := range evs {
		if err := s.Apply(&evs[i]); err != nil {
			t.Fatal(err)
		}
		if s.Status != wantStatus[i] {
			t.Errorf("after %s: status %q, want %q", fixtureNames[i], s.Status, wantStatus[i])
		}
		got := ""
		if s.TransactionRefresh != nil {
			got = s.TransactionRefresh.Status
		}
		if got != wantTxn[i] {
			t.Errorf("after %s: transaction_refresh.status %q, want %q", fixtureNames[i], got, wantTxn[i])
		}
	}

	late := evs[4] // deactivated, older than 07
	late.ID, late.Position = "evt_late", 99
	if err := s.Apply(&late); err != nil {
		t.Fatal(err)
	}
	if s.Status != "disconnected" || s.EventsCount != 8 || s.LastEvent.ID != evs[6].ID {
		t.Errorf("late older event: status %q count %d last %s; want disconnected, 8, %s", s.Status, s.EventsCount, s.LastEvent.ID, evs[6].ID)
	}
}

func TestApplyTieBrokenByPosition(t *testing.T) {
	evs := fixtureEvents(t)
	a, b := evs[4], evs[5] // inactive, active
	a.Created, b.Created = 1000, 1000
	a.Position, b.Position = 20, 10 // a is later in store order: it wins
	for _, order := range [][]store.RecordedEvent{{a, b}, {b, a}} {
		s, err := FoldAccount(order)
		if err != nil {
			t.Fatal(err)
		}
		if s.Status != "inactive" || s.LastEvent.ID != a.ID {
			t.Errorf("order %s,%s: status %q from %s; want inactive from %s", order[0].ID, order[1].ID, s.Status, s.LastEvent.ID, a.ID)
		}
	}
}

func TestApplyLenientAndErrors(t *testing.T) {
	evs := fixtureEvents(t)
	newer := toEvent(t, readFixture(t, "variants/newer_fields.account.refreshed_balance.json"), time.Unix(1, 0))
	rec := store.RecordedEvent{Event: newer, Stream: fc.AccountStream(fixtureAccount), Position: 50}
	var s AccountStatus
	if err := s.Apply(&rec); err != nil {
		t.Fatalf("newer API fields: %v", err)
	}
	if s.Status == "" || s.BalanceRefresh == nil || s.UndecodableEvents != 0 {
		t.Errorf("newer fields variant not read: %+v", s)
	}

	bad := evs[6]
	bad.Data, bad.Position, bad.Created = []byte("not json"), 60, evs[6].Created+10
	if err := s.Apply(&bad); err != nil {
		t.Fatalf("undecodable body: %v", err)
	}
	if s.UndecodableEvents != 1 || s.EventsCount != 2 || s.LastEvent.ID == bad.ID {
		t.Errorf("undecodable body: %+v", s)
	}

	other := evs[0]
	other.Stream = fc.AccountStream("fca_other")
	if err := s.Apply(&other); err == nil {
		t.Error("event of another account: want error")
	}
	notAccount := evs[0]
	notAccount.Stream = "stripe-customer-cus_1"
	if err := new(AccountStatus).Apply(&notAccount); err == nil {
		t.Error("event of a non-account stream: want error")
	}
	if s, err := FoldAccount(nil); s != nil || err != nil {
		t.Errorf("FoldAccount(nil) = %v, %v; want nil, nil", s, err)
	}
}

// TestFoldThroughStore appends the fixtures twice (Stripe redelivery: the
// store deduplicates) in shuffled order and folds the stored stream.
func TestFoldThroughStore(t *testing.T) {
	st := openStore(t, t.TempDir())
	evs := fixtureEvents(t)
	order := rand.New(rand.NewPCG(3, 3)).Perm(len(evs))
	for round := range 2 {
		for _, i := range order {
			if _, err := st.Append(context.Background(), evs[i].Stream, store.AnyRevision, evs[i].Event); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
	stored, err := st.ReadStream(context.Background(), fc.AccountStream(fixtureAccount), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	s, err := FoldAccount(stored)
	if err != nil {
		t.Fatal(err)
	}
	if s.EventsCount != 7 || s.Status != "disconnected" || s.LastEvent.ID != evs[6].ID {
		t.Errorf("stored fold: count %d status %q last %s", s.EventsCount, s.Status, s.LastEvent.ID)
	}
}

// TestFoldUnreadableAnyOrder: unreadable bodies never become the snapshot,
// and undecodable_events counts those that outrank it, whatever the order
// the events are applied in.
func TestFoldUnreadableAnyOrder(t *testing.T) {
	evs := fixtureEvents(t)
	unreadable := func(id string, created int64, pos store.Position) store.RecordedEvent {
		e := evs[1]
		e.ID, e.Created, e.Position, e.Data = id, created, pos, []byte(`{"data":{"object":"not an account"}}`)
		return e
	}
	top := evs[6].Created
	tests := []struct {
		name           string
		extra          []store.RecordedEvent
		wantStatus     string
		wantLast       string
		wantUndecoded  int64
		wantEventCount int64
	}{
		{"one above the last readable", []store.RecordedEvent{unreadable("evt_u1", top+10, 20)},
			"disconnected", evs[6].ID, 1, 8},
		{"one above, one below", []store.RecordedEvent{unreadable("evt_u1", top+10, 20), unreadable("evt_u2", evs[2].Created, 21)},
			"disconnected", evs[6].ID, 1, 9},
		{"same created, later position", []store.RecordedEvent{unreadable("evt_u1", top, 20), unreadable("evt_u2", top+1, 21)},
			"disconnected", evs[6].ID, 2, 9},
		{"below only", []store.RecordedEvent{unreadable("evt_u2", evs[0].Created-1, 21)},
			"disconnected", evs[6].ID, 0, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			all := append(slices.Clone(evs), tt.extra...)
			var first *AccountStatus
			for seed := range uint64(12) {
				order := slices.Clone(all)
				if seed == 1 {
					slices.Reverse(order)
				} else if seed > 1 {
					rand.New(rand.NewPCG(seed, 3)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
				}
				got, err := FoldAccount(order)
				if err != nil {
					t.Fatal(err)
				}
				if got.Status != tt.wantStatus || got.LastEvent.ID != tt.wantLast || got.UndecodableEvents != tt.wantUndecoded ||
					got.EventsCount != tt.wantEventCount {
					t.Fatalf("order %d: status %q from %s, undecodable %d, count %d; want %q from %s, %d, %d", seed,
						got.Status, got.LastEvent.ID, got.UndecodableEvents, got.EventsCount,
						tt.wantStatus, tt.wantLast, tt.wantUndecoded, tt.wantEventCount)
				}
				if first == nil {
					first = got
				} else if !reflect.DeepEqual(got, first) {
					t.Fatalf("order %d differs:\n got %+v\nwant %+v", seed, got, first)
				}
			}
		})
	}
}
