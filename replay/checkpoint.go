package replay

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"

	"github.com/fcaudit/fcaudit/internal/atomicfile"
	"github.com/fcaudit/fcaudit/store"
)

// ErrCheckpointMismatch: the checkpoint file was written by a run with
// another selection or target.
var ErrCheckpointMismatch = errors.New("checkpoint belongs to a different selection or target")

const checkpointVersion = 1

// Checkpoint is the progress of a resumable run (the file's JSON).
type Checkpoint struct {
	Version int `json:"version"`
	// Key identifies selection and target; a checkpoint is only used by
	// a run with the same key.
	Key string `json:"key"`
	// Target is shown to humans (redacted URL).
	Target string `json:"target"`
	// Low is the low-water position: every selected event at or below it
	// has been delivered.
	Low store.Position `json:"low"`
	// LowCount is how many selected events lie at or below Low (they count
	// against --limit on resume).
	LowCount int `json:"low_count"`
	// Done lists delivered events above Low, ascending.
	Done []store.Position `json:"done"`
	// RunID is the run that wrote it last.
	RunID string `json:"run_id"`
}

// LoadCheckpoint reads path; a missing file is a fresh start (nil, nil).
func LoadCheckpoint(path string) (*Checkpoint, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	var cp Checkpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		return nil, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	if cp.Version != checkpointVersion {
		return nil, fmt.Errorf("read checkpoint %s: version %d, want %d", path, cp.Version, checkpointVersion)
	}
	return &cp, nil
}

// SaveCheckpoint replaces path atomically: a crash leaves the old or the new
// file, never a torn one. The file is the run's own state, rewritten by
// design (atomicfile.Replace), but a path that is not a regular file (a
// symlink, /dev/null) is refused, never replaced.
func SaveCheckpoint(path string, cp *Checkpoint) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("encode checkpoint: %w", err)
	}
	if err := atomicfile.WriteFile(path, append(b, '\n'), atomicfile.FileMode, atomicfile.Replace); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return nil
}

// tracker follows which selected events are done, in store order, and
// derives the checkpoint. Events enter in store order (dispatch) and leave
// in any order (completion).
type tracker struct {
	mu       sync.Mutex
	low      store.Position
	lowCount int
	// pending holds selected events above low in store order; ok marks
	// those delivered. The head is popped while it is ok.
	pending []trackItem
	head    int
	// prevDone: positions delivered by an earlier run (from the
	// checkpoint), skipped without sending.
	prevDone map[store.Position]bool
	// lastAdded is the position of the last event added.
	lastAdded store.Position
}

type trackItem struct {
	pos store.Position
	ok  bool
}

func newTracker(cp *Checkpoint, from store.Position) *tracker {
	t := &tracker{low: from}
	if cp != nil {
		t.low = max(cp.Low, from)
		t.lowCount = cp.LowCount
		t.prevDone = make(map[store.Position]bool, len(cp.Done))
		for _, p := range cp.Done {
			t.prevDone[p] = true
		}
	}
	return t
}

// add registers the next selected event and reports whether an earlier run
// delivered it already. It returns the event's slot for done.
func (t *tracker) add(pos store.Position) (slot int, already bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	already = t.prevDone[pos]
	t.lastAdded = pos
	t.pending = append(t.pending, trackItem{pos: pos})
	slot = t.head + len(t.pending) - 1
	if already {
		t.markLocked(slot)
	}
	return slot, already
}

// deliveredBefore reports whether an earlier run delivered the event at pos
// (recorded in the checkpoint the run started from).
func (t *tracker) deliveredBefore(pos store.Position) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.prevDone[pos]
}

// done marks the event in slot delivered.
func (t *tracker) done(slot int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.markLocked(slot)
}

func (t *tracker) markLocked(slot int) {
	t.pending[slot-t.head].ok = true
	n := 0
	for n < len(t.pending) && t.pending[n].ok {
		n++
	}
	if n == 0 {
		return
	}
	t.low = t.pending[n-1].pos
	t.lowCount += n
	t.head += n
	t.pending = t.pending[n:]
	if cap(t.pending) > 1024 && len(t.pending) < cap(t.pending)/4 {
		t.pending = slices.Clone(t.pending) // let the backing array shrink
	}
}

// snapshot returns the checkpoint of the progress so far.
func (t *tracker) snapshot() (low store.Position, lowCount int, done []store.Position) {
	t.mu.Lock()
	defer t.mu.Unlock()
	done = []store.Position{}
	for _, it := range t.pending {
		if it.ok {
			done = append(done, it.pos)
		}
	}
	// Events an earlier run delivered that this run has not reached yet
	// (it was interrupted or failed first) stay recorded.
	n := len(done)
	for p := range t.prevDone {
		if p > t.lastAdded && p > t.low {
			done = append(done, p)
		}
	}
	slices.Sort(done[n:])
	return t.low, t.lowCount, done
}
