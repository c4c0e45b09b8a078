package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/translog"
	"github.com/fcaudit/fcaudit/translog/checkpoint"
)

// LogReader is the part of the event log Verify reads; store.Store
// satisfies it. ReadAll must return events in store order.
type LogReader interface {
	ReadAll(ctx context.Context, opts store.ReadOptions) ([]store.RecordedEvent, error)
	Head(ctx context.Context) (store.Position, error)
}

// StreamReader is the part of the event log VerifyStream and the exports
// read; store.Store satisfies it.
type StreamReader interface {
	ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]store.RecordedEvent, error)
}

// Problem names what is wrong with a broken event.
type Problem string

// The problems Verify detects. Each damaged stream is reported once, at its
// first broken event in revision order.
const (
	// ProblemBodyHash: SHA-256 of the stored body differs from the stored
	// body_sha256 (the body was edited).
	ProblemBodyHash Problem = "body_hash_mismatch"
	// ProblemChainHash: the recomputed chain value differs from the stored
	// one (id, received_at or body_sha256 edited, the stored chain_hash
	// edited, or an earlier event replaced).
	ProblemChainHash Problem = "chain_hash_mismatch"
	// ProblemMissingRevision: revisions before this event are absent
	// (deleted rows).
	ProblemMissingRevision Problem = "missing_revisions"
	// ProblemOrder: the stream's revisions are not in store order, or a
	// revision occurs twice (rows moved or duplicated).
	ProblemOrder Problem = "out_of_order"
	// ProblemMetadata: a metadata column the chain does not cover (type,
	// created, livemode, api_version, connect_account, stream, source)
	// disagrees with the body it was derived from.
	ProblemMetadata Problem = "metadata_mismatch"
	// ProblemSignature: with VerifyOptions.Signatures, a webhook's stored
	// body no longer carries the Stripe signature stored in its provenance,
	// or the provenance's signed_at or secret disagree with the header:
	// body or provenance were altered, even if the chain was recomputed.
	ProblemSignature Problem = "signature_mismatch"
	// ProblemCheckpoint: the chain is internally consistent but its value at
	// the checkpoint's revision differs from the checkpoint (the prefix was
	// rewritten and re-chained).
	ProblemCheckpoint Problem = "checkpoint_mismatch"
	// ProblemTruncated: the stream no longer reaches the checkpoint's
	// revision (events at its end were deleted).
	ProblemTruncated Problem = "truncated"
	// ProblemStreamMissing: a stream named in the checkpoint has no events.
	ProblemStreamMissing Problem = "stream_missing"
)

// Break describes the first broken event of a damaged stream. For
// ProblemTruncated and ProblemStreamMissing, ID and Position are empty and
// Revision is the checkpoint's revision that no longer exists.
type Break struct {
	Stream   string         `json:"stream"`
	ID       string         `json:"id"`
	Revision uint64         `json:"revision"`
	Position store.Position `json:"position"`
	Problem  Problem        `json:"problem"`
	// Reason says, for a person, everything found wrong with the event.
	Reason string `json:"reason"`
}

func (b Break) String() string {
	id := b.ID
	if id == "" {
		id = "-"
	}
	return fmt.Sprintf("stream %s revision %d id %s: %s: %s", b.Stream, b.Revision, id, b.Problem, b.Reason)
}

// StreamHead is a stream's last revision and the chain value after it.
type StreamHead struct {
	Revision  uint64
	ChainHash [32]byte
}

// Progress is reported after every page Verify reads.
type Progress struct {
	// Position is the last position verified; Head the position Verify
	// stops at (the log's head when it started).
	Position, Head store.Position
	Events         int64
}

// VerifyOptions configure Verify and VerifyStream. The zero value checks
// everything.
type VerifyOptions struct {
	// PageSize is the number of events per read (default 5000). Each page
	// is its own short read, so Verify never holds one snapshot of a live
	// log for long.
	PageSize int
	// SkipMetadata skips re-deriving the metadata columns from each body
	// (see ProblemMetadata); hashes and chains are still checked.
	SkipMetadata bool
	// Against, when set, also proves that every stream of the checkpoint
	// still holds exactly its prefix (Verify only).
	Against *Checkpoint
	// Progress, when set, is called after every page (Verify only).
	Progress func(Progress)
	// Signatures, when set, holds the webhook secrets to re-check every
	// webhook's stored Stripe-Signature against its stored body (Verify
	// only). A chain is unkeyed — whoever can write the file can rewrite a
	// body and recompute the chain — but a signature only the secret's
	// holder (Stripe and the operator) can make. Events whose provenance
	// names a secret that is not given are counted as unchecked.
	Signatures *ingest.Verifier
	// Tree, when set, is the log's Merkle tree (Verify only): Verify
	// recomputes the tree from the events it reads and compares it with
	// the stored tree and with every checkpoint the log has published
	// (fork detection; see tree.go).
	Tree translog.Log
	// TreeCheckpoints are signed checkpoints an auditor kept (their
	// signatures already checked); each must be a prefix of the recomputed
	// tree (Verify only).
	TreeCheckpoints []checkpoint.Checkpoint
	// CheckpointKey, when set with Tree, is the verifier key every
	// published checkpoint's signature must check with.
	CheckpointKey string
}

