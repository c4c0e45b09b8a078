package console

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/fcaudit/fcaudit/projections"
	"github.com/fcaudit/fcaudit/store"
)

// LateAfter is how long after its Stripe created time an event must arrive
// to be marked late (Stripe's default signature tolerance).
const LateAfter = 5 * time.Minute

// historyEntry is one event of an account's history with what the page
// shows about it.
type historyEntry struct {
	ev *store.RecordedEvent
	// Status is the account's status at the event's created time: the
	// fold, in created order, of every event up to this one.
	Status string
	// Late: received more than LateAfter after created. OutOfOrder: an
	// event with a later created time was stored before it.
	Late, OutOfOrder bool
}

// accountHistory is an account's whole stream ordered by Stripe created
// time (ties by store position), as the status fold ranks events.
type accountHistory struct {
	entries []historyEntry
}

// newAccountHistory orders evs (one account's stream, store order) by
// created and folds the account status along that order with the read
// model's own fold (AccountStatus.Apply), so the status shown at each
// created time is the one GET /v1/accounts/{id}?as_of= answers.
func newAccountHistory(evs []store.RecordedEvent) (*accountHistory, error) {
	h := &accountHistory{entries: make([]historyEntry, len(evs))}
	var maxCreated int64
	for i := range evs {
		e := &evs[i]
		h.entries[i] = historyEntry{ev: e, OutOfOrder: i > 0 && e.Created < maxCreated,
			Late: e.ReceivedAt.Sub(time.Unix(e.Created, 0)) > LateAfter}
		maxCreated = max(maxCreated, e.Created)
	}
	slices.SortStableFunc(h.entries, func(a, b historyEntry) int {
		if c := cmp.Compare(a.ev.Created, b.ev.Created); c != 0 {
			return c
		}
		return cmp.Compare(a.ev.Position, b.ev.Position)
	})
	var s projections.AccountStatus
	seen := make(map[string]bool, len(evs))
	for i := range h.entries {
		e := h.entries[i].ev
		if !seen[e.ID] { // FoldAccount's rule: an id given twice is applied once
			seen[e.ID] = true
			if err := s.Apply(e); err != nil {
				return nil, err
			}
		}
		h.entries[i].Status = s.Status
	}
	return h, nil
}

// segment is a stretch of created time with one status.
type segment struct {
	Status   string
	From, To int64 // Unix seconds; To is the next change (or the axis end)
	X, W     float64
}

// tick marks the events of one pixel column.
type tick struct {
	X                float64
	Events           int
	Late, OutOfOrder int
	From, To         int64
}

// timeline is the status band's geometry (SVG user units).
type timeline struct {
	Width, Height float64
	Start, End    int64
	Segments      []segment
	Ticks         []tick
	// Marker is the as_of time's x (HasMarker false without one).
	Marker    float64
	HasMarker bool
	MarkerAt  int64
	Labels    []axisLabel
}

type axisLabel struct {
	X      float64
	Text   string
	Anchor string
}

const (
	timelineWidth  = 1000
	timelineHeight = 96
)

// timeline lays the history out over created time: one segment per run of
// the same status, and one tick per pixel column holding events (a page
// over 10,000 events draws at most timelineWidth ticks). asOf, when not 0,
// is marked and kept inside the axis.
func (h *accountHistory) timeline(asOf int64) *timeline {
	t := &timeline{Width: timelineWidth, Height: timelineHeight}
	if len(h.entries) == 0 {
		return t
	}
	t.Start, t.End = h.entries[0].ev.Created, h.entries[len(h.entries)-1].ev.Created
	if asOf != 0 {
		t.Start, t.End = min(t.Start, asOf), max(t.End, asOf)
	}
	// Room after the last event for its segment to show.
	span := max(t.End-t.Start, 60)
	t.End = t.Start + span + span/20
	x := func(ts int64) float64 {
		return float64(ts-t.Start) / float64(t.End-t.Start) * timelineWidth
	}
	for i := range h.entries {
		e := &h.entries[i]
		if n := len(t.Segments); n > 0 && t.Segments[n-1].Status == e.Status {
			continue
		}
		if n := len(t.Segments); n > 0 {
			t.Segments[n-1].To = e.ev.Created
		}
		t.Segments = append(t.Segments, segment{Status: e.Status, From: e.ev.Created})
	}
	t.Segments[len(t.Segments)-1].To = t.End
	for i := range t.Segments {
		s := &t.Segments[i]
		s.X, s.W = x(s.From), x(s.To)-x(s.From)
	}
	for i := range h.entries {
		e := &h.entries[i]
		col := float64(int(x(e.ev.Created))) + 0.5
		if n := len(t.Ticks); n == 0 || t.Ticks[n-1].X != col {
			t.Ticks = append(t.Ticks, tick{X: col, From: e.ev.Created})
		}
		k := &t.Ticks[len(t.Ticks)-1]
		k.Events++
		k.To = e.ev.Created
		if e.Late {
			k.Late++
		}
		if e.OutOfOrder {
			k.OutOfOrder++
		}
	}
	if asOf != 0 {
		t.HasMarker, t.Marker, t.MarkerAt = true, x(asOf), asOf
	}
	t.Labels = []axisLabel{
		{X: 0, Text: fmtUnix(t.Start), Anchor: "start"},
		{X: timelineWidth, Text: fmtUnix(t.End), Anchor: "end"},
	}
	return t
}

