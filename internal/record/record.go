// Package record is the JSON form of a stored event, shared by every place
// that shows one: GET /v1/events/{id}, replay's NDJSON target and audit
// exports. Keeping one type keeps them identical.
package record

import (
	"encoding/hex"
	"encoding/json"
	"io"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/store"
)

// Record is a stored event as the API returns it (EventRecord in
// api/openapi.yaml).
type Record struct {
	ID             string            `json:"id"`
	Type           string            `json:"type"`
	Account        *string           `json:"account"`
	Stream         string            `json:"stream"`
	Revision       uint64            `json:"revision"`
	Position       store.Position    `json:"position"`
	Created        int64             `json:"created"`
	ReceivedAt     string            `json:"received_at"`
	Livemode       bool              `json:"livemode"`
	APIVersion     string            `json:"api_version"`
	ConnectAccount *string           `json:"connect_account"`
	Source         string            `json:"source"`
	BodySHA256     string            `json:"body_sha256"`
	ChainHash      string            `json:"chain_hash"`
	Provenance     *store.Provenance `json:"provenance"`
	// Payload is the stored body. JSON encoding compacts it (whitespace
	// only); the exact bytes are served by GET /v1/events/{id}/body and are
	// what body_sha256 covers.
	Payload json.RawMessage `json:"payload"`
}

// From converts a recorded event. It does not copy the body.
func From(e *store.RecordedEvent) Record {
	r := Record{
		ID:         e.ID,
		Type:       e.Type,
		Stream:     e.Stream,
		Revision:   e.Revision,
		Position:   e.Position,
		Created:    e.Created,
		ReceivedAt: store.FormatReceivedAt(e.ReceivedAt),
		Livemode:   e.Livemode,
		APIVersion: e.APIVersion,
		Source:     e.Source,
		BodySHA256: hex.EncodeToString(e.BodySHA256[:]),
		ChainHash:  hex.EncodeToString(e.ChainHash[:]),
		Provenance: e.Provenance,
		Payload:    json.RawMessage(e.Data),
	}
	if a := fc.AccountOf(e.Stream); a != "" {
		r.Account = &a
	}
	if e.ConnectAccount != "" {
		c := e.ConnectAccount
		r.ConnectAccount = &c
	}
	if len(r.Payload) == 0 || !json.Valid(r.Payload) {
		// Never produce invalid JSON: a body that is not JSON (only possible
		// for imported data) is shown as a JSON string.
		s, _ := json.Marshal(string(e.Data))
		r.Payload = s
	}
	return r
}

// NewEncoder returns a JSON encoder that leaves '<', '>' and '&' in payloads
// alone (Stripe's bodies are not HTML) and writes one record per line.
func NewEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}
