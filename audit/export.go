package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strconv"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/record"
	"github.com/fcaudit/fcaudit/projections"
	"github.com/fcaudit/fcaudit/store"
)

// ExportOptions select an account's history.
type ExportOptions struct {
	Account string
	// Since and Until bound the Stripe created time, inclusive (Unix
	// seconds; 0 = unbounded), as the API's since/until do. A negative
	// Until selects nothing (every Stripe event is created after the
	// epoch).
	Since, Until int64
	// Types, when set, selects events of these types or globs (as
	// fc.ParseTypes returns them); statuses still fold every event up to
	// each one.
	Types []string
}

// selects reports whether the options select e.
func (o ExportOptions) selects(e *store.RecordedEvent) bool {
	if (o.Since != 0 && e.Created < o.Since) || (o.Until != 0 && e.Created > o.Until) {
		return false
	}
	if len(o.Types) == 0 {
		return true
	}
	for _, p := range o.Types {
		if store.MatchType(p, e.Type) {
			return true
		}
	}
	return false
}

// asOf is the time-travel selection of the export's statuses: with Until,
// what was true at Until (GET /v1/accounts/{id}?as_of=Until), so no status
// is taken from an event created after it.
func (o ExportOptions) asOf() projections.AsOf { return projections.AsOf{Created: o.Until} }

// History is an account's whole stream, read once, with the account status
// after every event and the stream's chain check. Exports write the
// selected part; the chain always covers the whole stream up to each event.
// The status after an event is the fold (projections.AccountStatus.Apply)
// of the stream up to it, keeping only the events that
// GET /v1/accounts/{id}?as_of=Until keeps (projections.AsOf.Includes): with
// --until, an event created after it never sets a status, even when it was
// stored earlier.
type History struct {
	Account string
	Stream  string
	// Events is the whole stream in revision order.
	Events []store.RecordedEvent
	// StatusAfter[i] is the account status after Events[i] was applied
	// (see History).
	StatusAfter []projections.AccountStatus
	// Status is the account's status as of Options.Until (the whole
	// stream without Until): the same fold as
	// GET /v1/accounts/{id}?as_of=Until. Nil when no event was created by
	// then.
	Status *projections.AccountStatus
	// Selected holds the indexes in Events that the options select.
	Selected []int
	// Check is the chain check of the whole stream.
	Check   *StreamReport
	Options ExportOptions
	// LogProofs, when set (AddLogProofs), adds log_proof.json to bundles.
	LogProofs *LogProofs
}

// ErrUnknownAccount is returned by LoadHistory for an account without events.
var ErrUnknownAccount = errors.New("unknown account: no stored events")

// LoadHistory reads an account's stream (in pages), folds its status and
// checks its chain.
func LoadHistory(ctx context.Context, r StreamReader, opts ExportOptions) (*History, error) {
	stream := fc.AccountStream(opts.Account)
	h := &History{Account: opts.Account, Stream: stream, Options: opts}
	var from uint64
	for {
		page, err := r.ReadStream(ctx, stream, from, streamPageSize)
		if errors.Is(err, store.ErrStreamNotFound) {
			return nil, fmt.Errorf("export account %s: %w", opts.Account, ErrUnknownAccount)
		}
		if err != nil {
			return nil, fmt.Errorf("export account %s: %w", opts.Account, err)
		}
		h.Events = append(h.Events, page...)
		if len(page) < streamPageSize {
			break
		}
		from = page[len(page)-1].Revision + 1
	}
	c := newChain(stream)
	h.Check = &StreamReport{Stream: stream}
	var status projections.AccountStatus
	at := opts.asOf()
	h.StatusAfter = make([]projections.AccountStatus, len(h.Events))
	for i := range h.Events {
		e := &h.Events[i]
		if b := c.check(e, sha256.Sum256(e.Data), true, nil); b != nil {
			h.Check.FirstBroken = b
		}
		h.Check.Events++
		h.Check.LastRevision, h.Check.ChainHash = e.Revision, e.ChainHash
		if at.Includes(e) {
			if err := status.Apply(e); err != nil {
				return nil, fmt.Errorf("export account %s: status after %s: %w", opts.Account, e.ID, err)
			}
		}
		snap := status
		snap.LastEventTimes = maps.Clone(status.LastEventTimes)
		h.StatusAfter[i] = snap
		if opts.selects(e) {
			h.Selected = append(h.Selected, i)
		}
	}
	if status.EventsCount > 0 {
		final := status
		h.Status = &final
	}
	return h, nil
}

// WriteNDJSON writes the selected events as records (record.Record: full
// payload and provenance), one JSON object per line.
func (h *History) WriteNDJSON(w io.Writer) error {
	enc := record.NewEncoder(w)
	for _, i := range h.Selected {
		if err := enc.Encode(record.From(&h.Events[i])); err != nil {
			return fmt.Errorf("write ndjson: %w", err)
		}
	}
	return nil
}

// CSVHeader is the header row of WriteCSV.
var CSVHeader = []string{"position", "revision", "id", "type", "created", "received_at", "livemode",
	"api_version", "connect_account", "source", "signed_at", "secret_fingerprint", "body_sha256", "chain_hash",
	"status_after", "balance_refresh_after", "ownership_refresh_after", "transaction_refresh_after", "snapshot_event_after"}

