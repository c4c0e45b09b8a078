package projections

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/fcaudit/fcaudit/fc"
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
// Connections account (AccountStatus in api/openapi.yaml), plus the
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
	// UndecodableEvents counts the events whose data.object could not be
	// read as an account and that outrank the snapshot: each would be the
	// status if it were readable. Unreadable events are never the snapshot.
	UndecodableEvents int64 `json:"undecodable_events,omitempty"`

	// unreadable holds those events' ranks (UndecodableEvents is its
	// length), so that a later readable event can tell which it outranks.
	// It is stored with the row (storedState), not shown by the API.
	unreadable []rank
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

// rank orders an account's events for the snapshot: the greater Stripe
// created time wins, ties broken by store position.
type rank struct {
	Created  int64          `json:"created"`
	Position store.Position `json:"position"`
}

func rankOf(ev *store.RecordedEvent) rank { return rank{Created: ev.Created, Position: ev.Position} }

// above reports whether a outranks b.
func (a rank) above(b rank) bool {
	return a.Created > b.Created || (a.Created == b.Created && a.Position > b.Position)
}

func compareRanks(a, b rank) int {
	if c := cmp.Compare(a.Created, b.Created); c != 0 {
		return c
	}
	return cmp.Compare(a.Position, b.Position)
}

// outranksSnapshot reports whether an event of rank r would replace the
// current snapshot (always, when there is none yet).
func (s *AccountStatus) outranksSnapshot(r rank) bool {
	return s.LastEvent.ID == "" || r.above(rank{Created: s.LastEvent.Created, Position: s.SnapshotPosition})
}

// count folds the part of an event that every event contributes, from its
// metadata alone: EventsCount, FirstSeenAt, LastEventTimes. It fails for an
// event that is not in an account stream or belongs to another account.
func (s *AccountStatus) count(ev *store.RecordedEvent) error {
	acct := fc.AccountOf(ev.Stream)
	if acct == "" {
		return fmt.Errorf("apply %s: stream %q is not an account stream", ev.ID, ev.Stream)
	}
	if s.ID == "" {
		s.ID = acct
	} else if s.ID != acct {
		return fmt.Errorf("apply %s: event of account %s folded into %s", ev.ID, acct, s.ID)
	}
	s.Object = ObjectAccountStatus
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
	return nil
}

// setSnapshot takes obj (ev's data.object, readable) as the snapshot. The
// caller has checked that ev outranks the current one. Unreadable events
// ranked below ev no longer outrank the snapshot and stop being counted.
func (s *AccountStatus) setSnapshot(ev *store.RecordedEvent, obj *accountObject) {
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
	r := rankOf(ev)
	kept := s.unreadable[:0]
	for _, u := range s.unreadable {
		if u.above(r) {
			kept = append(kept, u)
		}
	}
	s.setUnreadable(kept)
}

func (s *AccountStatus) setUnreadable(ranks []rank) {
	if len(ranks) == 0 {
		ranks = nil
	}
	s.unreadable = ranks
	s.UndecodableEvents = int64(len(ranks))
}

// Apply folds one recorded event of the account's stream into s. It is the
// only implementation of account_status's rules (rebuilds apply the same
// steps, count, outranksSnapshot and setSnapshot, reading the bodies of
// the final winners only):
//
//   - every event counts: EventsCount, FirstSeenAt (the smallest created),
//     LastEventTimes (the greatest created per type);
//   - the snapshot is data.object of the event with the greatest created,
//     ties broken by Position, among the events whose data.object is
//     readable; an older event never overwrites it;
//   - UndecodableEvents counts the unreadable events that outrank the
//     snapshot (those that would otherwise be the status).
//
// The result does not depend on the order events are applied in. Only an
// event that outranks the current snapshot has its body decoded. Apply does
// not deduplicate: the caller applies each event once (the store
// deduplicates by event id, the Runner's checkpoint makes application
// exactly-once, FoldAccount drops repeated ids). Apply fails only for an
// event that is not in an account stream or belongs to another account
// than s.
func (s *AccountStatus) Apply(ev *store.RecordedEvent) error {
	if err := s.count(ev); err != nil {
		return err
	}
	s.offer(ev)
	return nil
}

// offer is Apply's snapshot step for an event already counted: when ev
// outranks the snapshot its body is decoded and, readable, becomes the
// snapshot (taken) or, unreadable, joins the unreadable ranks (unreadable).
func (s *AccountStatus) offer(ev *store.RecordedEvent) (taken, unreadable bool) {
	r := rankOf(ev)
	if !s.outranksSnapshot(r) {
		return false, false
	}
	obj, err := decodeAccount(ev.Data)
	if err != nil {
		// Kept in rank order, so the state does not depend on the order
		// events arrive in.
		i, _ := slices.BinarySearchFunc(s.unreadable, r, compareRanks)
		s.setUnreadable(slices.Insert(s.unreadable, i, r))
		return false, true
	}
	s.setSnapshot(ev, obj)
	return true, false
}

// offerBest offers events of s's account, already counted, from the best
// rank down, and stops at the first that becomes the snapshot: the events
// below it cannot outrank it. The result is that of offering every one
// (Apply's order independence), with only the bodies above the new
// snapshot decoded. unreadable, if not nil, is called for each event whose
// body joins the unreadable ranks. evs is reordered.
func (s *AccountStatus) offerBest(evs []*store.RecordedEvent, unreadable func(*store.RecordedEvent)) {
	if len(evs) > 1 {
		slices.SortFunc(evs, func(a, b *store.RecordedEvent) int { return compareRanks(rankOf(b), rankOf(a)) })
	}
	for _, ev := range evs {
		taken, bad := s.offer(ev)
		if taken || (!bad && !s.outranksSnapshot(rankOf(ev))) {
			return
		}
		if bad && unreadable != nil {
			unreadable(ev)
		}
	}
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
