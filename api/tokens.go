package api

import "github.com/fcaudit/fcaudit/internal/tokenset"

// TokenSet is the set of accepted /v1 bearer tokens (shared with the
// console; replaced whole on a token-file reload).
type TokenSet = tokenset.TokenSet

// NewTokenSet returns a set holding tokens (empty strings are ignored).
func NewTokenSet(tokens []string) *TokenSet { return tokenset.NewTokenSet(tokens) }
