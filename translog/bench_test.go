package translog

import (
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/store"
)

// BenchmarkAppendPath is the tree's CPU per appended event: the leaf hash
// of a webhook with provenance, and the tree append.
func BenchmarkAppendPath(b *testing.B) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	e := store.RecordedEvent{Event: store.Event{ID: "evt_1OeXkQ2eZvKYlo2CqT7hN3aB", Source: store.SourceWebhook, ReceivedAt: now,
		Provenance: &store.Provenance{SignatureHeader: "t=1700000000,v1=0000000000000000000000000000000000000000000000000000000000000007", SignedAt: 1700000000,
			SecretFingerprint: "0011223344556677", VerifiedAt: now}}, Stream: "fcaccount-fca_1OeXkQ2eZvKYlo2CqT7hN3aB", Revision: 12}
	t := NewTree()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h := LeafHashOf(&e)
		t.Append(h[:])
		if i%32 == 31 {
			t.TakeDirty()
			_ = t.Frontier()
		}
	}
}

func BenchmarkLeafHashOf(b *testing.B) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	e := store.RecordedEvent{Event: store.Event{ID: "evt_1OeXkQ2eZvKYlo2CqT7hN3aB", Source: store.SourceWebhook, ReceivedAt: now,
		Provenance: &store.Provenance{SignatureHeader: "t=1700000000,v1=0000000000000000000000000000000000000000000000000000000000000007", SignedAt: 1700000000,
			SecretFingerprint: "0011223344556677", VerifiedAt: now}}, Stream: "fcaccount-fca_1OeXkQ2eZvKYlo2CqT7hN3aB", Revision: 12}
	for b.Loop() {
		LeafHashOf(&e)
	}
}

func BenchmarkTreeAppend(b *testing.B) {
	t := NewTree()
	h := LeafHash([]byte("x"))
	for b.Loop() {
		t.Append(h[:])
	}
}

func BenchmarkStartLeaf(b *testing.B) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	e := store.Event{ID: "evt_1OeXkQ2eZvKYlo2CqT7hN3aB", Source: store.SourceWebhook, ReceivedAt: now,
		Provenance: &store.Provenance{SignatureHeader: "t=1700000000,v1=0000000000000000000000000000000000000000000000000000000000000007", SignedAt: 1700000000,
			SecretFingerprint: "0011223344556677", VerifiedAt: now}}
	b.ReportAllocs()
	for b.Loop() {
		StartLeaf(&e, "fcaccount-fca_1OeXkQ2eZvKYlo2CqT7hN3aB", [32]byte{}).Finish(12)
	}
}
