package ingest

import (
	"bytes"
	"testing"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/stripe/stripe-go/v76/webhook"
)

// benchBody returns a fixture padded with an unknown field to about 3 KiB,
// the size of real FC webhook bodies.
func benchBody(b *testing.B) []byte {
	b.Helper()
	body := fixture(b, "07_account.disconnected.json")
	pad := `  "zz_padding": "` + string(bytes.Repeat([]byte("x"), 3*1024-len(body)-24)) + "\",\n"
	body = append([]byte("{\n"+pad), body[2:]...)
	if _, err := fc.ParseEnvelope(body); err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkVerifyParse measures ingest's per-request CPU work before the
// store: Verify (two secrets configured, the second matches) + ParseEnvelope.
func BenchmarkVerifyParse(b *testing.B) { benchVerifyParse(b, secretA, secretB) }

// BenchmarkVerifyParseOneSecret is BenchmarkVerifyParse with one secret.
func BenchmarkVerifyParseOneSecret(b *testing.B) { benchVerifyParse(b, secretB) }

// BenchmarkStripeGoConstructEvent is the baseline: stripe-go verifying and
// decoding the same body into stripe.Event, trying each secret in turn as a
// caller of its API must for rotation.
func BenchmarkStripeGoConstructEvent(b *testing.B) { benchConstructEvent(b, secretA, secretB) }

// BenchmarkStripeGoConstructEventOneSecret is the baseline with a single
// secret (the matching one): stripe-go's best case.
func BenchmarkStripeGoConstructEventOneSecret(b *testing.B) { benchConstructEvent(b, secretB) }

// benchVerifyParse verifies (with secrets configured) and parses a 3 KiB
// body signed with secretB.
func benchVerifyParse(b *testing.B, secrets ...string) {
	body := benchBody(b)
	v := newVerifier(b, secrets...)
	h := sign(body, secretB, testNow)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(body, h); err != nil {
			b.Fatal(err)
		}
		if _, err := fc.ParseEnvelope(body); err != nil {
			b.Fatal(err)
		}
	}
}

// benchConstructEvent runs stripe-go's ConstructEvent on the same body,
// trying secrets in turn until one matches.
func benchConstructEvent(b *testing.B, secrets ...string) {
	body := benchBody(b)
	h := sign(body, secretB, testNow)
	opts := webhook.ConstructEventOptions{IgnoreTolerance: true, IgnoreAPIVersionMismatch: true}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		for _, s := range secrets {
			if _, err = webhook.ConstructEventWithOptions(body, h, s, opts); err == nil {
				break
			}
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}
