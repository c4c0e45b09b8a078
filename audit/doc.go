// Package audit is fcaudit's evidence layer: it proves that the stored
// history is what was received and that nobody changed it since.
//
//   - Verify streams the global log once, recomputing every body's SHA-256
//     and every stream's hash chain (store.ChainHash), and reports the first
//     broken event of each damaged stream; VerifyStream checks one stream
//     (AccountChecker, which api serves as GET /v1/accounts/{id}/verify).
//   - Checkpoints (WriteCheckpoint, ReadCheckpoint, VerifyOptions.Against)
//     let an auditor who kept an earlier checkpoint outside the system prove
//     that every stream still holds exactly that prefix.
//   - With VerifyOptions.Tree, Verify also recomputes the log's Merkle tree
//     and compares it with the stored tree and every published or held
//     signed checkpoint (tree.go: fork detection); AddLogProofs adds each
//     exported event's inclusion proof to a bundle (logproof.go).
//   - Export and WriteBundle write an account's history for auditors (NDJSON,
//     CSV) and an evidence bundle with a chain proof and a manifest of SHA-256
//     sums.
//
// audit only reads the log, through the narrow Reader interfaces below; it
// never appends, updates or deletes. It imports store (vocabulary and the
// chain definition), record (the event JSON), fc (ParseEnvelope and
// StreamFor, to re-derive an event's metadata from its body exactly as ingest
// did), projections (the account_status fold, for status timelines),
// translog and translog/checkpoint (the tree, leaves and signed
// checkpoints); never a backend, nor api.
package audit