// change is one difference between two account snapshots.
type change struct {
	Kind  string // "added", "removed", "changed"
	Field string
	Old   string
	New   string
}

// maxChangeValue bounds a value shown in "what changed".
const maxChangeValue = 200

// changes compares the data.object snapshots of two event bodies: nested
// objects field by field (dotted paths), anything else (arrays, a value
// that became null or an object) as one value. prev nil: the first event,
// every field is added.
func changes(prev, cur []byte) ([]change, error) {
	curObj, err := snapshot(cur)
	if err != nil {
		return nil, err
	}
	var prevObj map[string]json.RawMessage
	if prev != nil {
		prevObj, _ = snapshot(prev) // an unreadable predecessor: all added
	}
	var out []change
	diffObjects("", prevObj, curObj, &out, 0)
	sort.SliceStable(out, func(i, j int) bool {
		// status first: it is what an auditor looks for.
		if (out[i].Field == "status") != (out[j].Field == "status") {
			return out[i].Field == "status"
		}
		return out[i].Field < out[j].Field
	})
	return out, nil
}

func diffObjects(prefix string, a, b map[string]json.RawMessage, out *[]change, depth int) {
	path := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	for k, bv := range b {
		av, ok := a[k]
		if !ok {
			*out = append(*out, change{Kind: "added", Field: path(k), New: displayValue(bv)})
			continue
		}
		if depth < 8 {
			ao, aok := asObject(av)
			bo, bok := asObject(bv)
			if aok && bok {
				diffObjects(path(k), ao, bo, out, depth+1)
				continue
			}
		}
		if old, cur := displayValue(av), displayValue(bv); old != cur {
			*out = append(*out, change{Kind: "changed", Field: path(k), Old: old, New: cur})
		}
	}
	for k, av := range a {
		if _, ok := b[k]; !ok {
			*out = append(*out, change{Kind: "removed", Field: path(k), Old: displayValue(av)})
		}
	}
}

func asObject(raw json.RawMessage) (map[string]json.RawMessage, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	var m map[string]json.RawMessage
	return m, json.Unmarshal(raw, &m) == nil
}

// snapshot reads an event body's data.object.
func snapshot(body []byte) (map[string]json.RawMessage, error) {
	var ev struct {
		Data struct {
			Object json.RawMessage `json:"object"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, fmt.Errorf("decode event body: %w", err)
	}
	if len(ev.Data.Object) == 0 {
		return map[string]json.RawMessage{}, nil
	}
	obj, ok := asObject(ev.Data.Object)
	if !ok {
		return nil, fmt.Errorf("data.object is not an object")
	}
	return obj, nil
}

// displayValue renders a JSON value for "what changed": strings without
// quotes, everything else compact JSON, clipped.
func displayValue(raw json.RawMessage) string {
	var s string
	if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return clip(maxChangeValue, s)
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return clip(maxChangeValue, string(raw))
	}
	return clip(maxChangeValue, b.String())
}

// clip shortens s to at most n runes, marking the cut.
func clip(n int, s string) string {
	if len(s) <= n {
		return s
	}
	i := 0
	for j := range s {
		if i == n {
			return s[:j] + "…"
		}
		i++
	}
	return s
}

func fmtUnix(ts int64) string {
	if ts == 0 {
		return "—"
	}
	return time.Unix(ts, 0).UTC().Format(time.RFC3339)
}

func fmtDelay(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + fmtDelay(-d)
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
	case d < time.Hour:
		return fmt.Sprintf("%dm %ds", d/time.Minute, d%time.Minute/time.Second)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %dm", d/time.Hour, d%time.Hour/time.Minute)
	}
	return fmt.Sprintf("%dd %dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
}
