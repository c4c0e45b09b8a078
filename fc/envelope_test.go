package fc

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
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
		{Envelope{Type: "financial_connections.session.updated", ObjectID: "fcsess_1", ObjectType: "financial_connections.session"}, "stripe-financial_connections.session-fcsess_1"},
		{Envelope{Type: "balance.available", ObjectType: "balance"}, "stripe-balance-unidentified"},
		{Envelope{Type: "x.y", ObjectID: "x_1"}, "stripe-unknown-x_1"},
	}
	for _, tt := range tests {
		if got := StreamFor(tt.env); got != tt.want {
			t.Errorf("StreamFor(%+v) = %q, want %q", tt.env, got, tt.want)
		}
	}
	// Streams written before December 2026 keep their names: dots of the object
	// type were replaced by '_'.
	legacy := Envelope{Type: "financial_connections.session.updated", ObjectID: "fcsess_1", ObjectType: "financial_connections.session"}
	if got := LegacyStreamFor(legacy); got != "stripe-financial_connections_session-fcsess_1" {
		t.Errorf("LegacyStreamFor = %q", got)
	}
	for _, tt := range tests[:3] {
		if LegacyStreamFor(tt.env) != StreamFor(tt.env) {
			t.Errorf("LegacyStreamFor(%+v) changed", tt.env)
		}
	}
}

// The identifier shapes, with a clear payload_invalid.
func TestIdentifierShapes(t *testing.T) {
	body := func(id, typ, objType, objID string) []byte {
		return []byte(`{"id":` + strconv.Quote(id) + `,"object":"event","type":` + strconv.Quote(typ) +
			`,"created":1,"data":{"object":{"id":` + strconv.Quote(objID) + `,"object":` + strconv.Quote(objType) + `}}}`)
	}
	const acct = "financial_connections.account.created"
	ok := []struct{ id, typ, objType, objID string }{
		{"evt_1OeXkQ2eZvKYlo2C", acct, "financial_connections.account", "fca_1OeXkQ2eZvKYlo2CqT7hN3aB"},
		{strings.Repeat("e", 255), "customer.created", "customer", strings.Repeat("c", 255)},
		{"evt_1", "coupon.created", "coupon", "SUMMER-25_off"},
		{"evt_2", "v1.billing.meter.error_report_triggered", "billing.meter", "mtr_1"},
	}
	for _, c := range ok {
		if _, err := ParseEnvelope(body(c.id, c.typ, c.objType, c.objID)); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	bad := []struct {
		id, typ, objType, objID string
		want                    string
	}{
		{strings.Repeat("e", 256), acct, "o", "fca_1", "event id"},
		{"evt/1", acct, "o", "fca_1", "event id"},
		{"evt 1", acct, "o", "fca_1", "event id"},
		{"evt_é", acct, "o", "fca_1", "event id"},
		{"..", acct, "o", "fca_1", "event id"},
		{"evt_1", acct, "o", "fca/1", "data.object.id"},
		{"evt_1", acct, "o", "fca_1?x", "data.object.id"},
		{"evt_1", acct, "o", "%2e%2e", "data.object.id"},
		{"evt_1", acct, "o", strings.Repeat("f", 256), "data.object.id"},
		{"evt_1", "customer.created", "customer", NoObjectID, "data.object.id"},
		{"evt_1", "customer.created", "a-b", "c", "data.object.object"},
		{"evt_1", "customer.created", NoObjectType, "c", "data.object.object"},
		{"evt_1", "customer.created", "Customer", "c", "data.object.object"},
		{"evt_1", "customer.created", strings.Repeat("o", 101), "c", "data.object.object"},
		{"evt_1", "a,b", "customer", "c", "event type"},
		{"evt_1", "financial_connections.account.*", "customer", "c", "event type"},
		{"evt_1", "a..b", "customer", "c", "event type"},
		{"evt_1", ".a", "customer", "c", "event type"},
	}
	for _, c := range bad {
		_, err := ParseEnvelope(body(c.id, c.typ, c.objType, c.objID))
		if !errors.Is(err, ErrPayloadInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q %q %q %q: %v, want payload_invalid about %s", c.id, c.typ, c.objType, c.objID, err, c.want)
		} else if len(err.Error()) > 300 {
			t.Errorf("error too long (%d bytes): %.100s", len(err.Error()), err)
		}
		if _, err := ParseStored(body(c.id, c.typ, c.objType, c.objID)); err != nil && len(c.id) <= MaxIDLength && len(c.objID) <= MaxIDLength {
			t.Errorf("ParseStored refuses a stored shape: %v", err)
		}
	}
}

// Stream names are injective over accepted envelopes.
// Today's collision (object a-b id c vs object a id b-c) cannot happen, nor
// can a.b vs a_b, nor a real id or type equal to a placeholder. Checked
// exhaustively over a small alphabet.
func TestStreamForInjective(t *testing.T) {
	var types, ids []string
	alpha := []string{"a", "b", "_", ".", "-"}
	var gen func(prefix string, n int, out *[]string)
	gen = func(prefix string, n int, out *[]string) {
		*out = append(*out, prefix)
		if n == 0 {
			return
		}
		for _, c := range alpha {
			gen(prefix+c, n-1, out)
		}
	}
	var all []string
	gen("", 4, &all)
	for _, s := range append(all, NoObjectID, NoObjectType) {
		if s == "" || ValidType(s, MaxObjectTypeLength) && s != NoObjectType {
			types = append(types, s)
		}
		if s == "" || ValidID(s) && s != NoObjectID {
			ids = append(ids, s)
		}
	}
	seen := map[string]string{}
	for _, typ := range types {
		for _, id := range ids {
			env := Envelope{Type: "x.updated", ObjectType: typ, ObjectID: id}
			key := typ + "|" + id
			name := StreamFor(env)
			if prev, dup := seen[name]; dup {
				t.Fatalf("%q and %q share stream %q", prev, key, name)
			}
			seen[name] = key
		}
	}
	if len(seen) < 1000 {
		t.Fatalf("only %d names checked", len(seen))
	}
	// Today's collision, for the record.
	a := Envelope{Type: "x.y", ObjectType: "a-b", ObjectID: "c"}
	b := Envelope{Type: "x.y", ObjectType: "a", ObjectID: "b-c"}
	if StreamFor(a) == StreamFor(b) && CheckShapes(a) == nil && CheckShapes(b) == nil {
		t.Fatalf("%q: two (object type, object id) pairs share a stream again", StreamFor(a))
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
		env, err := ParseStored(body)
		want, wantErr := parseEnvelopeOracle(body)
		// ParseEnvelope is ParseStored plus the identifier shapes.
		if strict, strictErr := ParseEnvelope(body); err == nil && CheckShapes(env) == nil {
			if strictErr != nil || strict != env {
				t.Fatalf("ParseEnvelope(%q) = %+v, %v; ParseStored accepts it with valid shapes", body, strict, strictErr)
			}
		} else if strictErr == nil || !errors.Is(strictErr, ErrPayloadInvalid) {
			t.Fatalf("ParseEnvelope(%q) = %+v, %v; want a payload_invalid error", body, strict, strictErr)
		}
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
		env, err := ParseStored([]byte(body))
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