// WriteCSV writes one row per selected event with the main fields and the
// account's status after the event; times are RFC 3339 UTC.
func (h *History) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	for _, i := range h.Selected {
		e, st := &h.Events[i], &h.StatusAfter[i]
		var signedAt, fingerprint string
		if p := e.Provenance; p != nil {
			fingerprint = p.SecretFingerprint
			if p.SignedAt != 0 {
				signedAt = time.Unix(p.SignedAt, 0).UTC().Format(time.RFC3339)
			}
		}
		row := []string{
			strconv.FormatUint(uint64(e.Position), 10),
			strconv.FormatUint(e.Revision, 10),
			e.ID, e.Type,
			time.Unix(e.Created, 0).UTC().Format(time.RFC3339),
			store.FormatReceivedAt(e.ReceivedAt),
			strconv.FormatBool(e.Livemode),
			e.APIVersion, e.ConnectAccount, e.Source, signedAt, fingerprint,
			hex.EncodeToString(e.BodySHA256[:]), hex.EncodeToString(e.ChainHash[:]),
			st.Status, refreshStatus(st.BalanceRefresh), refreshStatus(st.OwnershipRefresh),
			refreshStatus(st.TransactionRefresh), st.LastEvent.ID,
		}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("write csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

func refreshStatus(r *projections.Refresh) string {
	if r == nil {
		return ""
	}
	return r.Status
}

// TimelineEntry is one line of the status timeline: an event and the
// account's status after it.
type TimelineEntry struct {
	Position   store.Position `json:"position"`
	Revision   uint64         `json:"revision"`
	ID         string         `json:"id"`
	Type       string         `json:"type"`
	Created    int64          `json:"created"`
	ReceivedAt string         `json:"received_at"`
	// Snapshot is true when this event's account snapshot became the
	// current one; false for an older event that arrived late (it is
	// counted but does not change the status).
	Snapshot    bool                      `json:"snapshot"`
	StatusAfter projections.AccountStatus `json:"status_after"`
}

// Timeline returns the selected events with the status after each.
func (h *History) Timeline() []TimelineEntry {
	out := make([]TimelineEntry, 0, len(h.Selected))
	for _, i := range h.Selected {
		e := &h.Events[i]
		out = append(out, TimelineEntry{Position: e.Position, Revision: e.Revision, ID: e.ID, Type: e.Type,
			Created: e.Created, ReceivedAt: store.FormatReceivedAt(e.ReceivedAt),
			Snapshot: h.StatusAfter[i].LastEvent.ID == e.ID, StatusAfter: h.StatusAfter[i]})
	}
	return out
}

// ChainProof lets anyone recompute a stream's hash chain with nothing but
// SHA-256 (chain_proof.json in a bundle).
type ChainProof struct {
	Stream      string      `json:"stream"`
	Recipe      []string    `json:"recipe"`
	Seed        string      `json:"seed"`
	Links       []ChainLink `json:"links"`
	Head        *ChainLink  `json:"head"`
	Intact      bool        `json:"intact"`
	FirstBroken *Break      `json:"first_broken"`
}

// ChainLink is one revision of a ChainProof.
type ChainLink struct {
	Revision   uint64         `json:"revision"`
	Position   store.Position `json:"position"`
	ID         string         `json:"id"`
	ReceivedAt string         `json:"received_at"`
	BodySHA256 string         `json:"body_sha256"`
	ChainHash  string         `json:"chain_hash"`
	// BodyFile is the bundle file holding the exact body bytes.
	BodyFile string `json:"body_file,omitempty"`
	// Selected is true when the event is in the export's selection.
	Selected bool `json:"selected"`
}

// chainRecipe explains the chain in the proof itself (store.ChainHash).
var chainRecipe = []string{
	"seed = SHA-256(the stream name as UTF-8 bytes)",
	"body_sha256[r] = SHA-256(the exact stored body bytes of revision r; see body_file)",
	"chain_hash[r] = SHA-256(prev || body_sha256[r] || id || 0x00 || received_at), where prev is chain_hash[r-1] (the seed for r = 0) and both hashes are their 32 raw bytes (not hex), id and received_at are UTF-8 exactly as written here (received_at: UTC, six fractional digits)",
	"every link must match; head.chain_hash is the stream's value at export time: compare it with an auditor checkpoint (fcaudit verify --write-checkpoint) taken earlier or later",
}

// ChainProof builds the proof of the whole stream (the chain needs every
// revision from 0). bodyFile names each revision's body file ("" for none).
func (h *History) ChainProof(bodyFile func(e *store.RecordedEvent) string) ChainProof {
	seed := store.ChainSeed(h.Stream)
	p := ChainProof{Stream: h.Stream, Recipe: chainRecipe, Seed: hex.EncodeToString(seed[:]),
		Links: make([]ChainLink, len(h.Events)), Intact: h.Check.FirstBroken == nil, FirstBroken: h.Check.FirstBroken}
	sel := make(map[int]bool, len(h.Selected))
	for _, i := range h.Selected {
		sel[i] = true
	}
	for i := range h.Events {
		e := &h.Events[i]
		p.Links[i] = ChainLink{Revision: e.Revision, Position: e.Position, ID: e.ID,
			ReceivedAt: store.FormatReceivedAt(e.ReceivedAt), BodySHA256: hex.EncodeToString(e.BodySHA256[:]),
			ChainHash: hex.EncodeToString(e.ChainHash[:]), BodyFile: bodyFile(e), Selected: sel[i]}
	}
	if n := len(p.Links); n > 0 {
		last := p.Links[n-1]
		p.Head = &last
	}
	return p
}

// marshalIndent encodes v as indented JSON with a trailing newline, leaving
// '<', '>' and '&' alone.
func marshalIndent(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
