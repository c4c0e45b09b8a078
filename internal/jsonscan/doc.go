// Package jsonscan is a minimal, allocation-free JSON lexer for fcaudit's hot
// paths: the webhook envelope (fc.ParseEnvelope) and the account projection
// (projections) read a few fields of a Stripe event body in one pass and
// step over the rest, validating it as encoding/json would.
//
// A Scanner is a byte slice and a position. Its methods read one token or
// one whole value at the position and advance past it; the caller decides
// which fields it wants and how to decode them. Skip validates what it
// steps over with encoding/json's grammar and nesting limit (MaxDepth), so a
// caller that reaches the end of the input without an error has seen valid
// JSON. Strings are returned raw (escapes unprocessed) without allocating;
// Unescape decodes the rare escaped one through encoding/json itself, so
// surrogate pairs and the like come out exactly as json.Unmarshal gives
// them. Invalid UTF-8 is not checked here: it is not a JSON syntax error to
// encoding/json either (it decodes it to U+FFFD), and callers that must
// refuse it check the input (fc) or the strings they keep
// (projections) with unicode/utf8.
//
// Errors are *SyntaxError, with the byte offset where the input stopped
// making sense; they are allocated only on failure.
//
// jsonscan imports only the standard library.
package jsonscan
