package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"sync/atomic"
)

// TokenSet is the set of accepted /v1 bearer tokens. Set replaces it whole
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
