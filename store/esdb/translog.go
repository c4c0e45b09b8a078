package esdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/fcaudit/fcaudit/internal/logkey"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/translog"
	"github.com/google/uuid"
)

// The verifiable log (package translog) over EventStoreDB. EventStoreDB has
// no transaction spanning streams, so the tree cannot be written with the
// appends it covers, as the embedded store does. Instead the tree trails
// the log:
//
//   - the leaves are exactly the events ReadAll returns (every fcaudit
//     event, fcaudit's own fcaudit-… records included, in $all commit
//     order), as the embedded store's leaves are every row of its events
//     table; claims, system events, foreign events and the tree's own
//     streams are not leaves;
//   - TreeStream holds the tree: event 0 names the log id, and each later
//     event extends the tree by the leaves at the next $all positions with
//     the new frontier, every tile it changed and the positions of the new
//     leaves (for LeafIndex). It is appended with the expected revision the
//     writer read, so when several replicas build at once exactly one
//     extension wins and the others re-read it (WrongExpectedVersion);
//   - CheckpointStream keeps the signed checkpoints, likewise appended with
//     an expected revision.
//
// Both streams start with "fcaudit_log-", outside the $all filter, so they
// are never leaves nor read as (foreign) fcaudit events.
//
// RunLogBuilder (serve) keeps the tree near the log's head. A read that
// needs leaves the tree lacks (TreeHead, a proof for a larger size, the
// leaf index of a new event) first extends the tree itself by at most
// Options.TreeSyncLeaves leaves, and answers translog.ErrNotBuilt (TreeHead,
// LeafIndex) or translog.ErrTreeSize (the rest) if that is not enough.
// Each adapter keeps the tree stream's contents in memory (read once, then
// followed), so proofs are answered without reading EventStoreDB.
const (
	// TreeStream is the stream of tree extensions.
	TreeStream = "fcaudit_log-tree"
	// CheckpointStream is the stream of signed checkpoints.
	CheckpointStream = "fcaudit_log-checkpoints"

	treeEventType       = "fcaudit.tree"
	checkpointEventType = "fcaudit.checkpoint"

	// treeChunk bounds the leaves of one tree event, keeping it far below
	// the node's append size limit.
	treeChunk = 1000
)

var _ translog.Log = (*Store)(nil)

// treeRecord is the data of a TreeStream event.
type treeRecord struct {
	V int `json:"v"`
	// LogID is set in event 0 only.
	LogID string `json:"log_id,omitempty"`
	// From and Size are the tree sizes before and after this extension.
	From uint64 `json:"from"`
	Size uint64 `json:"size"`
	// Frontier is translog.Tree.Frontier after the extension.
	Frontier []byte `json:"frontier,omitempty"`
	// Tiles are the full contents of every tile the extension changed.
	Tiles []tileRecord `json:"tiles,omitempty"`
	// Positions are the fcaudit positions of leaves From … Size-1.
	Positions []uint64 `json:"positions,omitempty"`
}

type tileRecord struct {
	Level  uint   `json:"l"`
	Index  uint64 `json:"i"`
	Hashes []byte `json:"h"`
}

// checkpointRecord is the data of a CheckpointStream event.
type checkpointRecord struct {
	V             int    `json:"v"`
	Size          uint64 `json:"size"`
	Root          []byte `json:"root"`
	Note          []byte `json:"note"`
	PublishedAtUS int64  `json:"published_at_us"`
}

// treeState is an adapter's copy of TreeStream; mu also serialises this
// adapter's extensions.
type treeState struct {
	mu        sync.Mutex
	rev       int64 // last TreeStream revision applied; -1: none
	logID     string
	size      uint64
	frontier  []byte
	tiles     map[translog.TileID][]byte
	positions []store.Position // positions[i]: leaf i's event

	cpMu    sync.Mutex
	cpRev   int64 // last CheckpointStream revision read; -1: none
	cpSizes map[uint64]bool
	latest  *translog.Checkpoint
}

func (t *treeState) init() {
	if t.tiles == nil {
		t.rev, t.cpRev = -1, -1
		t.tiles = map[translog.TileID][]byte{}
		t.cpSizes = map[uint64]bool{}
	}
}

func (t *treeState) lastPos() store.Position {
	if len(t.positions) == 0 {
		return 0
	}
	return t.positions[len(t.positions)-1]
}

