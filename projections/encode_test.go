package projections

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/fcaudit/fcaudit/store"
)

func TestAppendStateMatchesMarshal(t *testing.T) {
	folded, err := FoldAccount(fixtureEvents(t))
	if err != nil {
		t.Fatal(err)
	}
	withUnreadable := *folded
	withUnreadable.setUnreadable([]rank{{Created: 1, Position: 2}, {Created: 3, Position: 4}})
	odd := *folded
	odd.Status, odd.InstitutionName, odd.DisplayName = "a\"b\\c\n\t\x01\x7f", "<Bank & Co>", "Café \u2028 \xff"
	odd.LastEventTimes = map[string]int64{"a<b": 1, "é": -2, "": 3}
	odd.BalanceRefresh = &Refresh{Status: "", LastAttemptedAt: -1}
	for _, tt := range []struct {
		name string
		s    *AccountStatus
	}{
		{"empty", &AccountStatus{}},
		{"empty map", &AccountStatus{ID: "fca_1", LastEventTimes: map[string]int64{}}},
		{"fixture fold", folded},
		{"unreadable ranks", &withUnreadable},
		{"escaped strings", &odd},
		{"big numbers", &AccountStatus{FirstSeenAt: -1 << 63, EventsCount: 1<<63 - 1, SnapshotPosition: store.Position(1<<64 - 1)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			want, err := json.Marshal(storedState{AccountStatus: tt.s, Unreadable: tt.s.unreadable})
			if err != nil {
				t.Fatal(err)
			}
			if got := appendState(nil, tt.s); !bytes.Equal(got, want) {
				t.Fatalf("appendState\n got %s\nwant %s", got, want)
			}
		})
	}
}
