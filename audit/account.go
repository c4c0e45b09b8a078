package audit

import (
	"context"
	"encoding/hex"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/ingest"
)

// AccountVerification is the answer of GET /v1/accounts/{id}/verify.
type AccountVerification struct {
	Account string `json:"account"`
	Stream  string `json:"stream"`
	Events  int64  `json:"events"`
	Intact  bool   `json:"intact"`
	// FirstBroken is null when the stream is intact.
	FirstBroken  *BrokenEvent `json:"first_broken"`
	LastRevision uint64       `json:"last_revision"`
	// ChainHash is the stored chain value of the last revision.
	ChainHash string `json:"chain_hash"`
	// Signatures counts the webhooks whose stored Stripe-Signature was
	// re-checked with serve's webhook secrets, and those signed with a
	// secret serve no longer has.
	Signatures SignatureCounts `json:"signatures"`
}

// BrokenEvent names a stream's first broken event in API answers.
type BrokenEvent struct {
	ID       string  `json:"id"`
	Revision uint64  `json:"revision"`
	Problem  Problem `json:"problem"`
	Reason   string  `json:"reason"`
}

// AccountChecker checks account streams on demand (GET
// /v1/accounts/{id}/verify). It is safe for concurrent use.
type AccountChecker struct {
	r          StreamReader
	signatures *ingest.Verifier
}

// NewAccountChecker returns an AccountChecker reading through r. When
// signatures is not nil (serve passes the verifier holding its webhook
// secrets), every stored webhook's Stripe-Signature is re-checked against
// its stored body too, as `fcaudit verify --webhook-secret` does.
func NewAccountChecker(r StreamReader, signatures *ingest.Verifier) *AccountChecker {
	return &AccountChecker{r: r, signatures: signatures}
}

// VerifyAccount checks the chain (and signatures) of account id's stream.
// The error wraps store.ErrStreamNotFound when the account has no events.
func (c *AccountChecker) VerifyAccount(ctx context.Context, id string) (AccountVerification, error) {
	rep, err := VerifyStream(ctx, c.r, fc.AccountStream(id), VerifyOptions{Signatures: c.signatures})
	if err != nil {
		return AccountVerification{}, err
	}
	out := AccountVerification{Account: id, Stream: rep.Stream, Events: rep.Events, Intact: rep.FirstBroken == nil,
		LastRevision: rep.LastRevision, ChainHash: hex.EncodeToString(rep.ChainHash[:]), Signatures: rep.Signatures}
	if b := rep.FirstBroken; b != nil {
		out.FirstBroken = &BrokenEvent{ID: b.ID, Revision: b.Revision, Problem: b.Problem, Reason: b.Reason}
	}
	return out, nil
}