// SignatureCounts tells how many webhooks Verify re-checked against their
// Stripe signature, and how many it could not for want of their secret.
type SignatureCounts struct {
	Checked   int64 `json:"checked"`
	Unchecked int64 `json:"unchecked"`
}

const defaultPageSize = 5000

// Report is the outcome of Verify.
type Report struct {
	// Head is the log position Verify covered: the head when it started.
	// Events appended later are left for the next run.
	Head store.Position
	// Events and Streams count what was read.
	Events  int64
	Streams int
	// Damaged holds the first broken event of every damaged stream, sorted
	// by stream name; empty when the log is intact.
	Damaged []Break
	// Heads holds every stream's last revision and chain value (the content
	// of a checkpoint).
	Heads map[string]StreamHead
	// CheckpointStreams is the number of checkpoint streams proven intact
	// (0 without VerifyOptions.Against).
	CheckpointStreams int
	// Signatures counts the signature re-checks (zero without
	// VerifyOptions.Signatures).
	Signatures SignatureCounts
	// Tree is the outcome of the Merkle tree checks (zero without
	// VerifyOptions.Tree or TreeCheckpoints).
	Tree TreeReport
}

// Intact reports whether no stream is damaged and the tree checks passed.
func (r *Report) Intact() bool { return len(r.Damaged) == 0 && len(r.Tree.Problems) == 0 }

// chain is the verification state of one stream.
type chain struct {
	next    uint64         // next expected revision
	lastPos store.Position // position of revision next-1
	hash    [32]byte       // chain value after revision next-1 (the seed before 0)
	events  int64
	broken  *Break

	// checkpoint expectation (hasCP) and whether it was met
	hasCP     bool
	cpRev     uint64
	cpHash    [32]byte
	cpMatched bool
}

func newChain(stream string) *chain { return &chain{hash: store.ChainSeed(stream)} }

// check verifies e as the stream's next event and advances the state. It
// returns the break when e is the stream's first broken event. sum is
// SHA-256 of e.Data.
func (c *chain) check(e *store.RecordedEvent, sum [32]byte, metadata bool, sig *signatureCheck) *Break {
	c.events++
	if c.broken != nil {
		return nil // only the first break of a stream is reported
	}
	var (
		problems []Problem
		reasons  []string
	)
	add := func(p Problem, format string, args ...any) {
		problems = append(problems, p)
		reasons = append(reasons, fmt.Sprintf(format, args...))
	}
	switch {
	case e.Revision > c.next:
		add(ProblemMissingRevision, "revisions %d to %d are missing before this event (deleted?)", c.next, e.Revision-1)
	case e.Revision < c.next:
		add(ProblemOrder, "revision %d appears after revision %d in store order (expected %d)", e.Revision, c.next-1, c.next)
	case c.next > 0 && e.Position <= c.lastPos:
		add(ProblemOrder, "position %d is not after revision %d's position %d", e.Position, c.next-1, c.lastPos)
	}
	if sum != e.BodySHA256 {
		add(ProblemBodyHash, "body SHA-256 is %s, stored body_sha256 is %s (body altered)", short(sum), short(e.BodySHA256))
	}
	want := store.ChainHash(c.hash, e.BodySHA256, e.ID, e.ReceivedAt)
	if want != e.ChainHash {
		add(ProblemChainHash, "stored chain_hash %s, recomputed %s (id, received_at, body_sha256, chain_hash or an earlier event altered)", short(e.ChainHash), short(want))
	}
	if metadata {
		if err := checkMetadata(e); err != nil {
			add(ProblemMetadata, "%v", err)
		}
	}
	if sig != nil {
		if reason := sig.check(e); reason != "" {
			add(ProblemSignature, "%s", reason)
		}
	}
	if len(problems) == 0 && c.hasCP && e.Revision == c.cpRev {
		if want == c.cpHash {
			c.cpMatched = true
		} else {
			add(ProblemCheckpoint, "chain value %s differs from the checkpoint's %s (history up to this revision was rewritten)", short(want), short(c.cpHash))
		}
	}
	if len(problems) > 0 {
		c.broken = &Break{Stream: e.Stream, ID: e.ID, Revision: e.Revision, Position: e.Position,
			Problem: problems[0], Reason: strings.Join(reasons, "; ")}
		return c.broken
	}
	c.next, c.lastPos, c.hash = e.Revision+1, e.Position, want
	return nil
}

