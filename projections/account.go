package projections

import (
	"encoding/json"
	"fmt"

	"github.com/fcaudit/fcaudit/store"
)

// ObjectAccountStatus is the "object" value of an AccountStatus.
const ObjectAccountStatus = "account_status"

// Refresh is one of an account's refresh states (balance, ownership,
// transactions) as Stripe last reported it. Status is an open string:
// Stripe may add values.
type Refresh struct {
	Status          string `json:"status"`
	LastAttemptedAt int64  `json:"last_attempted_at"`
}

// EventRef names an event.
type EventRef struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Created int64  `json:"created"`
}

// AccountStatus is the account_status read model of one Financial
// Connections account (interface.md, "Account status object"), plus the
// fields the fold needs.
//
// The snapshot fields (Status … TransactionRefresh, DisplayName) come from
// the data.object of the account's event with the greatest Stripe created
// time, ties broken by store order; LastEvent names that event. The counters
// (EventsCount, FirstSeenAt, LastEventTimes) cover every event applied.
type AccountStatus struct {
	ID                 string   `json:"id"`
	Object             string   `json:"object"`
	Status             string   `json:"status"`
	Livemode           bool     `json:"livemode"`
	InstitutionName    string   `json:"institution_name"`
	Last4              string   `json:"last4"`
	Category           string   `json:"category"`
	Subcategory        string   `json:"subcategory"`
	DisplayName        string   `json:"display_name"`
	BalanceRefresh     *Refresh `json:"balance_refresh"`
	OwnershipRefresh   *Refresh `json:"ownership_refresh"`
	TransactionRefresh *Refresh `json:"transaction_refresh"`
	// FirstSeenAt is the smallest Stripe created time of the account's events.
	FirstSeenAt int64 `json:"first_seen_at"`
	// LastEvent is the event the snapshot was taken from.
	LastEvent   EventRef `json:"last_event"`
	EventsCount int64    `json:"events_count"`
	// LastEventTimes maps each event type seen to its greatest created time.
	LastEventTimes map[string]int64 `json:"last_event_times"`
	// SnapshotPosition is LastEvent's global position: the tie-breaker
	// between events with the same created time.
	SnapshotPosition store.Position `json:"snapshot_position"`
	// UndecodableEvents counts events whose data.object could not be read
	// as an account (counted, but never taken as the snapshot).
	UndecodableEvents int64 `json:"undecodable_events,omitempty"`
}

// accountObject is the part of a financial_connections.account that the
// read model keeps. Decoding is lenient: unknown fields (newer API versions)
// are ignored and every enum is an open string.
type accountObject struct {
	ID                 string   `json:"id"`
	Status             string   `json:"status"`
	Livemode           *bool    `json:"livemode"`
	InstitutionName    string   `json:"institution_name"`
	Last4              string   `json:"last4"`
	Category           string   `json:"category"`
	Subcategory        string   `json:"subcategory"`
	DisplayName        string   `json:"display_name"`
	BalanceRefresh     *Refresh `json:"balance_refresh"`
	OwnershipRefresh   *Refresh `json:"ownership_refresh"`
	TransactionRefresh *Refresh `json:"transaction_refresh"`
}

type eventBody struct {
	Data struct {
		Object *accountObject `json:"object"`
	} `json:"data"`
}

// decodeAccount reads data.object of a Stripe event body.
func decodeAccount(body []byte) (*accountObject, error) {
	var b eventBody
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, err
	}
	if b.Data.Object == nil {
		return nil, fmt.Errorf("no data.object")
	}
	return b.Data.Object, nil
}

// wins reports whether an event with this created time and position replaces
// the current snapshot: a greater created time, or the same one later in
// store order. An older event arriving late never does.
func (s *AccountStatus) wins(created int64, pos store.Position) bool {
	if s.EventsCount == 0 || s.LastEvent.ID == "" {
		return true
	}
	return created > s.LastEvent.Created || (created == s.LastEvent.Created && pos > s.SnapshotPosition)
}

// Apply folds one recorded event of the account's stream into s. It is the
// only implementation of account_status's rules:
//
//   - every event counts: EventsCount, FirstSeenAt (the smallest created),
//     LastEventTimes (the greatest created per type);
//   - the snapshot is data.object of the event with the greatest created,
//     ties broken by Position; an older event never overwrites it.
//
// Apply does not deduplicate: the caller applies each event once (the store
// deduplicates by event id, the Runner's checkpoint makes application
// exactly-once, FoldAccount drops repeated ids). An event whose body is not
// a readable account is counted (UndecodableEvents) but never becomes the
// snapshot. Apply fails only for an event that is not in an account stream or
// belongs to another account than s.
func (s *AccountStatus) Apply(ev *store.RecordedEvent) error {
	return s.apply(ev, nil, nil)
}

// apply is Apply with data.object possibly decoded ahead (obj or decErr set
// by a decoding worker), so rebuilds can decode in parallel.
func (s *AccountStatus) apply(ev *store.RecordedEvent, obj *accountObject, decErr error) error {
	acct := ev.Account()
	if acct == "" {
		return fmt.Errorf("apply %s: stream %q is not an account stream", ev.ID, ev.Stream)
	}
	if s.ID == "" {
		s.ID = acct
	} else if s.ID != acct {
		return fmt.Errorf("apply %s: event of account %s folded into %s", ev.ID, acct, s.ID)
	}
	s.Object = ObjectAccountStatus
	winner := s.wins(ev.Created, ev.Position)
	if winner && obj == nil && decErr == nil {
		obj, decErr = decodeAccount(ev.Data)
	}
	if s.EventsCount == 0 || ev.Created < s.FirstSeenAt {
		s.FirstSeenAt = ev.Created
	}
	s.EventsCount++
	if s.LastEventTimes == nil {
		s.LastEventTimes = make(map[string]int64, 4)
	}
	if t, ok := s.LastEventTimes[ev.Type]; !ok || ev.Created > t {
		s.LastEventTimes[ev.Type] = ev.Created
	}
	if !winner {
		return nil
	}
	if decErr != nil || obj == nil {
		s.UndecodableEvents++
		return nil
	}
	s.Status = obj.Status
	s.Livemode = ev.Livemode
	if obj.Livemode != nil {
		s.Livemode = *obj.Livemode
	}
	s.InstitutionName = obj.InstitutionName
	s.Last4 = obj.Last4
	s.Category = obj.Category
	s.Subcategory = obj.Subcategory
	s.DisplayName = obj.DisplayName
	s.BalanceRefresh = obj.BalanceRefresh
	s.OwnershipRefresh = obj.OwnershipRefresh
	s.TransactionRefresh = obj.TransactionRefresh
	s.LastEvent = EventRef{ID: ev.ID, Type: ev.Type, Created: ev.Created}
	s.SnapshotPosition = ev.Position
	return nil
}

// FoldAccount folds one account's events (in any order; an id given twice is
// applied once) with Apply. It returns nil when events is empty.
func FoldAccount(events []store.RecordedEvent) (*AccountStatus, error) {
	if len(events) == 0 {
		return nil, nil
	}
	s := new(AccountStatus)
	seen := make(map[string]struct{}, len(events))
	for i := range events {
		if _, dup := seen[events[i].ID]; dup {
			continue
		}
		seen[events[i].ID] = struct{}{}
		if err := s.Apply(&events[i]); err != nil {
			return nil, err
		}
	}
	return s, nil
}
