// Package tokenset holds the accepted API tokens of a running serve, shared
// by the /v1 API and the console, and replaced whole when the token file is
// re-read (SIGHUP).
package tokenset

import (
	"crypto/sha256"
	"crypto/subtle"
	"sync/atomic"
)

// TokenSet is the set of accepted API tokens (/v1 bearer tokens, console sign-in). Set replaces it whole
// while requests run (serve's reload of a rotated token file); a request
// is checked against the old set or the new one, never a mix. It holds only
// SHA-256 digests of the tokens.
type TokenSet struct {
	digests atomic.Pointer[[][sha256.Size]byte]
}

// NewTokenSet returns a set holding tokens (empty strings are ignored).
func NewTokenSet(tokens []string) *TokenSet {
	ts := &TokenSet{}
	ts.Set(tokens)
	return ts
}

// Set replaces the accepted tokens; empty strings are ignored.
func (ts *TokenSet) Set(tokens []string) {
	d := make([][sha256.Size]byte, 0, len(tokens))
	for _, t := range tokens {
		if t != "" {
			d = append(d, sha256.Sum256([]byte(t)))
		}
	}
	ts.digests.Store(&d)
}

// Len returns the number of accepted tokens.
func (ts *TokenSet) Len() int { return len(*ts.digests.Load()) }

// Match reports whether tok is one of the tokens. The comparison is
// constant-time over SHA-256 digests, against every token, so neither a
// token, its length nor its position leaks through timing.
func (ts *TokenSet) Match(tok string) bool {
	sum := sha256.Sum256([]byte(tok))
	ok := 0
	for _, d := range *ts.digests.Load() {
		ok |= subtle.ConstantTimeCompare(sum[:], d[:])
	}
	return ok == 1
}

// Fingerprint is the first 8 bytes of a token's SHA-256: what a console
// session records of the token it was signed in with.
type Fingerprint [8]byte

// FingerprintOf returns tok's fingerprint.
func FingerprintOf(tok string) Fingerprint {
	sum := sha256.Sum256([]byte(tok))
	var fp Fingerprint
	copy(fp[:], sum[:8])
	return fp
}

// Known reports whether a token with fingerprint fp is still in the set
// (a session signed in with a token rotated out ends), in constant time
// over the set.
func (ts *TokenSet) Known(fp Fingerprint) bool {
	ok := 0
	for _, d := range *ts.digests.Load() {
		ok |= subtle.ConstantTimeCompare(fp[:], d[:8])
	}
	return ok == 1
}
