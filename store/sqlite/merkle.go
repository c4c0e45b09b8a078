package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/translog"
)

// The verifiable log (package translog) over this backend:
//
//   - leaf i is the event at position i+1: positions are INTEGER PRIMARY
//     KEY rowids, assigned max+1 by the single writer and never deleted, so
//     they have no gaps and leaf index = position - 1;
//   - merkle_tree holds, at level -1 (idx 0), the tree size (8 bytes, big
//     endian) followed by the compact-range frontier, and at levels 0, 1, …
//     every TileHeight-th level of the tree in tiles of TileWidth hashes.
//     It is written in the transaction that inserts the events it covers,
//     so a crash leaves it and the log in agreement; one table lets one
//     multi-row upsert per group commit write the frontier and every
//     changed tile (each statement costs about as much as an event's
//     insert, and a group commit holds only a few events);
//   - log_checkpoints keeps every signed checkpoint published;
//   - meta 'log_id' names the log in checkpoints' origin line.
const merkleSchema = `
CREATE TABLE IF NOT EXISTS merkle_tree (
	level  INTEGER NOT NULL,
	idx    INTEGER NOT NULL,
	hashes BLOB    NOT NULL,
	PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log_checkpoints (
	tree_size    INTEGER PRIMARY KEY,
	root         BLOB    NOT NULL,
	note         BLOB    NOT NULL,
	published_at INTEGER NOT NULL
);
PRAGMA user_version = 3;
`

// buildChunk bounds the events one tree-building transaction covers, so a
// large existing log is indexed without holding the write lock for long.
const buildChunk = 20000

var _ translog.Log = (*Store)(nil)

