package translog

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/store"
)

func TestLeafDataLayout(t *testing.T) {
	e := store.RecordedEvent{
		Event: store.Event{ID: "evt_1", Source: store.SourceWebhook,
			ReceivedAt: time.Date(2026, 12, 4, 20, 28, 15, 123456000, time.UTC),
			Provenance: &store.Provenance{SignatureHeader: "t=1,v1=ab", SignedAt: 1, SecretFingerprint: "00ff",
				VerifiedAt: time.Date(2026, 12, 4, 20, 28, 15, 5, time.UTC), Note: `a "<note>"`}},
		Stream: "fcaccount-fca_1", Revision: 3, BodySHA256: sha256.Sum256([]byte("{}")),
	}
	want := `{"v":1,"id":"evt_1","stream":"fcaccount-fca_1","received_at":"2026-12-04T20:28:15.123456Z","source":"webhook","body_sha256":"` +
		hex.EncodeToString(e.BodySHA256[:]) + `","provenance":{"signature_header":"t=1,v1=ab","signed_at":1,"secret_fingerprint":"00ff","verified_at":"2026-12-04T20:28:15.000000005Z","note":"a \"\u003cnote\u003e\""},"revision":3}`
	if got := string(LeafData(&e)); got != want {
		t.Fatalf("leaf data\n got %s\nwant %s", got, want)
	}
	if LeafHashOf(&e) != LeafHash(LeafData(&e)) {
		t.Fatal("LeafHashOf differs from LeafHash(LeafData)")
	}
	if StartLeaf(&e.Event, e.Stream, e.BodySHA256).Finish(e.Revision) != LeafHash(LeafData(&e)) {
		t.Fatal("StartLeaf/Finish differs from LeafHash(LeafData)")
	}
	if !json.Valid(LeafData(&e)) {
		t.Fatal("leaf data is not JSON")
	}
	l, err := ParseLeaf(LeafData(&e))
	if err != nil || l.ID != e.ID || l.BodySHA256 != hex.EncodeToString(e.BodySHA256[:]) || l.Provenance.Note != e.Provenance.Note {
		t.Fatalf("parse: %+v, %v", l, err)
	}
	e.Provenance = nil
	if got := string(LeafData(&e)); got[len(got)-len(`"provenance":null,"revision":3}`):] != `"provenance":null,"revision":3}` {
		t.Fatalf("no provenance: %s", got)
	}
	// Every committed field changes the leaf.
	base := LeafData(&e)
	for name, mut := range map[string]func(*store.RecordedEvent){
		"source":   func(e *store.RecordedEvent) { e.Source = store.SourceBackfill },
		"stream":   func(e *store.RecordedEvent) { e.Stream += "x" },
		"revision": func(e *store.RecordedEvent) { e.Revision++ },
		"received": func(e *store.RecordedEvent) { e.ReceivedAt = e.ReceivedAt.Add(time.Microsecond) },
		"body":     func(e *store.RecordedEvent) { e.BodySHA256[0] ^= 1 },
		"id":       func(e *store.RecordedEvent) { e.ID = "evt_2" },
		"prov":     func(e *store.RecordedEvent) { e.Provenance = &store.Provenance{} },
	} {
		c := e
		mut(&c)
		if string(LeafData(&c)) == string(base) {
			t.Errorf("changing %s leaves the leaf data unchanged", name)
		}
	}
}

// TestTimeFormatsMatchLayouts: the hand-written formatters equal
// time.AppendFormat for random UTC times, with and without fractions.
func TestTimeFormatsMatchLayouts(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20000; i++ {
		tm := time.Unix(rng.Int64N(1<<36)-1<<34, 0).UTC()
		switch i % 4 {
		case 1:
			tm = tm.Add(time.Duration(rng.IntN(1e9)))
		case 2:
			tm = tm.Add(time.Duration(rng.IntN(1e6)) * time.Microsecond)
		case 3:
			tm = tm.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
		}
		if got, want := string(appendRFC3339Nano(nil, tm)), tm.Format(time.RFC3339Nano); got != want {
			t.Fatalf("RFC3339Nano of %v: %s, want %s", tm, got, want)
		}
		tu := tm.Truncate(time.Microsecond)
		if got, want := string(appendMicros(nil, tu)), tu.Format(receivedAtLayout); got != want {
			t.Fatalf("micros of %v: %s, want %s", tu, got, want)
		}
	}
}