// finish reports a checkpoint expectation that the stream never reached.
func (c *chain) finish(stream string) {
	if c.broken != nil || !c.hasCP || c.cpMatched {
		return
	}
	if c.events == 0 {
		c.broken = &Break{Stream: stream, Revision: c.cpRev, Problem: ProblemStreamMissing,
			Reason: fmt.Sprintf("the checkpoint has revision %d, the stream has no events", c.cpRev)}
		return
	}
	c.broken = &Break{Stream: stream, Revision: c.cpRev, Problem: ProblemTruncated,
		Reason: fmt.Sprintf("the checkpoint has revision %d, the stream ends at revision %d (events deleted)", c.cpRev, int64(c.next)-1)}
}

func short(h [32]byte) string { return hex.EncodeToString(h[:8]) }

// Verify reads the global log once, in store order, up to its head when
// Verify starts, and checks every stream: each body against its SHA-256,
// each chain value against store.ChainHash of the previous one, revisions
// gap-free and in store order, and (unless opts.SkipMetadata) the metadata
// columns against the body. With opts.Against it also proves the
// checkpoint's prefixes.
//
// Damage is reported in the Report, not as an error; the error is for a log
// that cannot be read (or ctx cancelled). Verify reads in pages, so it runs
// beside a process appending to the log.
func Verify(ctx context.Context, r LogReader, opts VerifyOptions) (*Report, error) {
	// Published checkpoints before the head: every one then covers a
	// prefix of what Verify reads.
	tree, err := newTreeCheck(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	head, err := r.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	streams := make(map[string]*chain, 1024)
	if cp := opts.Against; cp != nil {
		for name, s := range cp.Streams {
			c := newChain(name)
			c.hasCP, c.cpRev = true, s.Revision
			if c.cpHash, err = parseHash(s.ChainHash); err != nil {
				return nil, fmt.Errorf("verify: checkpoint stream %s: %w", name, err)
			}
			streams[name] = c
		}
	}
	rep := &Report{Head: head}
	var sig *signatureCheck
	if opts.Signatures != nil {
		sig = newSignatureCheck(opts.Signatures, &rep.Signatures)
	}
	var cur struct {
		name string
		c    *chain
	}
	err = readPages(ctx, r, head, opts.PageSize, func(page []store.RecordedEvent) {
		for i := range page {
			e := &page[i]
			if e.Stream != cur.name || cur.c == nil {
				c := streams[e.Stream]
				if c == nil {
					c = newChain(e.Stream)
					streams[e.Stream] = c
				}
				cur.name, cur.c = e.Stream, c
			}
			cur.c.check(e, sha256.Sum256(e.Data), !opts.SkipMetadata, sig)
			tree.add(e)
			rep.Events++
		}
		if opts.Progress != nil && len(page) > 0 {
			opts.Progress(Progress{Position: page[len(page)-1].Position, Head: head, Events: rep.Events})
		}
	})
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	rep.Heads = make(map[string]StreamHead, len(streams))
	for name, c := range streams {
		c.finish(name)
		if c.broken != nil {
			rep.Damaged = append(rep.Damaged, *c.broken)
		} else if c.hasCP {
			rep.CheckpointStreams++
		}
		if c.events > 0 {
			rep.Streams++
		}
		if c.next > 0 {
			rep.Heads[name] = StreamHead{Revision: c.next - 1, ChainHash: c.hash}
		}
	}
	sort.Slice(rep.Damaged, func(i, j int) bool { return rep.Damaged[i].Stream < rep.Damaged[j].Stream })
	if rep.Tree, err = tree.finish(ctx); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	return rep, nil
}

// readPages calls fn with every page of events at positions up to head,
// in store order. The next page is read while fn works on the current one,
// so reading (SQLite, I/O) and hashing overlap.
func readPages(ctx context.Context, r LogReader, head store.Position, pageSize int, fn func([]store.RecordedEvent)) error {
	if pageSize <= 0 {
		pageSize = defaultPageSize
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		page []store.RecordedEvent
		err  error
	}
	pages := make(chan result, 1)
	go func() {
		defer close(pages)
		var after store.Position
		for after < head {
			page, err := r.ReadAll(ctx, store.ReadOptions{After: after, Limit: pageSize})
			if err != nil {
				pages <- result{err: fmt.Errorf("read log after position %d: %w", after, err)}
				return
			}
			if len(page) == 0 {
				return
			}
			after = page[len(page)-1].Position
			n := len(page)
			for n > 0 && page[n-1].Position > head {
				n-- // appended after Verify started
			}
			select {
			case pages <- result{page: page[:n]}:
			case <-ctx.Done():
				return
			}
		}
	}()
	for res := range pages {
		if res.err != nil {
			return res.err
		}
		fn(res.page)
	}
	return ctx.Err()
}

// StreamReport is the outcome of VerifyStream.
type StreamReport struct {
	Stream string
	Events int64
	// FirstBroken is the stream's first broken event, nil when intact.
	FirstBroken *Break
	// Last is the last event read: its revision and stored chain value.
	LastRevision uint64
	ChainHash    [32]byte
	// Signatures counts the signature re-checks (zero without
	// VerifyOptions.Signatures).
	Signatures SignatureCounts
}

// streamPageSize is the number of events per ReadStream call.
const streamPageSize = 1000

// VerifyStream checks one stream, like Verify does for every stream. It
// returns an error wrapping store.ErrStreamNotFound when the stream has no
// events.
func VerifyStream(ctx context.Context, r StreamReader, stream string, opts VerifyOptions) (*StreamReport, error) {
	c := newChain(stream)
	rep := &StreamReport{Stream: stream}
	var sig *signatureCheck
	if opts.Signatures != nil {
		sig = newSignatureCheck(opts.Signatures, &rep.Signatures)
	}
	var from uint64
	for {
		page, err := r.ReadStream(ctx, stream, from, streamPageSize)
		if err != nil {
			return nil, fmt.Errorf("verify stream %s: %w", stream, err)
		}
		for i := range page {
			e := &page[i]
			if b := c.check(e, sha256.Sum256(e.Data), !opts.SkipMetadata, sig); b != nil {
				rep.FirstBroken = b
			}
			rep.Events++
			rep.LastRevision, rep.ChainHash = e.Revision, e.ChainHash
		}
		if len(page) < streamPageSize {
			return rep, nil
		}
		from = page[len(page)-1].Revision + 1
	}
}

// stripeSources are the sources whose bodies are Stripe events.
var stripeSources = map[string]bool{store.SourceWebhook: true, store.SourceBackfill: true, store.SourceImport: true}

// checkMetadata re-derives, from the body, the columns the chain does not
// cover and compares them with the stored ones, using the parser ingest uses (fc) so
// the rules cannot drift. fcaudit's own records (source fcaudit, streams
// fcaudit-*) are not Stripe events: only their placement is checked.
func checkMetadata(e *store.RecordedEvent) error {
	system := strings.HasPrefix(e.Stream, store.SystemStreamPrefix)
	switch {
	case system && e.Source != store.SourceFcaudit:
		return fmt.Errorf("source %q in fcaudit's own stream (want %q)", e.Source, store.SourceFcaudit)
	case system:
		return nil
	case !stripeSources[e.Source]:
		return fmt.Errorf("source %q is not a Stripe source (webhook, backfill, import)", e.Source)
	}
	// ParseStored, not ParseEnvelope: events stored before the identifier
	// shapes were enforced are not damaged for lacking them.
	env, err := fc.ParseStored(e.Data)
	if err != nil {
		return fmt.Errorf("the body does not parse as the stored Stripe event: %v", err)
	}
	var diffs []string
	diff := func(field string, stored, body any) {
		if stored != body {
			diffs = append(diffs, fmt.Sprintf("%s is %v, the body says %v", field, stored, body))
		}
	}
	diff("id", e.ID, env.ID)
	diff("type", e.Type, env.Type)
	diff("created", e.Created, env.Created)
	diff("livemode", e.Livemode, env.Livemode)
	diff("api_version", e.APIVersion, env.APIVersion)
	diff("connect_account", e.ConnectAccount, env.ConnectAccount)
	// Events of dotted object types stored before December 2026 are in the
	// stream the old naming gave them.
	if e.Stream != fc.LegacyStreamFor(env) {
		diff("stream", e.Stream, fc.StreamFor(env))
	}
	if len(diffs) > 0 {
		return errors.New(strings.Join(diffs, ", "))
	}
	return nil
}

func parseHash(s string) ([32]byte, error) {
	var h [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return h, fmt.Errorf("chain hash %q is not 64 hex digits", s)
	}
	copy(h[:], b)
	return h, nil
}