// migrateMerkle adds the tree tables and the log id (inside migrate's
// transaction).
func migrateMerkle(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, merkleSchema); err != nil {
		return err
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return err
	}
	_, err := conn.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('log_id', ?) ON CONFLICT (key) DO NOTHING`, hex.EncodeToString(id[:]))
	return err
}

// leafRec is one inserted event's leaf, kept until the batch's tree update.
type leafRec struct {
	pos  store.Position
	hash [32]byte
}

// frontierLevel is the merkle_tree level of the frontier row.
const frontierLevel = -1

// encodeFrontier is the frontier row's value: size, then the hashes.
func encodeFrontier(t *translog.Tree) []byte {
	f := t.Frontier()
	b := make([]byte, 8, 8+len(f))
	binary.BigEndian.PutUint64(b, t.Size())
	return append(b, f...)
}

// readFrontier reads the tree size and frontier (size 0 when none yet).
func readFrontier(ctx context.Context, q queryer) (uint64, []byte, error) {
	var b []byte
	err := q.QueryRowContext(ctx, `SELECT hashes FROM merkle_tree WHERE level = -1 AND idx = 0`).Scan(&b)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil, nil
	case err != nil:
		return 0, nil, fmt.Errorf("read merkle frontier: %w", err)
	case len(b) < 8:
		return 0, nil, fmt.Errorf("%w: frontier row of %d bytes", translog.ErrCorrupt, len(b))
	}
	return binary.BigEndian.Uint64(b), b[8:], nil
}

// loadTree reads the tree state inside the writer's transaction.
func (w *writer) loadTree(ctx context.Context) (*translog.Tree, error) {
	size, frontier, err := readFrontier(ctx, w.conn)
	if err != nil {
		return nil, err
	}
	if size == 0 {
		return translog.NewTree(), nil
	}
	return translog.LoadTree(size, frontier, func(id translog.TileID) ([]byte, error) { return readTile(ctx, w.conn, id) })
}

type queryer interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func readTile(ctx context.Context, q queryer, id translog.TileID) ([]byte, error) {
	var b []byte
	err := q.QueryRowContext(ctx, `SELECT hashes FROM merkle_tree WHERE level = ? AND idx = ?`, id.Level, id.Index).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: tile %d/%d is missing", translog.ErrCorrupt, id.Level, id.Index)
	}
	if err != nil {
		return nil, fmt.Errorf("read tile %d/%d: %w", id.Level, id.Index, err)
	}
	return b, nil
}

// ensureTree returns the writer's tree, loading it in this transaction when
// unknown (first use, another connection wrote, or a failed transaction).
func (w *writer) ensureTree(ctx context.Context) (*translog.Tree, error) {
	if w.tree == nil {
		t, err := w.loadTree(ctx)
		if err != nil {
			return nil, err
		}
		w.tree = t
	}
	return w.tree, nil
}

// extendTree appends the leaves of the batch's successful requests (in
// position order) to the tree and writes the changed tiles and the
// frontier, inside the batch's transaction. Events in the log the tree does
// not cover yet (written by an fcaudit without the tree, or before the first
// build finished) are added first. On error the caller rolls back and the
// in-memory tree is dropped.
func (w *writer) extendTree(ctx context.Context, live []*request) error {
	var first store.Position
	for _, r := range live {
		if r.err == nil && len(r.leaves) > 0 {
			first = r.leaves[0].pos
			break
		}
	}
	if first == 0 {
		return nil
	}
	t, err := w.ensureTree(ctx)
	if err != nil {
		return err
	}
	if err := w.catchUp(ctx, t, uint64(first)-1); err != nil {
		return err
	}
	for _, r := range live {
		if r.err != nil {
			continue
		}
		for _, l := range r.leaves {
			if uint64(l.pos) != t.Size()+1 {
				return fmt.Errorf("%w: event at position %d would be leaf %d (the log and its tree disagree: was the log edited?)", translog.ErrCorrupt, l.pos, t.Size())
			}
			t.Append(l.hash[:])
		}
	}
	return w.saveTree(ctx, t)
}

// catchUp appends the events at positions t.Size()+1 … upTo, read from the
// file, to t. A tree larger than upTo means events it covers are gone.
func (w *writer) catchUp(ctx context.Context, t *translog.Tree, upTo uint64) error {
	if t.Size() > upTo {
		return fmt.Errorf("%w: the tree covers %d events but the log continues at position %d (events were removed?)", translog.ErrCorrupt, t.Size(), upTo+1)
	}
	for t.Size() < upTo {
		rows, err := w.conn.QueryContext(ctx, `SELECT `+metaCols+` FROM events WHERE position > ? AND position <= ? ORDER BY position LIMIT ?`,
			t.Size(), upTo, buildChunk)
		if err != nil {
			return fmt.Errorf("read events for the merkle tree: %w", err)
		}
		evs, err := collect(rows, false, 0)
		if err != nil {
			return fmt.Errorf("read events for the merkle tree: %w", err)
		}
		if len(evs) == 0 {
			return fmt.Errorf("%w: no event at position %d", translog.ErrCorrupt, t.Size()+1)
		}
		for i := range evs {
			if uint64(evs[i].Position) != t.Size()+1 {
				return fmt.Errorf("%w: position %d is missing from the log (an event was removed?)", translog.ErrCorrupt, t.Size()+1)
			}
			h := translog.LeafHashOf(&evs[i])
			t.Append(h[:])
		}
	}
	return nil
}

// saveTree writes the frontier and the changed tiles with one multi-row
// upsert.
func (w *writer) saveTree(ctx context.Context, t *translog.Tree) error {
	tiles := t.TakeDirty()
	args := make([]any, 0, 3*(len(tiles)+1))
	args = append(args, frontierLevel, 0, encodeFrontier(t))
	for _, tl := range tiles {
		args = append(args, tl.Level, tl.Index, tl.Hashes)
	}
	st, err := w.putTreeStmt(ctx, len(tiles)+1)
	if err != nil {
		return err
	}
	if _, err := st.ExecContext(ctx, args...); err != nil {
		return fmt.Errorf("write merkle tree (%d tiles): %w", len(tiles), err)
	}
	return nil
}

// putTreeStmt returns the prepared upsert of n merkle_tree rows.
func (w *writer) putTreeStmt(ctx context.Context, n int) (*sql.Stmt, error) {
	if st, ok := w.putTree[n]; ok {
		return st, nil
	}
	q := `INSERT INTO merkle_tree (level, idx, hashes) VALUES (?, ?, ?)` + strings.Repeat(`, (?, ?, ?)`, n-1) +
		` ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes`
	st, err := w.conn.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("prepare merkle tree upsert: %w", err)
	}
	if w.putTree == nil {
		w.putTree = map[int]*sql.Stmt{}
	}
	w.putTree[n] = st
	return st, nil
}

// buildTree brings the tree up to the log before the writer starts: a log
// created before the tree existed is indexed once, buildChunk events per
// transaction.
func (w *writer) buildTree() error {
	ctx := context.Background()
	logged := false
	for {
		done, size, err := w.buildStep(ctx)
		if err != nil {
			return fmt.Errorf("build merkle tree: %w", mapErr(nil, err))
		}
		if done {
			if logged {
				w.s.log.Info("merkle tree built", "leaves", size)
			}
			return nil
		}
		if !logged {
			w.s.log.Info("building the merkle tree over the existing log (once)")
			logged = true
		}
	}
}

func (w *writer) buildStep(ctx context.Context) (done bool, size uint64, err error) {
	if _, err := w.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return false, 0, err
	}
	defer func() {
		if err != nil {
			w.rollback()
			w.tree = nil
		}
	}()
	if err := w.checkCache(ctx); err != nil {
		return false, 0, err
	}
	t, err := w.ensureTree(ctx)
	if err != nil {
		return false, 0, err
	}
	var head sql.NullInt64
	if err := w.conn.QueryRowContext(ctx, `SELECT max(position) FROM events`).Scan(&head); err != nil {
		return false, 0, err
	}
	n := uint64(head.Int64)
	if t.Size() > n {
		return false, 0, fmt.Errorf("%w: the tree covers %d events but the log holds %d (events were removed?); run fcaudit verify", translog.ErrCorrupt, t.Size(), n)
	}
	done = t.Size()+buildChunk >= n
	upTo := min(n, t.Size()+buildChunk)
	if err := w.catchUp(ctx, t, upTo); err != nil {
		return false, 0, err
	}
	if err := w.saveTree(ctx, t); err != nil {
		return false, 0, err
	}
	if _, err := w.conn.ExecContext(ctx, "COMMIT"); err != nil {
		return false, 0, err
	}
	return done, t.Size(), nil
}

// addCheckpoint runs inside the writer's transaction (kindCheckpoint).
func (w *writer) addCheckpoint(ctx context.Context, cp *translog.Checkpoint) error {
	t, err := w.ensureTree(ctx)
	if err != nil {
		return err
	}
	if cp.Size > t.Size() {
		return fmt.Errorf("checkpoint of tree size %d: %w (the tree has %d leaves)", cp.Size, translog.ErrTreeSize, t.Size())
	}
	root, err := translog.RootAt(func(id translog.TileID) ([]byte, error) { return readTile(ctx, w.conn, id) }, cp.Size)
	if err != nil {
		return err
	}
	if string(root) != string(cp.Root) {
		return fmt.Errorf("%w: checkpoint root for tree size %d differs from the tree's", translog.ErrCorrupt, cp.Size)
	}
	_, err = w.conn.ExecContext(ctx, `INSERT INTO log_checkpoints (tree_size, root, note, published_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (tree_size) DO NOTHING`, cp.Size, cp.Root, cp.Note, cp.PublishedAt.UnixMicro())
	return err
}

// AddCheckpoint implements translog.Log; it joins the next group commit.
func (s *Store) AddCheckpoint(ctx context.Context, cp translog.Checkpoint) error {
	if s.opts.ReadOnly {
		return fmt.Errorf("add checkpoint: %w", store.ErrReadOnly)
	}
	if cp.PublishedAt.IsZero() {
		cp.PublishedAt = time.Now()
	}
	r := &request{ctx: ctx, kind: kindCheckpoint, checkpoint: &cp, done: make(chan struct{})}
	if err := s.submit(r); err != nil {
		return fmt.Errorf("add checkpoint of tree size %d: %w", cp.Size, err)
	}
	return nil
}

// treeErr maps a read of the tree tables: a file no read-write Open has
// upgraded yet has none.
func (s *Store) treeErr(ctx context.Context, err error) error {
	if err != nil && strings.Contains(err.Error(), "no such table") {
		return translog.ErrNotBuilt
	}
	return s.readErr(ctx, err)
}

// LogID implements translog.Log.
func (s *Store) LogID(ctx context.Context) (string, error) {
	var id string
	err := s.rdb.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'log_id'`).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("log id: %w", translog.ErrNotBuilt)
	}
	if err != nil {
		return "", fmt.Errorf("log id: %w", s.readErr(ctx, err))
	}
	return id, nil
}

