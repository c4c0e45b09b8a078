// Package checkpoint signs and checks fcaudit's log checkpoints: the
// transparency-dev checkpoint format (origin line, tree size, base64 root
// hash) signed as a note with golang.org/x/mod/sumdb/note (Ed25519), so
// that any tool that speaks that format can check them. It also keeps the
// signing key file and publishes checkpoints of a translog.Log.
//
// It imports the standard library, translog, internal helpers,
// golang.org/x/mod/sumdb/note and github.com/transparency-dev/merkle.
package checkpoint

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/fcaudit/fcaudit/internal/atomicfile"
	"github.com/fcaudit/fcaudit/internal/logkey"
	"github.com/fcaudit/fcaudit/translog"
)

// OriginPrefix starts the origin line of every fcaudit checkpoint; the log
// id follows.
const OriginPrefix = "fcaudit/"

// Origin returns the origin line of the log with the given id.
func Origin(logID string) string { return OriginPrefix + logID }

// ErrInvalid reports a checkpoint that is malformed, badly signed, or
// signed by a key other than the one given.
var ErrInvalid = errors.New("invalid checkpoint")

// ErrInconsistent reports two checkpoints of one log that no append-only
// history can connect: a fork or a rewrite.
var ErrInconsistent = errors.New("checkpoints are inconsistent: the log's history was rewritten")

// Body returns the unsigned checkpoint text.
func Body(origin string, h translog.Head) []byte {
	return fmt.Appendf(nil, "%s\n%d\n%s\n", origin, h.Size, base64.StdEncoding.EncodeToString(h.Root))
}

// Sign returns the signed checkpoint note of h.
func Sign(s note.Signer, origin string, h translog.Head) ([]byte, error) {
	b, err := note.Sign(&note.Note{Text: string(Body(origin, h))}, s)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	return b, nil
}

// Checkpoint is a parsed, signature-checked checkpoint.
type Checkpoint struct {
	Origin string
	translog.Head
	// Note is the signed note as given.
	Note []byte
}

// Parse parses a checkpoint body (without checking any signature).
func Parse(text string) (Checkpoint, error) {
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) < 4 {
		return Checkpoint{}, fmt.Errorf("%w: want origin, size and root hash lines", ErrInvalid)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || lines[1] != strconv.FormatUint(size, 10) {
		return Checkpoint{}, fmt.Errorf("%w: tree size %q", ErrInvalid, lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != translog.HashSize {
		return Checkpoint{}, fmt.Errorf("%w: root hash %q", ErrInvalid, lines[2])
	}
	if lines[0] == "" {
		return Checkpoint{}, fmt.Errorf("%w: empty origin", ErrInvalid)
	}
	return Checkpoint{Origin: lines[0], Head: translog.Head{Size: size, Root: root}}, nil
}

// Open checks msg's signature by verifierKey (note verifier format,
// name+hash+base64) and parses it.
func Open(msg []byte, verifierKey string) (Checkpoint, error) {
	v, err := note.NewVerifier(strings.TrimSpace(verifierKey))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("verifier key: %w", err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	cp, err := Parse(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	cp.Note = msg
	return cp, nil
}

// VerifyConsistency checks that newer extends older by proof (from the log,
// for older.Size → newer.Size). Both must name the same origin.
func VerifyConsistency(older, newer Checkpoint, p [][]byte) error {
	if older.Origin != newer.Origin {
		return fmt.Errorf("%w: checkpoints of different logs (%q, %q)", ErrInvalid, older.Origin, newer.Origin)
	}
	if older.Size > newer.Size {
		return fmt.Errorf("%w: the older checkpoint has the larger tree (%d > %d)", ErrInvalid, older.Size, newer.Size)
	}
	if older.Size == newer.Size && !bytes.Equal(older.Root, newer.Root) {
		return fmt.Errorf("%w: two roots for tree size %d", ErrInconsistent, older.Size)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, older.Size, newer.Size, p, older.Root, newer.Root); err != nil {
		return fmt.Errorf("%w: tree size %d → %d: %v", ErrInconsistent, older.Size, newer.Size, err)
	}
	return nil
}

// VerifyInclusion checks that leafData is leaf index of cp's tree.
func VerifyInclusion(cp Checkpoint, index uint64, leafData []byte, p [][]byte) error {
	h := translog.LeafHash(leafData)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, cp.Size, h[:], p, cp.Root); err != nil {
		return fmt.Errorf("leaf %d in tree size %d: %w", index, cp.Size, err)
	}
	return nil
}

// DefaultKeyFile is the signing key's file name in the data directory.
const DefaultKeyFile = "log-signing.key"

// Key is a checkpoint signing key and its verifier key.
type Key struct {
	Signer note.Signer
	// VerifierKey is the note verifier key (name+hash+base64) to hand to
	// auditors.
	VerifierKey string
}

// LoadOrCreateKey reads the signing key (note signer format,
// PRIVATE+KEY+name+hash+base64) from path, or, when create is set and the
// file does not exist, generates an Ed25519 key named name and writes it
// there (0600, never overwriting).
func LoadOrCreateKey(path, name string, create bool) (Key, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		skey, _, gerr := note.GenerateKey(rand.Reader, name)
		if gerr != nil {
			return Key{}, fmt.Errorf("generate checkpoint signing key: %w", gerr)
		}
		if err := writeNew(path, []byte(skey+"\n")); err != nil {
			if !errors.Is(err, os.ErrExist) {
				return Key{}, fmt.Errorf("write checkpoint signing key: %w", err)
			}
			// Another process created it first: use theirs.
		}
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return Key{}, fmt.Errorf("read checkpoint signing key: %w", err)
	}
	return ParseKey(strings.TrimSpace(string(b)))
}

// writeNew creates path with b, never replacing an existing file
// (fs.ErrExist). The file appears whole or not at all: a process that loses
// the race to create it reads the winner's complete key.
func writeNew(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), atomicfile.DirMode); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, atomicfile.FileMode, atomicfile.NoClobber)
}

