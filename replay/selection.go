package replay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/store"
)

// Reader is the part of the event log replay reads.
type Reader interface {
	// ReadAll returns events after opts.After matching opts.Filter, in store
	// order; an empty page means the end of the log.
	ReadAll(ctx context.Context, opts store.ReadOptions) ([]store.RecordedEvent, error)
	// Head returns the position of the last event (progress estimates).
	Head(ctx context.Context) (store.Position, error)
}

// stripeSources are the sources of Stripe events; fcaudit's own records
// (store.SourceFcaudit) are never selected.
var stripeSources = []string{store.SourceWebhook, store.SourceBackfill, store.SourceImport}

// pageSize is how many events one ReadAll returns: large enough to keep the
// workers fed, small enough that the read snapshot is short (the WAL of a
// running serve can reset between pages).
const pageSize = 1000

// Selection says which events a run replays. Fields combine with AND;
// values within Accounts or Types with OR.
type Selection struct {
	// Accounts are FC account ids (their streams fcaccount-<id>).
	Accounts []string `json:"accounts,omitempty"`
	// Types are Stripe event types; '*' matches any run of characters.
	Types []string `json:"types,omitempty"`
	// Since and Until bound the Stripe created time, inclusive (zero =
	// unbounded).
	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until,omitzero"`
	// FromPosition: only events after this global position.
	FromPosition store.Position `json:"from_position,omitempty"`
	// Limit caps the number of events selected (0 = all).
	Limit int `json:"limit,omitempty"`
}

// Filter is the store filter of the selection (everything but FromPosition
// and Limit). It always restricts to Stripe events.
func (s Selection) Filter() store.Filter {
	f := store.Filter{Types: s.Types, Sources: stripeSources}
	for _, a := range s.Accounts {
		f.Streams = append(f.Streams, fc.AccountStream(a))
	}
	if !s.Since.IsZero() {
		f.CreatedFrom = s.Since.Unix()
	}
	if !s.Until.IsZero() {
		f.CreatedTo = store.CreatedUntil(s.Until)
	}
	return f
}

// Validate reports contradictions, naming the field as the command's flag.
func (s Selection) Validate() error {
	if !s.Since.IsZero() && !s.Until.IsZero() && s.Since.After(s.Until) {
		return fmt.Errorf("since: %s is after until %s", s.Since.Format(time.RFC3339), s.Until.Format(time.RFC3339))
	}
	if s.Limit < 0 {
		return fmt.Errorf("limit: must not be negative")
	}
	return nil
}

// NarrowedBy names the first field that narrows the selection, as the
// replay command's flag ("account", "type", "since", "until",
// "from-position", "limit"), or "" when the selection is the whole log.
func (s Selection) NarrowedBy() string {
	switch {
	case len(s.Accounts) > 0:
		return "account"
	case len(s.Types) > 0:
		return "type"
	case !s.Since.IsZero():
		return "since"
	case !s.Until.IsZero():
		return "until"
	case s.FromPosition != 0:
		return "from-position"
	case s.Limit != 0:
		return "limit"
	}
	return ""
}

// key identifies the selection (order-insensitive) for checkpoints. Limit
// is left out: it says how much of the selection to take, not which events
// it is, so a canary run (--limit 5) can be continued with a larger limit or
// none. (Checkpoints written before this had the limit in their key; they
// match again with the same limit only.)
func (s Selection) key() string {
	c := s
	c.Limit = 0
	c.Accounts = slices.Sorted(slices.Values(s.Accounts))
	c.Types = slices.Sorted(slices.Values(s.Types))
	c.Since, c.Until = s.Since.UTC(), s.Until.UTC()
	b, _ := json.Marshal(c)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// cursor walks a selection page by page, resuming from a checkpoint.
type cursor struct {
	r           Reader
	opts        store.ReadOptions
	remaining   int // -1 = unlimited
	page        []store.RecordedEvent
	i           int
	exhausted   bool
	withoutData bool
}

// newCursor starts after `after`, with `done` selected events already
// behind it (they count against the limit).
func newCursor(r Reader, sel Selection, after store.Position, done int, withoutData bool) *cursor {
	c := &cursor{r: r, remaining: -1, withoutData: withoutData}
	if sel.Limit > 0 {
		c.remaining = max(sel.Limit-done, 0)
	}
	c.opts = store.ReadOptions{After: max(after, sel.FromPosition), Filter: sel.Filter(), WithoutData: withoutData}
	return c
}

// next returns the next selected event, or nil at the end of the selection.
// The event is valid until the page after the next one is read.
func (c *cursor) next(ctx context.Context) (*store.RecordedEvent, error) {
	if c.remaining == 0 {
		return nil, nil
	}
	if c.i == len(c.page) {
		if c.exhausted {
			return nil, nil
		}
		c.opts.Limit = pageSize
		if c.remaining > 0 {
			c.opts.Limit = min(pageSize, c.remaining)
		}
		page, err := c.r.ReadAll(ctx, c.opts)
		if err != nil {
			return nil, fmt.Errorf("read selection after position %d: %w", c.opts.After, err)
		}
		if len(page) == 0 {
			c.exhausted = true
			return nil, nil
		}
		// A fresh slice per page: events handed out stay valid while
		// workers still hold them.
		c.page, c.i = page, 0
		c.opts.After = page[len(page)-1].Position
	}
	ev := &c.page[c.i]
	c.i++
	if c.remaining > 0 {
		c.remaining--
	}
	return ev, nil
}

// countRest counts the selected events the cursor has not handed out yet,
// reading metadata only, skipping those skip reports (delivered by an
// earlier run).
func (c *cursor) countRest(ctx context.Context, skip func(store.Position) bool) (int, error) {
	n := 0
	for _, ev := range c.page[c.i:] {
		if c.remaining == 0 {
			return n, nil
		}
		if c.remaining > 0 {
			c.remaining--
		}
		if !skip(ev.Position) {
			n++
		}
	}
	c.page, c.i = nil, 0
	c.opts.WithoutData = true
	for {
		ev, err := c.next(ctx)
		if err != nil || ev == nil {
			return n, err
		}
		if !skip(ev.Position) {
			n++
		}
	}
}