// LeafIndex implements translog.Log: leaf index = position - 1.
func (s *Store) LeafIndex(e *store.RecordedEvent) (uint64, error) {
	if e.Position == 0 {
		return 0, fmt.Errorf("event %s has no position", e.ID)
	}
	return uint64(e.Position) - 1, nil
}

// withTree runs f in one read transaction with the tree's size (checked
// against the log) and a tile reader.
func (s *Store) withTree(ctx context.Context, f func(size uint64, frontier []byte, read translog.ReadTileFunc) error) error {
	if s.isClosed() {
		return store.ErrClosed
	}
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return s.readErr(ctx, err)
	}
	defer tx.Rollback()
	size, frontier, err := readFrontier(ctx, tx)
	if err != nil {
		return s.treeErr(ctx, err)
	}
	var head sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT max(position) FROM events`).Scan(&head); err != nil {
		return s.readErr(ctx, err)
	}
	switch n := uint64(head.Int64); {
	case size < n:
		return translog.ErrNotBuilt
	case size > n:
		return fmt.Errorf("%w: the tree covers %d events but the log holds %d (events were removed?)", translog.ErrCorrupt, size, n)
	}
	return f(size, frontier, func(id translog.TileID) ([]byte, error) { return readTile(ctx, tx, id) })
}

// TreeHead implements translog.Log.
func (s *Store) TreeHead(ctx context.Context) (translog.Head, error) {
	var h translog.Head
	err := s.withTree(ctx, func(size uint64, frontier []byte, _ translog.ReadTileFunc) error {
		root, err := translog.RootFromFrontier(size, frontier)
		h = translog.Head{Size: size, Root: root}
		return err
	})
	if err != nil {
		return h, fmt.Errorf("tree head: %w", err)
	}
	return h, nil
}

// InclusionProof implements translog.Log.
func (s *Store) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	var p [][]byte
	err := s.withTree(ctx, func(n uint64, _ []byte, read translog.ReadTileFunc) (err error) {
		if size > n || index >= size {
			return fmt.Errorf("%w: leaf %d in tree size %d (the tree has %d leaves)", translog.ErrTreeSize, index, size, n)
		}
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
	var p [][]byte
	err := s.withTree(ctx, func(n uint64, _ []byte, read translog.ReadTileFunc) (err error) {
		if to > n || from > to {
			return fmt.Errorf("%w: from %d to %d (the tree has %d leaves)", translog.ErrTreeSize, from, to, n)
		}
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
	err := s.withTree(ctx, func(n uint64, _ []byte, read translog.ReadTileFunc) (err error) {
		if size > n {
			return fmt.Errorf("%w: %d (the tree has %d leaves)", translog.ErrTreeSize, size, n)
		}
		root, err = translog.RootAt(read, size)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("root of tree size %d: %w", size, err)
	}
	return root, nil
}

// Checkpoints implements translog.Log.
func (s *Store) Checkpoints(ctx context.Context) ([]translog.Checkpoint, error) {
	return s.checkpoints(ctx, `SELECT tree_size, root, note, published_at FROM log_checkpoints ORDER BY tree_size`)
}

// LatestCheckpoint implements translog.Log.
func (s *Store) LatestCheckpoint(ctx context.Context) (translog.Checkpoint, error) {
	cps, err := s.checkpoints(ctx, `SELECT tree_size, root, note, published_at FROM log_checkpoints ORDER BY tree_size DESC LIMIT 1`)
	if err != nil {
		return translog.Checkpoint{}, err
	}
	if len(cps) == 0 {
		return translog.Checkpoint{}, translog.ErrNoCheckpoint
	}
	return cps[0], nil
}

func (s *Store) checkpoints(ctx context.Context, q string) ([]translog.Checkpoint, error) {
	if s.isClosed() {
		return nil, fmt.Errorf("checkpoints: %w", store.ErrClosed)
	}
	rows, err := s.rdb.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("checkpoints: %w", s.treeErr(ctx, err))
	}
	defer rows.Close()
	var out []translog.Checkpoint
	for rows.Next() {
		var (
			cp   translog.Checkpoint
			size int64
			at   int64
		)
		if err := rows.Scan(&size, &cp.Root, &cp.Note, &at); err != nil {
			return nil, fmt.Errorf("checkpoints: %w", s.readErr(ctx, err))
		}
		cp.Size, cp.PublishedAt = uint64(size), time.UnixMicro(at).UTC()
		out = append(out, cp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("checkpoints: %w", s.readErr(ctx, err))
	}
	return out, nil
}
