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
