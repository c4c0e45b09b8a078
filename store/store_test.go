package store

import (
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
)

func TestMatchType(t *testing.T) {
	tests := []struct {
		pattern, typ string
		want         bool
	}{
		{"financial_connections.account.created", "financial_connections.account.created", true},
		{"financial_connections.account.created", "financial_connections.account.creat", false},
		{"financial_connections.account.refreshed_*", "financial_connections.account.refreshed_balance", true},
		{"financial_connections.account.refreshed_*", "financial_connections.account.created", false},
		{"financial_connections.*", "financial_connections.account.created", true},
		{"*.created", "financial_connections.account.created", true},
		{"*.created", "financial_connections.account.deactivated", false},
		{"*", "anything", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXcYYb", false},
	}
	for _, tt := range tests {
		if got := MatchType(tt.pattern, tt.typ); got != tt.want {
			t.Errorf("MatchType(%q, %q) = %v, want %v", tt.pattern, tt.typ, got, tt.want)
		}
	}
}

func TestFilterMatch(t *testing.T) {
	e := RecordedEvent{Event: Event{Type: fc.TypeCreated, Created: 100, Source: SourceWebhook,
		ReceivedAt: time.Unix(200, 0)}, Stream: "fcaccount-fca_1"}
	tests := []struct {
		name string
		f    Filter
		want bool
	}{
		{"zero", Filter{}, true},
		{"prefix", Filter{StreamPrefix: "fcaccount-"}, true},
		{"other prefix", Filter{StreamPrefix: "stripe-"}, false},
		{"stream", Filter{Streams: []string{"x", "fcaccount-fca_1"}}, true},
		{"wrong stream", Filter{Streams: []string{"fcaccount-fca_2"}}, false},
		{"type glob", Filter{Types: []string{"nope", "financial_connections.*"}}, true},
		{"type miss", Filter{Types: []string{"nope"}}, false},
		{"created in", Filter{CreatedFrom: 100, CreatedTo: 100}, true},
		{"created before", Filter{CreatedFrom: 101}, false},
		{"created after", Filter{CreatedTo: 99}, false},
		{"received after", Filter{ReceivedTo: time.Unix(199, 0)}, false},
		{"received in", Filter{ReceivedFrom: time.Unix(200, 0)}, true},
		{"source", Filter{Sources: []string{SourceBackfill}}, false},
	}
	for _, tt := range tests {
		if got := tt.f.Match(&e); got != tt.want {
			t.Errorf("%s: Match = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestChainHashDependsOnEveryInput(t *testing.T) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 123456000, time.UTC)
	seed := ChainSeed("fcaccount-fca_1")
	body := sha256.Sum256([]byte("{}"))
	base := ChainHash(seed, body, "evt_1", at)
	if base != ChainHash(seed, body, "evt_1", at.In(time.FixedZone("x", 3600))) {
		t.Fatal("chain hash depends on the time zone of receivedAt")
	}
	variants := map[string][32]byte{
		"seed": ChainHash(ChainSeed("fcaccount-fca_2"), body, "evt_1", at),
		"body": ChainHash(seed, sha256.Sum256([]byte("{ }")), "evt_1", at),
		"id":   ChainHash(seed, body, "evt_2", at),
		"time": ChainHash(seed, body, "evt_1", at.Add(time.Microsecond)),
	}
	for name, v := range variants {
		if v == base {
			t.Errorf("changing %s does not change the chain hash", name)
		}
	}
}

func TestWrongRevisionError(t *testing.T) {
	var err error = &WrongRevisionError{Stream: "s", Expected: Exact(3), Actual: 5}
	if !errors.Is(err, ErrWrongExpectedRevision) {
		t.Fatal("WrongRevisionError does not unwrap to ErrWrongExpectedRevision")
	}
	if got, want := err.Error(), "append to s: expected revision 3, stream is at 5"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}
