package ingest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
)

// DefaultTolerance is Stripe's default signature tolerance (5 minutes), the
// value cmd uses when --tolerance is not given. NewVerifier does not apply it
// implicitly: unlike stripe-go, where a tolerance of 0 silently means 300 s,
// a zero or negative tolerance is an error here.
const DefaultTolerance = webhook.DefaultTolerance

// Verification is what a successful Verify learned about a request. It holds
// no secret.
type Verification struct {
	// SignedAt is the header's t value (Unix seconds).
	SignedAt int64
	// SecretFingerprint identifies the secret that matched: hex of the first
	// 8 bytes of SHA-256(secret). With several configured secrets (rotation)
	// it says which one the sender used.
	SecretFingerprint string
	// Header is the signed part of the Stripe-Signature header, in
	// Stripe's form: "t=<t>,v1=<the v1 value that matched>". Other v1
	// values, v0, unknown keys and spacing are not kept: they are not
	// covered by the signature, so a sender could make provenance carry
	// anything in them.
	Header string
}

// Verifier checks Stripe-Signature headers against one or more endpoint
// secrets. It is safe for concurrent use once built, SetSecrets included;
// set Now, if at all, before the first Verify.
type Verifier struct {
	// Now returns the current time; nil means time.Now. Tests replace it.
	Now func() time.Time

	// secrets is swapped whole by SetSecrets: a Verify sees the old set or
	// the new one, never a mix.
	secrets   atomic.Pointer[[]secret]
	tolerance time.Duration
}

type secret struct {
	value       string
	fingerprint string
}

// Fingerprint returns the hex of the first 8 bytes of SHA-256(s): enough to
// tell configured secrets apart in provenance and logs without revealing them.
func Fingerprint(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// NewVerifier returns a Verifier that accepts a signature made with any of
// secrets (all of them are tried, so a rotation can keep the old and the new
// secret configured) whose timestamp is within tolerance of now, in either
// direction. It fails when secrets is empty, a secret is empty, or tolerance
// is not positive.
func NewVerifier(secrets []string, tolerance time.Duration) (*Verifier, error) {
	if tolerance <= 0 {
		return nil, fmt.Errorf("new verifier: tolerance must be positive, got %s", tolerance)
	}
	v := &Verifier{tolerance: tolerance}
	if err := v.SetSecrets(secrets); err != nil {
		return nil, fmt.Errorf("new verifier: %w", err)
	}
	return v, nil
}

// SetSecrets replaces the accepted secrets (serve's reload of a rotated
// secret file): requests verified after it returns use the new set. It
// fails, keeping the old set, when secrets is empty or a secret is empty;
// its errors never hold a secret.
func (v *Verifier) SetSecrets(secrets []string) error {
	if len(secrets) == 0 {
		return errors.New("no webhook secret configured")
	}
	set := make([]secret, 0, len(secrets))
	seen := make(map[string]bool, len(secrets))
	for i, s := range secrets {
		if s == "" {
			return fmt.Errorf("webhook secret #%d is empty", i+1)
		}
		if seen[s] {
			continue // a repeated secret would only cost another HMAC
		}
		seen[s] = true
		set = append(set, secret{value: s, fingerprint: Fingerprint(s)})
	}
	v.secrets.Store(&set)
	return nil
}

// Tolerance returns the verifier's tolerance.
func (v *Verifier) Tolerance() time.Duration { return v.tolerance }

// Fingerprints returns the fingerprints of the configured secrets, in order.
func (v *Verifier) Fingerprints() []string {
	secrets := *v.secrets.Load()
	fps := make([]string, len(secrets))
	for i, s := range secrets {
		fps[i] = s.fingerprint
	}
	return fps
}

// maxSignatures bounds how many v1 values of one header are compared. Stripe
// sends one per active secret (two during a roll); the bound keeps a hostile
// header from making a request cost secrets×values comparisons.
const maxSignatures = 16

// signedHeader is a parsed Stripe-Signature header.
type signedHeader struct {
	timestamp int64
	hasTime   bool
	sigs      [][sha256.Size]byte
}

// parseHeader parses "t=<unix>,v1=<hex>[,v1=<hex>…][,v0=<hex>]" the way
// stripe-go's webhook package does, with two deliberate differences:
//
//   - spaces and tabs around a pair are ignored ("t=1, v1=…", as some Stripe
//     libraries and hand-written test requests produce); stripe-go treats
//     " v1" as an unknown key and then reports no signature, which would
//     turn a harmless formatting slip into a confusing rejection. The HMAC
//     still has to match, so this accepts nothing unauthenticated.
//   - a header without t is malformed (stripe-go signs with the zero time).
//
// Like stripe-go: a pair without exactly one '=' makes the header invalid,
// the last t wins, v1 values that are not hex are skipped (as are those not
// 32 bytes long, which can never equal an HMAC-SHA256), v0 and unknown keys
// are ignored.
func parseHeader(header string, sh *signedHeader) error {
	if header == "" {
		return fmt.Errorf("%w: missing Stripe-Signature header: %w", ErrSignatureInvalid, webhook.ErrNotSigned)
	}
	rest := header
	for {
		pair, tail, more := strings.Cut(rest, ",")
		pair = strings.Trim(pair, " \t")
		key, val, ok := strings.Cut(pair, "=")
		if !ok || strings.IndexByte(val, '=') >= 0 {
			return fmt.Errorf("%w: malformed Stripe-Signature header: element is not key=value: %w", ErrSignatureInvalid, webhook.ErrInvalidHeader)
		}
		switch key {
		case "t":
			t, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return fmt.Errorf("%w: malformed Stripe-Signature header: t is not a Unix time: %w", ErrSignatureInvalid, webhook.ErrInvalidHeader)
			}
			sh.timestamp, sh.hasTime = t, true
		case "v1":
			var sig [sha256.Size]byte
			if len(val) != hex.EncodedLen(sha256.Size) || len(sh.sigs) >= maxSignatures {
				break
			}
			if _, err := hex.Decode(sig[:], []byte(val)); err != nil {
				break
			}
			sh.sigs = append(sh.sigs, sig)
		}
		if !more {
			break
		}
		rest = tail
	}
	if !sh.hasTime {
		return fmt.Errorf("%w: malformed Stripe-Signature header: no t element: %w", ErrSignatureInvalid, webhook.ErrInvalidHeader)
	}
	if len(sh.sigs) == 0 {
		return fmt.Errorf("%w: Stripe-Signature header has no v1 signature: %w", ErrSignatureInvalid, webhook.ErrNoValidSignature)
	}
	return nil
}

