package audit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/fcaudit/fcaudit/fcevents"
	"github.com/fcaudit/fcaudit/ingest"
)

func envelopeSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	var seeds [][]byte
	for _, pat := range []string{"*.json", "variants/*.json"} {
		names, err := filepath.Glob(filepath.Join("..", "testdata", "stripe", pat))
		if err != nil {
			tb.Fatal(err)
		}
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				tb.Fatal(err)
			}
			seeds = append(seeds, b)
		}
	}
	if len(seeds) < 10 {
		tb.Fatalf("found %d fixtures", len(seeds))
	}
	g := &fcevents.Generator{Size: 3000}
	seeds = append(seeds, g.Event(fcevents.TypeCreated, "", 1705312800))
	for _, s := range []string{
		`{"id":"evt_1","object":"event","type":"financial_connections.account.created","created":1,"data":{"object":{"id":"fca_1","object":"x"}}}`,
		`{"ID":"evt_1","object":"event","type":"t","created":1,"data":{"object":{}}}`,
		`{"id":"evt_1","id":"evt_2","object":"event","type":"t","created":1,"data":{"object":{}}}`,
		`{"id":"evt_\u0031","object":"event","type":"t","created":1,"data":{"object":{"id":"a\"b"}}}`,
		`{"id":"evt_1","object":"event","type":"t","created":1e3,"data":{"object":{}},"account":null,"livemode":true}`,
		`{"id":"evt_1","object":"event","type":"t","created":12,"data":{"object":{"x":[1,{"y":"}"}],"id":"o"},"Object":1}}`,
		`{"id":"evt_1","object":"event","type":"t","created":12,"data":{"object":{"id":"o"}},"account":"acct_1","livemode":false,"api_version":"2023-10-16"}`,
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// TestFastEnvelopeFixtures: the fast path takes every real body.
func TestFastEnvelopeFixtures(t *testing.T) {
	for i, b := range envelopeSeeds(t)[:11] {
		got, ok := fastEnvelope(b)
		want, err := ingest.ParseEnvelope(b)
		if err != nil {
			t.Fatal(err)
		}
		if !ok || got != want {
			t.Errorf("seed %d: fast path = %+v, %v; want %+v", i, got, ok, want)
		}
	}
}

// FuzzFastEnvelope: whenever the fast path vouches for a valid JSON body,
// ingest.ParseEnvelope accepts it and agrees on every field.
func FuzzFastEnvelope(f *testing.F) {
	for _, s := range envelopeSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := fastEnvelope(b)
		if !ok || !json.Valid(b) {
			return
		}
		want, err := ingest.ParseEnvelope(b)
		if err != nil {
			t.Fatalf("fast path accepted %q, ParseEnvelope: %v", b, err)
		}
		if got != want {
			t.Fatalf("fast path %+v, ParseEnvelope %+v for %q", got, want, b)
		}
	})
}
