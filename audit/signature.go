package audit

import (
	"fmt"

	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/store"
)

// signatureCheck re-checks webhooks' stored signatures (VerifyOptions.Signatures).
type signatureCheck struct {
	v      *ingest.Verifier
	known  map[string]bool // fingerprints of the given secrets
	counts *SignatureCounts
}

func newSignatureCheck(v *ingest.Verifier, counts *SignatureCounts) *signatureCheck {
	known := make(map[string]bool)
	for _, fp := range v.Fingerprints() {
		known[fp] = true
	}
	return &signatureCheck{v: v, known: known, counts: counts}
}

// check returns why e's signature does not hold, "" when it does or cannot
// be checked: e is not a webhook with a stored header (backfilled, imported,
// fcaudit's own events), or its secret was not given.
func (c *signatureCheck) check(e *store.RecordedEvent) string {
	p := e.Provenance
	if e.Source != store.SourceWebhook || p == nil || p.SignatureHeader == "" {
		return ""
	}
	if !c.known[p.SecretFingerprint] {
		c.counts.Unchecked++
		return ""
	}
	c.counts.Checked++
	ver, err := c.v.Reverify(e.Data, p.SignatureHeader)
	if err != nil {
		return fmt.Sprintf("the stored body does not carry the stored Stripe-Signature for secret %s (%v): body or signature header altered", p.SecretFingerprint, err)
	}
	if ver.SignedAt != p.SignedAt || ver.SecretFingerprint != p.SecretFingerprint {
		return fmt.Sprintf("provenance says signed at %d with secret %s, the header verifies as signed at %d with secret %s: provenance altered",
			p.SignedAt, p.SecretFingerprint, ver.SignedAt, ver.SecretFingerprint)
	}
	return ""
}