// ParseKey parses a note signer key and derives its verifier key. Errors
// never quote the key.
func ParseKey(skey string) (Key, error) {
	s, err := note.NewSigner(skey)
	if err != nil {
		return Key{}, errors.New("checkpoint signing key: not a note signer key (PRIVATE+KEY+name+hash+base64)")
	}
	// PRIVATE+KEY+name+hash+key: names hold no '+', base64 may.
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return Key{}, errors.New("checkpoint signing key: not a note signer key (PRIVATE+KEY+name+hash+base64)")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return Key{}, errors.New("checkpoint signing key: not an Ed25519 note key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(s.Name(), pub)
	if err != nil {
		return Key{}, fmt.Errorf("checkpoint verifier key: %w", err)
	}
	return Key{Signer: s, VerifierKey: vkey}, nil
}

// Publisher signs the log's tree head and keeps it in the log as a
// checkpoint, whenever the tree has grown since the last one.
type Publisher struct {
	Log    translog.Log
	Key    Key
	Origin string
	// Interval is the least time between two checkpoints (Run).
	Interval time.Duration
	Logger   *slog.Logger
}

// PublishOnce publishes a checkpoint of the current tree unless the latest
// kept one already covers it; it returns the latest checkpoint and whether
// it is new.
func (p *Publisher) PublishOnce(ctx context.Context) (translog.Checkpoint, bool, error) {
	head, err := p.Log.TreeHead(ctx)
	if err != nil {
		return translog.Checkpoint{}, false, fmt.Errorf("publish checkpoint: %w", err)
	}
	latest, err := p.Log.LatestCheckpoint(ctx)
	switch {
	case err == nil && latest.Size >= head.Size:
		return latest, false, nil
	case err != nil && !errors.Is(err, translog.ErrNoCheckpoint):
		return translog.Checkpoint{}, false, fmt.Errorf("publish checkpoint: %w", err)
	}
	msg, err := Sign(p.Key.Signer, p.Origin, head)
	if err != nil {
		return translog.Checkpoint{}, false, err
	}
	cp := translog.Checkpoint{Head: head, Note: msg, PublishedAt: time.Now().UTC()}
	if err := p.Log.AddCheckpoint(ctx, cp); err != nil {
		return translog.Checkpoint{}, false, fmt.Errorf("publish checkpoint: %w", err)
	}
	return cp, true, nil
}

// Run publishes every Interval until ctx ends, then once more (so a clean
// shutdown leaves a checkpoint of everything acknowledged) and returns.
func (p *Publisher) Run(ctx context.Context) {
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	publish := func(ctx context.Context) {
		cp, fresh, err := p.PublishOnce(ctx)
		switch {
		case err != nil:
			log.Error("checkpoint", logkey.Err(err))
		case fresh:
			log.Debug("checkpoint published", "tree_size", cp.Size)
		}
	}
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			publish(ctx)
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			publish(final)
			cancel()
			return
		}
	}
}
