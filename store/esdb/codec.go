package esdb

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/fcaudit/fcaudit/store"
)

// metaV1 is fcaudit's custom metadata on every EventStoreDB event. Times are
// integers so that the chain input (microseconds) round-trips exactly.
type metaV1 struct {
	V              int               `json:"v"`
	ID             string            `json:"stripe_id"`
	ReceivedAtUS   int64             `json:"received_at_us"`
	Created        int64             `json:"created"`
	Livemode       bool              `json:"livemode"`
	APIVersion     string            `json:"api_version,omitempty"`
	ConnectAccount string            `json:"connect_account,omitempty"`
	Source         string            `json:"source"`
	Provenance     *store.Provenance `json:"provenance,omitempty"`
	BodySHA256     string            `json:"body_sha256"`
	ChainHash      string            `json:"chain_hash"`
	// Nonce is random per append request: two writers storing the same
	// event at the same head both get the node's idempotent success, and
	// the nonce read back tells which one's bytes were stored.
	Nonce string `json:"nonce,omitempty"`
}

// newNonce returns a fresh append nonce.
func newNonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// encode builds the EventData of e with its chain value.
func encode(e *store.Event, body, chain [32]byte, nonce string) (esdb.EventData, error) {
	m := metaV1{V: 1, ID: e.ID, ReceivedAtUS: e.ReceivedAt.UnixMicro(), Created: e.Created, Livemode: e.Livemode,
		APIVersion: e.APIVersion, ConnectAccount: e.ConnectAccount, Source: e.Source, Provenance: e.Provenance,
		BodySHA256: hex.EncodeToString(body[:]), ChainHash: hex.EncodeToString(chain[:]), Nonce: nonce}
	raw, err := json.Marshal(m)
	if err != nil {
		return esdb.EventData{}, fmt.Errorf("encode metadata of %s: %w", e.ID, err)
	}
	return esdb.EventData{EventID: EventID(e.ID), EventType: e.Type, ContentType: esdb.ContentTypeJson,
		Data: e.Data, Metadata: raw}, nil
}

// isSystem reports events fcaudit must never hand out: EventStoreDB's own
// ($-types such as $streamDeleted, $-streams such as $$fcaccount-x).
func isSystem(r *esdb.RecordedEvent) bool {
	return strings.HasPrefix(r.EventType, "$") || strings.HasPrefix(r.StreamID, "$")
}

// decode turns a recorded event of an fcaudit stream into a store.RecordedEvent.
func (s *Store) decode(r *esdb.RecordedEvent, withData bool) (store.RecordedEvent, error) {
	var m metaV1
	if err := json.Unmarshal(r.UserMetadata, &m); err != nil || m.V != 1 || m.ID == "" {
		return store.RecordedEvent{}, fmt.Errorf("decode %s@%d: not an fcaudit event (metadata %q)", r.StreamID, r.EventNumber, truncate(r.UserMetadata))
	}
	out := store.RecordedEvent{
		Event: store.Event{ID: m.ID, Type: r.EventType, ReceivedAt: time.UnixMicro(m.ReceivedAtUS).UTC(),
			Created: m.Created, Livemode: m.Livemode, APIVersion: m.APIVersion, ConnectAccount: m.ConnectAccount,
			Source: m.Source, Provenance: m.Provenance},
		Stream:   r.StreamID,
		Revision: r.EventNumber,
		Position: s.position(r.Position),
	}
	if withData {
		out.Data = r.Data
	}
	if err := unhex(m.BodySHA256, &out.BodySHA256); err != nil {
		return store.RecordedEvent{}, fmt.Errorf("decode %s@%d body_sha256: %w", r.StreamID, r.EventNumber, err)
	}
	if err := unhex(m.ChainHash, &out.ChainHash); err != nil {
		return store.RecordedEvent{}, fmt.Errorf("decode %s@%d chain_hash: %w", r.StreamID, r.EventNumber, err)
	}
	return out, nil
}

// chainOf reads only the chain value of a recorded event.
func chainOf(r *esdb.RecordedEvent) ([32]byte, error) {
	var m metaV1
	var out [32]byte
	if err := json.Unmarshal(r.UserMetadata, &m); err != nil {
		return out, fmt.Errorf("decode chain of %s@%d: %w", r.StreamID, r.EventNumber, err)
	}
	err := unhex(m.ChainHash, &out)
	if err != nil {
		err = fmt.Errorf("decode chain of %s@%d: %w", r.StreamID, r.EventNumber, err)
	}
	return out, err
}

func unhex(s string, dst *[32]byte) error {
	b, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	if len(b) != len(dst) {
		return fmt.Errorf("want %d bytes, got %d", len(dst), len(b))
	}
	copy(dst[:], b)
	return nil
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}

// claimData is the body of a claim event.
type claimData struct {
	Stream string `json:"stream"`
	// After is the stream's revision read before claiming (-1: empty), so
	// lookups start at After+1; absent in claims of older versions.
	After *int64 `json:"after,omitempty"`
}

func bodyHash(data []byte) [32]byte { return sha256.Sum256(data) }