// apply adds one TreeStream event to the state.
func (t *treeState) apply(rev uint64, rec *treeRecord) error {
	if rec.V != 1 {
		return fmt.Errorf("%w: %s@%d has version %d", translog.ErrCorrupt, TreeStream, rev, rec.V)
	}
	if rev == 0 {
		if rec.LogID == "" || rec.Size != 0 {
			return fmt.Errorf("%w: %s@0 does not name the log", translog.ErrCorrupt, TreeStream)
		}
		t.logID, t.rev = rec.LogID, 0
		return nil
	}
	if rec.From != t.size || rec.Size != rec.From+uint64(len(rec.Positions)) {
		return fmt.Errorf("%w: %s@%d extends tree size %d to %d with %d leaves, but the tree has %d", translog.ErrCorrupt,
			TreeStream, rev, rec.From, rec.Size, len(rec.Positions), t.size)
	}
	for _, p := range rec.Positions {
		if store.Position(p) <= t.lastPos() {
			return fmt.Errorf("%w: %s@%d: leaf position %d does not follow %d", translog.ErrCorrupt, TreeStream, rev, p, t.lastPos())
		}
		t.positions = append(t.positions, store.Position(p))
	}
	for _, tl := range rec.Tiles {
		t.tiles[translog.TileID{Level: tl.Level, Index: tl.Index}] = tl.Hashes
	}
	t.size, t.frontier, t.rev = rec.Size, rec.Frontier, int64(rev)
	return nil
}

func (t *treeState) readTile(id translog.TileID) ([]byte, error) {
	b, ok := t.tiles[id]
	if !ok {
		return nil, fmt.Errorf("%w: tile %d/%d is missing", translog.ErrCorrupt, id.Level, id.Index)
	}
	return b, nil
}

// refreshLocked applies the TreeStream events written since the last read,
// and writes event 0 (the log id) when the stream does not exist yet.
func (s *Store) refreshLocked(ctx context.Context) error {
	t := &s.tl
	t.init()
	for try := 0; ; try++ {
		recs, err := s.readFrom(ctx, TreeStream, uint64(t.rev+1))
		if err != nil {
			return fmt.Errorf("read the merkle tree: %w", err)
		}
		for _, r := range recs {
			var rec treeRecord
			if err := json.Unmarshal(r.Data, &rec); err != nil {
				return fmt.Errorf("%w: %s@%d: %v", translog.ErrCorrupt, TreeStream, r.EventNumber, err)
			}
			if err := t.apply(r.EventNumber, &rec); err != nil {
				return err
			}
		}
		if t.rev >= 0 || try > 0 {
			return nil
		}
		var id [16]byte
		_, _ = rand.Read(id[:])
		if err := s.appendTree(ctx, esdb.NoStream{}, &treeRecord{V: 1, LogID: hex.EncodeToString(id[:])}); err != nil &&
			!isCode(err, esdb.ErrorCodeWrongExpectedVersion) {
			return fmt.Errorf("create the merkle tree: %w", err)
		}
		// Read back the event 0 that won (ours or another replica's).
	}
}

func (s *Store) appendTree(ctx context.Context, exp esdb.ExpectedRevision, rec *treeRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = s.appendCall(ctx, "extend the merkle tree", TreeStream, exp,
		[]esdb.EventData{{EventID: uuid.New(), EventType: treeEventType, ContentType: esdb.ContentTypeJson, Data: data}})
	return err
}

// buildStepLocked extends the tree by the next events of the log (at most
// limit). more is false when the log has no event the tree lacks; a lost
// race re-reads the winner's extension and reports more.
func (s *Store) buildStepLocked(ctx context.Context, limit int) (more bool, err error) {
	t := &s.tl
	evs, err := s.ReadAll(ctx, store.ReadOptions{After: t.lastPos(), Limit: min(limit, treeChunk), WithoutData: true})
	if err != nil {
		return false, fmt.Errorf("read the log for the merkle tree: %w", err)
	}
	if len(evs) == 0 {
		return false, nil
	}
	tr := translog.NewTree()
	if t.size > 0 {
		if tr, err = translog.LoadTree(t.size, t.frontier, t.readTile); err != nil {
			return false, err
		}
	}
	rec := treeRecord{V: 1, From: t.size, Positions: make([]uint64, len(evs))}
	for i := range evs {
		h := translog.LeafHashOf(&evs[i])
		tr.Append(h[:])
		rec.Positions[i] = uint64(evs[i].Position)
	}
	rec.Size, rec.Frontier = tr.Size(), tr.Frontier()
	for _, tl := range tr.TakeDirty() {
		rec.Tiles = append(rec.Tiles, tileRecord{Level: tl.Level, Index: tl.Index, Hashes: tl.Hashes})
	}
	err = s.appendTree(ctx, esdb.Revision(uint64(t.rev)), &rec)
	if isCode(err, esdb.ErrorCodeWrongExpectedVersion) {
		return true, s.refreshLocked(ctx)
	}
	if err != nil {
		// The outcome may be unknown (a timeout after the write): forget
		// nothing, the next refresh reads whatever was stored.
		return false, err
	}
	return true, t.apply(uint64(t.rev+1), &rec)
}