// Verify authenticates payload (the raw body, byte for byte) against header.
//
// The signature is checked first, against every configured secret, so a
// request that is not authenticated always gets ErrSignatureInvalid and
// learns nothing about our clock. Only then is the timestamp checked, in
// both directions: |now − t| > tolerance is ErrTimestampOutsideTolerance.
// stripe-go only bounds the past; we also bound the future because a
// signature dated ahead would otherwise stay replayable for as long as it is
// ahead (a leaked request signed with a far-future t would be accepted for
// days), and because provenance's signed_at must be a believable time.
//
// The HMAC is stripe-go's own (webhook.ComputeSignature), compared in
// constant time with hmac.Equal against each v1 value; the header is parsed
// once rather than once per secret as webhook.ValidatePayload* would.
func (v *Verifier) Verify(payload []byte, header string) (Verification, error) {
	ver, err := v.Reverify(payload, header)
	if err != nil {
		return Verification{}, err
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	// Sub saturates instead of overflowing, so absurd t values compare as
	// far away rather than wrapping into the window.
	if d := now().Sub(time.Unix(ver.SignedAt, 0)); d > v.tolerance || d < -v.tolerance {
		dir := "old"
		if d < 0 {
			dir = "far in the future"
		}
		return Verification{}, fmt.Errorf("%w: signature timestamp %d is too %s (tolerance %s)", ErrTimestampOutsideTolerance, ver.SignedAt, dir, v.tolerance)
	}
	return ver, nil
}

// Reverify checks a stored event's signature as Verify does, without the
// timestamp window: an audit re-checks events signed long ago. It proves the
// payload is byte for byte what the holder of a configured secret signed at
// the header's t.
func (v *Verifier) Reverify(payload []byte, header string) (Verification, error) {
	var buf [2][sha256.Size]byte
	sh := signedHeader{sigs: buf[:0]}
	if err := parseHeader(header, &sh); err != nil {
		return Verification{}, err
	}
	signedAt := time.Unix(sh.timestamp, 0)
	secrets := *v.secrets.Load()
	for i := range secrets {
		s := &secrets[i]
		expected := webhook.ComputeSignature(signedAt, payload, s.value)
		for j := range sh.sigs {
			if hmac.Equal(expected, sh.sigs[j][:]) {
				return Verification{SignedAt: sh.timestamp, SecretFingerprint: s.fingerprint,
					Header: "t=" + strconv.FormatInt(sh.timestamp, 10) + ",v1=" + hex.EncodeToString(sh.sigs[j][:])}, nil
			}
		}
	}
	return Verification{}, fmt.Errorf("%w: no v1 signature matches a configured secret: %w", ErrSignatureInvalid, webhook.ErrNoValidSignature)
}
