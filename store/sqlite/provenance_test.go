package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/store"
)

func TestProvenanceEncoding(t *testing.T) {
	for _, p := range []store.Provenance{
		{},
		{SignatureHeader: "t=1,v1=ab", SignedAt: 1700000000, SecretFingerprint: "0011223344556677", VerifiedAt: time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)},
		{Note: "backfill: GET /v1/events (key 0123)", VerifiedAt: time.Date(1960, 1, 1, 0, 0, 0, 999999999, time.UTC), SignedAt: -5},
	} {
		got, err := decodeProvenance(encodeProvenance(&p))
		if err != nil || !reflect.DeepEqual(*got, p) {
			t.Errorf("round trip of %+v: %+v, %v", p, got, err)
		}
	}
	full := encodeProvenance(&store.Provenance{SignatureHeader: "abc", Note: "n"})
	for _, bad := range [][]byte{nil, {0x02}, full[:len(full)-1], append(full, 0), {provVersion, 0xff}} {
		if _, err := decodeProvenance(bad); err == nil {
			t.Errorf("decoded malformed %x", bad)
		}
	}
}

// TestOpenUpgradesVersion1 builds a file as schema version 1 wrote it (JSON
// provenance), then checks a read-only Open reads it unchanged and a
// read-write Open upgrades it and appends to it.
func TestOpenUpgradesVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	v1 := schema[:len(schema)-len("PRAGMA user_version = 2;\n")] + "PRAGMA user_version = 1;"
	chain := store.ChainHash(store.ChainSeed("fcaccount-a"), [32]byte{1}, "evt_old", time.UnixMicro(5))
	if _, err := db.Exec(v1); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO events (event_id, stream, revision, type, created, received_at, livemode, api_version,
		connect_account, source, body_sha256, chain_hash, provenance, body)
		VALUES ('evt_old', 'fcaccount-a', 0, 't', 1, 5, 0, 'v', NULL, 'webhook', ?, ?, ?, '{}')`,
		make([]byte, 32), chain[:], `{"signature_header":"t=1,v1=ab","signed_at":7,"verified_at":"2025-01-02T03:04:05.000006Z"}`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	wantProv := store.Provenance{SignatureHeader: "t=1,v1=ab", SignedAt: 7, VerifiedAt: time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)}
	check := func(s *Store) {
		t.Helper()
		e, err := s.EventByID(context.Background(), "evt_old")
		if err != nil {
			t.Fatal(err)
		}
		if e.Provenance == nil || !reflect.DeepEqual(*e.Provenance, wantProv) {
			t.Errorf("version 1 provenance read as %+v", e.Provenance)
		}
	}
	ro := openTest(t, path, Options{ReadOnly: true})
	check(ro)
	rw := openTest(t, path, Options{})
	check(rw)
	var v int
	if err := rw.rdb.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != schemaVersion {
		t.Fatalf("user_version after a read-write open = %d, %v", v, err)
	}
	res, err := rw.Append(context.Background(), "fcaccount-a", store.Exact(0), store.Event{
		ID: "evt_new", Type: "t", Data: []byte("{}"), ReceivedAt: time.Now(), Source: store.SourceWebhook, Provenance: &wantProv,
	})
	if err != nil || res[0].Revision != 1 {
		t.Fatalf("append after upgrade: %+v, %v", res, err)
	}
	e, err := rw.EventByID(context.Background(), "evt_new")
	if err != nil || !reflect.DeepEqual(*e.Provenance, wantProv) {
		t.Fatalf("new event: %+v, %v", e.Provenance, err)
	}
}