// catchUpLocked extends the tree until it has wantSize leaves and covers
// the log up to wantPos, the log has nothing more, or budget leaves were
// added by this call; short reports the last case (the tree may still
// trail the log).
func (s *Store) catchUpLocked(ctx context.Context, wantSize uint64, wantPos store.Position, budget int) (short bool, err error) {
	if err := s.refreshLocked(ctx); err != nil {
		return false, err
	}
	t := &s.tl
	start := t.size
	for t.size < wantSize || t.lastPos() < wantPos {
		if t.size-start >= uint64(max(budget, 0)) {
			return true, nil
		}
		more, err := s.buildStepLocked(ctx, budget-int(t.size-start))
		if errors.Is(err, ErrAccessDenied) {
			// A read-only user (an auditor's verify or export) may not
			// extend the tree: it reads the tree serve built.
			return true, nil
		}
		if err != nil || !more {
			return false, err
		}
	}
	return false, nil
}

func (s *Store) syncLeaves() int {
	switch n := s.opts.TreeSyncLeaves; {
	case n < 0:
		return 0
	case n == 0:
		return 10000
	default:
		return n
	}
}

// RunLogBuilder extends the Merkle tree to the log's head every interval
// (default 1 s) until ctx ends or the store is closed; serve runs it. Any
// number of replicas may run it at once. Failures are logged and retried.
func (s *Store) RunLogBuilder(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTimer(0)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return store.ErrClosed
		case <-t.C:
		}
		err := s.BuildLog(ctx)
		switch {
		case err != nil && ctx.Err() == nil && s.checkOpen() == nil:
			if !failing {
				s.log.Warn("eventstoredb: extending the merkle tree failed; retrying", logkey.Err(err))
			}
			failing = true
		case err == nil && failing:
			s.log.Info("eventstoredb: the merkle tree is extended again")
			failing = false
		}
		t.Reset(interval)
	}
}

// BuildLog extends the Merkle tree to the log's current head, one
// extension at a time (other callers interleave).
func (s *Store) BuildLog(ctx context.Context) error {
	for {
		s.tl.mu.Lock()
		err := s.refreshLocked(ctx)
		more := false
		if err == nil {
			more, err = s.buildStepLocked(ctx, treeChunk)
		}
		s.tl.mu.Unlock()
		if err != nil || !more {
			return err
		}
	}
}

// LogID implements translog.Log: the id in TreeStream's event 0, written
// by the first adapter that needed it.
func (s *Store) LogID(ctx context.Context) (string, error) {
	s.tl.mu.Lock()
	defer s.tl.mu.Unlock()
	if err := s.refreshLocked(ctx); err != nil {
		return "", fmt.Errorf("log id: %w", err)
	}
	if s.tl.logID == "" {
		return "", fmt.Errorf("log id: %s was created but reads as empty; try again", TreeStream)
	}
	return s.tl.logID, nil
}

// TreeHead implements translog.Log: the tree covering the log up to its
// head as read at the call (extending it first if needed and within
// Options.TreeSyncLeaves), else translog.ErrNotBuilt.
func (s *Store) TreeHead(ctx context.Context) (translog.Head, error) {
	head, err := s.Head(ctx)
	if err != nil {
		return translog.Head{}, fmt.Errorf("tree head: %w", err)
	}
	s.tl.mu.Lock()
	defer s.tl.mu.Unlock()
	if _, err := s.catchUpLocked(ctx, 0, head, s.syncLeaves()); err != nil {
		return translog.Head{}, fmt.Errorf("tree head: %w", err)
	}
	t := &s.tl
	if t.lastPos() < head {
		// Events the tree lacks, unless all are foreign (never leaves).
		rest, err := s.ReadAll(ctx, store.ReadOptions{After: t.lastPos(), Limit: 1, WithoutData: true})
		if err != nil {
			return translog.Head{}, fmt.Errorf("tree head: %w", err)
		}
		if len(rest) > 0 && rest[0].Position <= head {
			return translog.Head{}, fmt.Errorf("tree head: %w (the tree covers %d events up to position %d; the builder in fcaudit serve extends it)",
				translog.ErrNotBuilt, t.size, t.lastPos())
		}
	}
	root, err := translog.RootFromFrontier(t.size, t.frontier)
	if err != nil {
		return translog.Head{}, fmt.Errorf("tree head: %w", err)
	}
	return translog.Head{Size: t.size, Root: root}, nil
}

