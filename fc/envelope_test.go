package fc

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "stripe", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func allFixtures(tb testing.TB) map[string][]byte {
	tb.Helper()
	out := map[string][]byte{}
	for _, pat := range []string{"*.json", "variants/*.json"} {
		names, err := filepath.Glob(filepath.Join("..", "testdata", "stripe", pat))
		if err != nil {
			tb.Fatal(err)
		}
		for _, n := range names {
			rel, _ := filepath.Rel(filepath.Join("..", "testdata", "stripe"), n)
			out[rel] = fixture(tb, rel)
		}
	}
	if len(out) < 10 {
		tb.Fatalf("found %d fixtures, want 10", len(out))
	}
	return out
}

const customerCreated = `{
  "id": "evt_1OeZzz2eZvKYlo2CcUsTomer",
  "object": "event",
  "api_version": "2023-10-16",
  "created": 1705312700,
  "data": {
    "object": {
      "id": "cus_123",
      "object": "customer",
      "email": "jenny@example.com"
    }
  },
  "livemode": true,
  "pending_webhooks": 2,
  "request": {"id": "req_1", "idempotency_key": null},
  "type": "customer.created"
}
`

func TestParseEnvelope(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    Envelope
		wantErr bool
	}{
		{name: "minimal FC event", body: `{"id":"evt_1","object":"event","type":"financial_connections.account.created","created":17,"data":{"object":{"id":"fca_1","object":"financial_connections.account"}}}`,
			want: Envelope{ID: "evt_1", Object: "event", Type: "financial_connections.account.created", Created: 17, ObjectID: "fca_1", ObjectType: "financial_connections.account"}},
		{name: "unknown fields and nested junk", body: `{"zzz":[1,{"a":null}],"id":"evt_1","object":"event","type":"x.y","created":17,"livemode":true,"api_version":"2099-01-01.preview","account":"acct_9","data":{"object":{"id":"x_1","object":"x","deep":{"id":"nope"}}}}`,
			want: Envelope{ID: "evt_1", Object: "event", Type: "x.y", Created: 17, Livemode: true, APIVersion: "2099-01-01.preview", ConnectAccount: "acct_9", ObjectID: "x_1", ObjectType: "x"}},
		{name: "non-FC object without id", body: `{"id":"evt_1","object":"event","type":"balance.available","created":17,"data":{"object":{"object":"balance"}}}`,
			want: Envelope{ID: "evt_1", Object: "event", Type: "balance.available", Created: 17, ObjectType: "balance"}},
		{name: "not JSON", body: `hello`, wantErr: true},
		{name: "empty", body: ``, wantErr: true},
		{name: "JSON array", body: `[1,2]`, wantErr: true},
		{name: "JSON string", body: `"evt_1"`, wantErr: true},
		{name: "null", body: `null`, wantErr: true},
		{name: "trailing garbage", body: `{"id":"evt_1","object":"event","type":"t","created":1,"data":{"object":{"id":"x"}}} {}`, wantErr: true},
		{name: "object is not event", body: `{"id":"cus_1","object":"customer","type":"t","created":1,"data":{"object":{"id":"x"}}}`, wantErr: true},
		{name: "missing object", body: `{"id":"evt_1","type":"t","created":1,"data":{"object":{"id":"x"}}}`, wantErr: true},
		{name: "missing id", body: `{"object":"event","type":"t","created":1,"data":{"object":{"id":"x"}}}`, wantErr: true},
		{name: "empty id", body: `{"id":"","object":"event","type":"t","created":1,"data":{"object":{"id":"x"}}}`, wantErr: true},
		{name: "numeric id", body: `{"id":42,"object":"event","type":"t","created":1,"data":{"object":{"id":"x"}}}`, wantErr: true},
		{name: "null id", body: `{"id":null,"object":"event","type":"t","created":1,"data":{"object":{"id":"x"}}}`, wantErr: true},
		{name: "missing type", body: `{"id":"evt_1","object":"event","created":1,"data":{"object":{"id":"x"}}}`, wantErr: true},
		{name: "missing created", body: `{"id":"evt_1","object":"event","type":"t","data":{"object":{"id":"x"}}}`, wantErr: true},
		{name: "zero created", body: `{"id":"evt_1","object":"event","type":"t","created":0,"data":{"object":{"id":"x"}}}`, wantErr: true},
		{name: "string created", body: `{"id":"evt_1","object":"event","type":"t","created":"1","data":{"object":{"id":"x"}}}`, wantErr: true},
		{name: "missing data", body: `{"id":"evt_1","object":"event","type":"t","created":1}`, wantErr: true},
		{name: "missing data.object", body: `{"id":"evt_1","object":"event","type":"t","created":1,"data":{}}`, wantErr: true},
		{name: "data.object not an object", body: `{"id":"evt_1","object":"event","type":"t","created":1,"data":{"object":"fca_1"}}`, wantErr: true},
		{name: "FC event without object id", body: `{"id":"evt_1","object":"event","type":"financial_connections.account.created","created":1,"data":{"object":{"object":"financial_connections.account"}}}`, wantErr: true},
		{name: "invalid UTF-8", body: "{\"id\":\"evt_\xff\",\"object\":\"event\",\"type\":\"t\",\"created\":1,\"data\":{\"object\":{\"id\":\"x\"}}}", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEnvelope([]byte(tt.body))
			if tt.wantErr {
				if !errors.Is(err, ErrPayloadInvalid) {
					t.Fatalf("err = %v, want ErrPayloadInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEnvelope: %v", err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseEnvelopeFixtures(t *testing.T) {
	for name, body := range allFixtures(t) {
		env, err := ParseEnvelope(body)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !strings.HasPrefix(env.ID, "evt_") || !strings.HasPrefix(env.ObjectID, "fca_") ||
			env.ObjectType != "financial_connections.account" || env.Created < 1705312800 ||
			!strings.HasPrefix(env.Type, AccountEventPrefix) || env.Livemode || env.Object != "event" {
			t.Errorf("%s: unexpected envelope %+v", name, env)
		}
		wantConnect := ""
		if strings.HasPrefix(name, "variants/connect_") {
			wantConnect = "acct_1OeWz12eZvKYlo2C"
		}
		if env.ConnectAccount != wantConnect {
			t.Errorf("%s: ConnectAccount = %q, want %q", name, env.ConnectAccount, wantConnect)
		}
	}
}

func TestStreamFor(t *testing.T) {
	tests := []struct {
		env  Envelope
		want string
	}{
		{Envelope{Type: "financial_connections.account.created", ObjectID: "fca_1", ObjectType: "financial_connections.account"}, "fcaccount-fca_1"},
		{Envelope{Type: "financial_connections.account.upcoming_deactivation", ObjectID: "fca_2"}, "fcaccount-fca_2"},
		{Envelope{Type: "customer.created", ObjectID: "cus_123", ObjectType: "customer"}, "stripe-customer-cus_123"},
		{Envelope{Type: "financial_connections.session.updated", ObjectID: "fcsess_1", ObjectType: "financial_connections.session"}, "stripe-financial_connections_session-fcsess_1"},
		{Envelope{Type: "balance.available", ObjectType: "balance"}, "stripe-balance-unidentified"},
		{Envelope{Type: "x.y", ObjectID: "x_1"}, "stripe-unknown-x_1"},
	}
	for _, tt := range tests {
		if got := StreamFor(tt.env); got != tt.want {
			t.Errorf("StreamFor(%+v) = %q, want %q", tt.env, got, tt.want)
		}
	}
}

// FuzzParseEnvelope feeds arbitrary bodies to ParseEnvelope. Properties: it
// never panics; errors wrap ErrPayloadInvalid; it accepts exactly the bodies
// the encoding/json decoder it replaced accepts (parseEnvelopeOracle), with
// the same envelope; an accepted envelope has the fields ParseEnvelope
// promises and a stream name.
func FuzzParseEnvelope(f *testing.F) {
	for _, body := range allFixtures(f) {
		f.Add(body)
	}
	f.Add([]byte(customerCreated))
	f.Add([]byte(`{"id":"evt_1","object":"event","type":"balance.available","created":1,"data":{"object":{"object":"balance"}}}`))
	f.Add([]byte(`{"id":1}`))
	f.Add([]byte("\xff"))
	for _, body := range envelopeEdgeCases() {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := ParseEnvelope(body)
		want, wantErr := parseEnvelopeOracle(body)
		switch {
		case (err == nil) != (wantErr == nil):
			t.Fatalf("ParseEnvelope(%q) error = %v, encoding/json's = %v", body, err, wantErr)
		case err == nil && env != want:
			t.Fatalf("ParseEnvelope(%q) = %+v, encoding/json decodes %+v", body, env, want)
		}
		if err != nil {
			if !errors.Is(err, ErrPayloadInvalid) {
				t.Fatalf("error does not wrap ErrPayloadInvalid: %v", err)
			}
			return
		}
		if env.ID == "" || env.Type == "" || env.Object != "event" || env.Created <= 0 {
			t.Fatalf("accepted an incomplete envelope %+v", env)
		}
		stream := StreamFor(env)
		if strings.HasPrefix(env.Type, AccountEventPrefix) {
			if stream != "fcaccount-"+env.ObjectID || env.ObjectID == "" {
				t.Fatalf("FC event filed in %q", stream)
			}
		} else if !strings.HasPrefix(stream, "stripe-") || strings.HasSuffix(stream, "-") {
			t.Fatalf("event filed in %q", stream)
		}
	})
}

// envelopeEdgeCases are bodies where a hand-written JSON scanner could part
// ways with encoding/json: key case folding and escapes, repeated keys,
// nulls, wrong types, number forms, nesting depth, trailing data.
func envelopeEdgeCases() []string {
	const tail = `"object":"event","type":"t","created":1,"data":{"object":{"id":"x","object":"o"}}`
	deep := func(n int) string {
		return `{"id":"e",` + tail + `,"z":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`
	}
	return []string{
		`{"id":"evt_1",` + tail + `}`,
		`{"ID":"evt_1",` + tail + `}`,
		`{"\u0069d":"evt_1",` + tail + `}`,
		`{"Id":"evt_1","id":"evt_2",` + tail + `}`,
		`{"id":"evt_1","id":null,` + tail + `}`,
		`{"id":"evt_\u00e9\ud83d\ude00\ud800",` + tail + `}`,
		`{"id":"e","ſ":1,` + tail + `}`,
		`{"id":"e","api_verſion":"v","accounT":"acct",` + tail + `}`,
		`{"id":"e",` + tail + `,"type":null}`,
		`{"id":"e",` + tail + `,"created":null}`,
		`{"id":"e",` + tail + `,"created":1.0}`,
		`{"id":"e",` + tail + `,"created":1e3}`,
		`{"id":"e",` + tail + `,"created":-0}`,
		`{"id":"e",` + tail + `,"created":9223372036854775808}`,
		`{"id":"e",` + tail + `,"created":"1"}`,
		`{"id":"e",` + tail + `,"livemode":true,"livemode":null}`,
		`{"id":"e",` + tail + `,"livemode":"true"}`,
		`{"id":"e",` + tail + `,"data":{"other":1}}`,
		`{"id":"e",` + tail + `,"data":{"object":{"object":"p"}}}`,
		`{"id":"e",` + tail + `,"data":null,"data":{"object":{}}}`,
		`{"id":"e",` + tail + `,"data":{"object":null}}`,
		`{"id":"e",` + tail + `,"data":[]}`,
		`{"id":"e",` + tail + `,"data":{"object":[1]}}`,
		`{"id":"e",` + tail + `,"data":{"object":{"id":7}}}`,
		`{"id":"e",` + tail + `} `,
		`{"id":"e",` + tail + `} x`,
		`{"id":"e",` + tail + `,}`,
		`{"id":"e",` + tail + `,"x":[1,]}`,
		`{"id":"e",` + tail + `,"x":01}`,
		`{"id":"e",` + tail + `,"x":"\x"}`,
		`{"id":"e",` + tail + `,"x":"a` + "	" + `b"}`,
		`{"id":"e",` + tail + `,"x":-}`,
		`{"id":"e",` + tail + `,"x":1.}`,
		`{"id":"e",` + tail + `,"x":1e+}`,
		`{"id":"e",` + tail + `,"x":tru}`,
		"\t\n\r " + `{"id":"e",` + tail + `}`,
		`null`, `[]`, `"x"`, `1`, ``, `{`, `{"id"`, `{"id":`,
		deep(9998), deep(9999), deep(10000),
		`{"id":"e",` + tail + `,"type":{` + strings.Repeat(`"a":{`, 10000) + strings.Repeat("}", 10000) + `}`,
	}
}

// TestParseEnvelopeMatchesEncodingJSON runs the edge cases through both
// decoders (the fuzz target also does, but only under -fuzz or with its
// seed corpus).
func TestParseEnvelopeMatchesEncodingJSON(t *testing.T) {
	for _, body := range envelopeEdgeCases() {
		env, err := ParseEnvelope([]byte(body))
		want, wantErr := parseEnvelopeOracle([]byte(body))
		short := body
		if len(short) > 120 {
			short = short[:120] + "…"
		}
		if (err == nil) != (wantErr == nil) {
			t.Errorf("%q: error = %v, encoding/json's = %v", short, err, wantErr)
		} else if env != want {
			t.Errorf("%q: %+v, encoding/json decodes %+v", short, env, want)
		}
	}
}

// benchBody returns a fixture padded with an unknown field to about 3 KiB,
// the size of real FC webhook bodies.
func benchBody(b *testing.B) []byte {
	b.Helper()
	body := fixture(b, "07_account.disconnected.json")
	pad := `  "zz_padding": "` + string(bytes.Repeat([]byte("x"), 3*1024-len(body)-24)) + "\",\n"
	body = append([]byte("{\n"+pad), body[2:]...)
	if _, err := ParseEnvelope(body); err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkParseEnvelope compares the single-pass scanner with the
// encoding/json decoder it replaced (parseEnvelopeOracle) on a 3 KiB body.
func BenchmarkParseEnvelope(b *testing.B) {
	body := benchBody(b)
	for _, c := range []struct {
		name  string
		parse func([]byte) (Envelope, error)
	}{{"encoding_json", parseEnvelopeOracle}, {"scanner", ParseEnvelope}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.parse(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
