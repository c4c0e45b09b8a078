package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/fcaudit/fcaudit/internal/atomicfile"
	"github.com/fcaudit/fcaudit/store"
)

// CheckpointVersion is the version of the checkpoint file format.
const CheckpointVersion = 1

// ErrCheckpointTampered is returned by ReadCheckpoint when a checkpoint
// file's digest does not match its content.
var ErrCheckpointTampered = errors.New("checkpoint file altered: its digest does not match its content")

// Checkpoint is an auditor's record of every stream's last revision and
// chain value at one moment, plus a digest over all of them. Its JSON form
// is the checkpoint file (docs/audit.md).
type Checkpoint struct {
	Version int `json:"version"`
	// CreatedAt is when the checkpoint was taken (RFC 3339, UTC).
	CreatedAt string `json:"created_at"`
	// HeadPosition is the log position the checkpoint covers.
	HeadPosition store.Position `json:"head_position"`
	// Streams maps each stream to its last revision and chain value.
	Streams map[string]CheckpointStream `json:"streams"`
	// Digest is hex SHA-256 of the canonical text (see CanonicalText).
	Digest string `json:"digest"`
}

// CheckpointStream is one stream's entry in a Checkpoint.
type CheckpointStream struct {
	Revision  uint64 `json:"revision"`
	ChainHash string `json:"chain_hash"`
}

// NewCheckpoint builds the checkpoint of a verified log; the caller should
// only do so for an intact report.
func NewCheckpoint(rep *Report, now time.Time) *Checkpoint {
	cp := &Checkpoint{
		Version:      CheckpointVersion,
		CreatedAt:    now.UTC().Format(time.RFC3339Nano),
		HeadPosition: rep.Head,
		Streams:      make(map[string]CheckpointStream, len(rep.Heads)),
	}
	for name, h := range rep.Heads {
		cp.Streams[name] = CheckpointStream{Revision: h.Revision, ChainHash: hex.EncodeToString(h.ChainHash[:])}
	}
	cp.Digest = cp.ComputeDigest()
	return cp
}

// CanonicalText is what the digest covers, one line each:
//
//	fcaudit-checkpoint v<version>
//	created_at <created_at>
//	head_position <head_position>
//	stream <stream as a JSON string> <revision> <chain_hash>
//
// with one stream line per stream, sorted by stream name (bytewise), each
// line ending in "\n". The JSON string form keeps any stream name on one
// line; for the ASCII names fcaudit uses it is jq's @json too.
func (cp *Checkpoint) CanonicalText() []byte {
	names := make([]string, 0, len(cp.Streams))
	for name := range cp.Streams {
		names = append(names, name)
	}
	sort.Strings(names)
	var b bytes.Buffer
	fmt.Fprintf(&b, "fcaudit-checkpoint v%d\ncreated_at %s\nhead_position %d\n", cp.Version, cp.CreatedAt, cp.HeadPosition)
	for _, name := range names {
		s := cp.Streams[name]
		b.WriteString("stream ")
		b.Write(jsonString(name))
		b.WriteByte(' ')
		b.WriteString(strconv.FormatUint(s.Revision, 10))
		b.WriteByte(' ')
		b.WriteString(s.ChainHash)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// jsonString encodes s as a JSON string without HTML escaping.
func jsonString(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// ComputeDigest returns hex SHA-256 of CanonicalText.
func (cp *Checkpoint) ComputeDigest() string {
	sum := sha256.Sum256(cp.CanonicalText())
	return hex.EncodeToString(sum[:])
}

// MarshalCheckpoint returns the checkpoint file's content.
func MarshalCheckpoint(cp *Checkpoint) ([]byte, error) {
	b, err := json.MarshalIndent(cp, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// WriteCheckpoint writes cp to path atomically (atomicfile, mode 0600): a
// crash leaves no file or the whole file. policy says whether an existing
// file may be replaced (atomicfile.Force for --force); a target that is not
// a regular file is always refused.
func WriteCheckpoint(path string, cp *Checkpoint, policy atomicfile.Policy) error {
	b, err := MarshalCheckpoint(cp)
	if err != nil {
		return fmt.Errorf("write checkpoint %s: %w", path, err)
	}
	if err := atomicfile.WriteFile(path, b, atomicfile.FileMode, policy); err != nil {
		return fmt.Errorf("write checkpoint %s: %w", path, err)
	}
	return nil
}

// ReadCheckpoint reads and checks a checkpoint file: known version, well
// formed hashes, and a digest matching the content (ErrCheckpointTampered
// otherwise).
func ReadCheckpoint(path string) (*Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	var cp Checkpoint
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cp); err != nil {
		return nil, fmt.Errorf("read checkpoint %s: not a checkpoint file: %w", path, err)
	}
	if cp.Version != CheckpointVersion {
		return nil, fmt.Errorf("read checkpoint %s: version %d, want %d", path, cp.Version, CheckpointVersion)
	}
	for name, s := range cp.Streams {
		if _, err := parseHash(s.ChainHash); err != nil {
			return nil, fmt.Errorf("read checkpoint %s: stream %s: %w (%w)", path, name, err, ErrCheckpointTampered)
		}
	}
	if got := cp.ComputeDigest(); got != cp.Digest {
		return nil, fmt.Errorf("read checkpoint %s: %w (recorded %s, computed %s)", path, ErrCheckpointTampered, cp.Digest, got)
	}
	return &cp, nil
}