// LeafIndex implements translog.Log: the index of e's position among the
// tree's leaves, extending the tree first when e is newer than it.
func (s *Store) LeafIndex(e *store.RecordedEvent) (uint64, error) {
	if e.Position == 0 {
		return 0, fmt.Errorf("event %s has no position", e.ID)
	}
	s.tl.mu.Lock()
	defer s.tl.mu.Unlock()
	t := &s.tl
	if t.lastPos() < e.Position {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
		defer cancel()
		if _, err := s.catchUpLocked(ctx, 0, e.Position, s.syncLeaves()); err != nil {
			return 0, fmt.Errorf("leaf index of %s: %w", e.ID, err)
		}
	}
	i, ok := slices.BinarySearch(t.positions, e.Position)
	switch {
	case ok:
		return uint64(i), nil
	case e.Position > t.lastPos():
		return 0, fmt.Errorf("leaf index of %s: %w (the tree covers the log up to position %d)", e.ID, translog.ErrNotBuilt, t.lastPos())
	default:
		return 0, fmt.Errorf("leaf index of %s: position %d is not a leaf of the tree", e.ID, e.Position)
	}
}

// withTree runs f on the tree, extended first (within
// Options.TreeSyncLeaves) to at least size leaves; ErrTreeSize when the
// log has fewer, also wrapping ErrNotBuilt when the tree may only trail
// the log (as the embedded store answers a tree that lags its log).
func (s *Store) withTree(ctx context.Context, size uint64, f func(read translog.ReadTileFunc) error) error {
	s.tl.mu.Lock()
	defer s.tl.mu.Unlock()
	short, err := s.catchUpLocked(ctx, size, 0, s.syncLeaves())
	if err != nil {
		return err
	}
	if size > s.tl.size {
		if short {
			return fmt.Errorf("%w: %w: %d (the tree has %d leaves so far; the builder in fcaudit serve extends it)",
				translog.ErrTreeSize, translog.ErrNotBuilt, size, s.tl.size)
		}
		return fmt.Errorf("%w: %d (the tree has %d leaves)", translog.ErrTreeSize, size, s.tl.size)
	}
	return f(s.tl.readTile)
}

// InclusionProof implements translog.Log.
func (s *Store) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("inclusion proof: %w: leaf %d in tree size %d", translog.ErrTreeSize, index, size)
	}
	var p [][]byte
	err := s.withTree(ctx, size, func(read translog.ReadTileFunc) (err error) {
		p, err = translog.InclusionProof(read, index, size)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("inclusion proof: %w", err)
	}
	return p, nil
}

// ConsistencyProof implements translog.Log.
func (s *Store) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	if from > to {
		return nil, fmt.Errorf("consistency proof: %w: from %d to %d", translog.ErrTreeSize, from, to)
	}
	var p [][]byte
	err := s.withTree(ctx, to, func(read translog.ReadTileFunc) (err error) {
		p, err = translog.ConsistencyProof(read, from, to)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("consistency proof: %w", err)
	}
	return p, nil
}

