package ingest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
)

// normalizeHeader removes the blanks around elements that parseHeader
// tolerates and stripe-go does not.
func normalizeHeader(h string) string {
	parts := strings.Split(h, ",")
	for i, p := range parts {
		parts[i] = strings.Trim(p, " \t")
	}
	return strings.Join(parts, ",")
}

// FuzzVerify feeds arbitrary bodies and headers to Verify. Properties: it
// never panics; every error is one of ours; an accepted signature is one
// stripe-go accepts too; and a header stripe-go accepts is never reported as
// an invalid signature by us.
func FuzzVerify(f *testing.F) {
	ts := testNow.Add(-time.Minute)
	for _, body := range allFixtures(f) {
		f.Add(body, sign(body, secretA, ts))
		f.Add(body, "t=1705312740, v1="+v1(body, secretB, ts)+",v0=00")
		f.Add(body, "t=1705312740,v1="+v1(body, secretX, ts)+",v1="+v1(body, secretA, ts))
	}
	f.Add([]byte("{}"), "")
	f.Add([]byte("{}"), "t=,v1=")
	f.Add([]byte("{}"), "t=1=2,v1=ab")
	f.Add([]byte("{}"), ",,,")

	v := newVerifier(f, secretA, secretB)
	f.Fuzz(func(t *testing.T, body []byte, header string) {
		got, err := v.Verify(body, header)
		if err != nil {
			if !errors.Is(err, ErrSignatureInvalid) && !errors.Is(err, ErrTimestampOutsideTolerance) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			if errors.Is(err, ErrSignatureInvalid) {
				for _, s := range []string{secretA, secretB} {
					if webhook.ValidatePayloadIgnoringTolerance(body, header, s) == nil &&
						strings.Count(header, "v1=") <= maxSignatures {
						t.Fatalf("stripe-go accepts %q with a configured secret, we said %v", header, err)
					}
				}
			}
			return
		}
		var secret string
		switch got.SecretFingerprint {
		case Fingerprint(secretA):
			secret = secretA
		case Fingerprint(secretB):
			secret = secretB
		default:
			t.Fatalf("unknown fingerprint %q", got.SecretFingerprint)
		}
		if err := webhook.ValidatePayloadIgnoringTolerance(body, normalizeHeader(header), secret); err != nil {
			t.Fatalf("we accepted %q, stripe-go says %v", header, err)
		}
		if d := testNow.Sub(time.Unix(got.SignedAt, 0)); d > v.Tolerance() || d < -v.Tolerance() {
			t.Fatalf("accepted t=%d outside tolerance", got.SignedAt)
		}
	})
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