// RootAt implements translog.Log.
func (s *Store) RootAt(ctx context.Context, size uint64) ([]byte, error) {
	var root []byte
	err := s.withTree(ctx, size, func(read translog.ReadTileFunc) (err error) {
		root, err = translog.RootAt(read, size)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("root of tree size %d: %w", size, err)
	}
	return root, nil
}

// AddCheckpoint implements translog.Log: appended to CheckpointStream with
// the expected revision last read, so a size another replica kept in the
// meantime is seen and kept once.
func (s *Store) AddCheckpoint(ctx context.Context, cp translog.Checkpoint) error {
	root, err := s.RootAt(ctx, cp.Size)
	if err != nil {
		return fmt.Errorf("checkpoint of tree size %d: %w", cp.Size, err)
	}
	if string(root) != string(cp.Root) {
		return fmt.Errorf("%w: checkpoint root for tree size %d differs from the tree's", translog.ErrCorrupt, cp.Size)
	}
	if cp.PublishedAt.IsZero() {
		cp.PublishedAt = time.Now()
	}
	data, err := json.Marshal(checkpointRecord{V: 1, Size: cp.Size, Root: cp.Root, Note: cp.Note, PublishedAtUS: cp.PublishedAt.UnixMicro()})
	if err != nil {
		return err
	}
	t := &s.tl
	t.cpMu.Lock()
	defer t.cpMu.Unlock()
	for attempt := 0; ; attempt++ {
		if err := s.refreshCheckpointsLocked(ctx); err != nil {
			return err
		}
		if t.cpSizes[cp.Size] {
			return nil
		}
		var exp esdb.ExpectedRevision = esdb.NoStream{}
		if t.cpRev >= 0 {
			exp = esdb.Revision(uint64(t.cpRev))
		}
		_, err := s.appendCall(ctx, "add checkpoint", CheckpointStream, exp,
			[]esdb.EventData{{EventID: uuid.New(), EventType: checkpointEventType, ContentType: esdb.ContentTypeJson, Data: data}})
		if err == nil || !isCode(err, esdb.ErrorCodeWrongExpectedVersion) || attempt >= s.opts.MaxAppendAttempts {
			if err != nil {
				return fmt.Errorf("add checkpoint of tree size %d: %w", cp.Size, err)
			}
			return nil
		}
		if err := backoff(ctx, attempt); err != nil {
			return fmt.Errorf("add checkpoint of tree size %d: %w", cp.Size, err)
		}
	}
}

func decodeCheckpoint(r *esdb.RecordedEvent) (translog.Checkpoint, error) {
	var rec checkpointRecord
	if err := json.Unmarshal(r.Data, &rec); err != nil || rec.V != 1 {
		return translog.Checkpoint{}, fmt.Errorf("%w: %s@%d is not a checkpoint", translog.ErrCorrupt, CheckpointStream, r.EventNumber)
	}
	return translog.Checkpoint{Head: translog.Head{Size: rec.Size, Root: rec.Root}, Note: rec.Note,
		PublishedAt: time.UnixMicro(rec.PublishedAtUS).UTC()}, nil
}

// refreshCheckpointsLocked reads the checkpoints kept since the last read.
func (s *Store) refreshCheckpointsLocked(ctx context.Context) error {
	t := &s.tl
	if t.cpSizes == nil {
		t.cpRev, t.cpSizes = -1, map[uint64]bool{}
	}
	recs, err := s.readFrom(ctx, CheckpointStream, uint64(t.cpRev+1))
	if err != nil {
		return fmt.Errorf("read checkpoints: %w", err)
	}
	for _, r := range recs {
		cp, err := decodeCheckpoint(r)
		if err != nil {
			return err
		}
		if !t.cpSizes[cp.Size] {
			t.cpSizes[cp.Size] = true
			if t.latest == nil || cp.Size > t.latest.Size {
				t.latest = &cp
			}
		}
		t.cpRev = int64(r.EventNumber)
	}
	return nil
}

// Checkpoints implements translog.Log (it reads the whole CheckpointStream).
func (s *Store) Checkpoints(ctx context.Context) ([]translog.Checkpoint, error) {
	recs, err := s.readFrom(ctx, CheckpointStream, 0)
	if err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	seen := map[uint64]bool{}
	out := []translog.Checkpoint{}
	for _, r := range recs {
		cp, err := decodeCheckpoint(r)
		if err != nil {
			return nil, err
		}
		if !seen[cp.Size] {
			seen[cp.Size] = true
			out = append(out, cp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Size < out[j].Size })
	return out, nil
}

// LatestCheckpoint implements translog.Log.
func (s *Store) LatestCheckpoint(ctx context.Context) (translog.Checkpoint, error) {
	t := &s.tl
	t.cpMu.Lock()
	defer t.cpMu.Unlock()
	if err := s.refreshCheckpointsLocked(ctx); err != nil {
		return translog.Checkpoint{}, err
	}
	if t.latest == nil {
		return translog.Checkpoint{}, translog.ErrNoCheckpoint
	}
	return *t.latest, nil
}
