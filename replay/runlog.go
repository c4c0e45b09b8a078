package replay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"time"

	"github.com/fcaudit/fcaudit/store"
)

// RunsStream is the stream of the audit log of replay runs.
const RunsStream = store.SystemStreamPrefix + "replays"

// RunEventType is the type of a run's audit event.
const RunEventType = "fcaudit.replay.completed"

// Run statuses.
const (
	StatusSucceeded   = "succeeded"   // everything selected was delivered
	StatusFailed      = "failed"      // some events failed or were skipped
	StatusInterrupted = "interrupted" // cancelled (Ctrl-C) before the end
	StatusError       = "error"       // the run itself broke (store, checkpoint, output)
)

// maxRecordedIDs bounds the failed ids kept in one audit record.
const maxRecordedIDs = 1000

// Target describes where a run sent events.
type Target struct {
	// Kind is "http", "ndjson" or "projection".
	Kind string `json:"kind"`
	// URL is the receiver without credentials (RedactURL), for "http".
	URL string `json:"url,omitempty"`
	// Projection is the read model's name, for "projection".
	Projection string `json:"projection,omitempty"`
}

// String is the target as a key and label.
func (t Target) String() string {
	switch t.Kind {
	case "http":
		return t.URL
	case "projection":
		return "projection " + t.Projection
	default:
		return "-"
	}
}

// RunSettings are the delivery settings a run used.
type RunSettings struct {
	Concurrency int     `json:"concurrency,omitempty"`
	Rate        float64 `json:"rate,omitempty"`
	MaxRetries  int     `json:"max_retries,omitempty"`
	Timeout     string  `json:"timeout,omitempty"`
	Checkpoint  string  `json:"checkpoint,omitempty"`
}

// RunRecord is the audit record of one replay run: the Data of its event in
// RunsStream and an item of GET /v1/replays.
type RunRecord struct {
	ID         string      `json:"id"`
	Object     string      `json:"object"`
	User       string      `json:"user"`
	Host       string      `json:"host"`
	StartedAt  time.Time   `json:"started_at"`
	FinishedAt time.Time   `json:"finished_at"`
	Selection  Selection   `json:"selection"`
	Target     Target      `json:"target"`
	Settings   RunSettings `json:"settings"`
	Counts     Result      `json:"counts"`
	// FailedIDs lists failed events (at most 1000; FailedTruncated says
	// when there were more).
	FailedIDs       []string `json:"failed_ids"`
	FailedTruncated bool     `json:"failed_truncated,omitempty"`
	Status          string   `json:"status"`
	ExitCode        int      `json:"exit_code"`
	Error           string   `json:"error,omitempty"`
}

// NewRunID returns a fresh run id, "replay_" and 24 hex digits.
func NewRunID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "replay_" + hex.EncodeToString(b[:])
}

// CurrentUser names who started the run: the OS user, else $USER.
func CurrentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

// SetFailures fills FailedIDs from res.
func (rec *RunRecord) SetFailures(res Result) {
	rec.FailedIDs = []string{}
	for i, f := range res.Failures {
		if i == maxRecordedIDs {
			rec.FailedTruncated = true
			break
		}
		rec.FailedIDs = append(rec.FailedIDs, f.ID)
	}
}

// Appender is the part of the log the audit record is written through.
type Appender interface {
	Append(ctx context.Context, stream string, expected store.ExpectedRevision, events ...store.Event) ([]store.Appended, error)
}

// AppendRun appends rec to RunsStream (source fcaudit).
func AppendRun(ctx context.Context, a Appender, rec RunRecord) error {
	rec.Object = "replay_run"
	if rec.FailedIDs == nil {
		rec.FailedIDs = []string{}
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode replay run %s: %w", rec.ID, err)
	}
	_, err = a.Append(ctx, RunsStream, store.AnyRevision, store.Event{
		ID:         rec.ID,
		Type:       RunEventType,
		Data:       data,
		Created:    rec.StartedAt.Unix(),
		ReceivedAt: time.Now().UTC().Truncate(time.Microsecond),
		Source:     store.SourceFcaudit,
	})
	if err != nil {
		return fmt.Errorf("record replay run %s: %w", rec.ID, err)
	}
	return nil
}

// RunReader is the part of the log RunLog reads.
type RunReader interface {
	ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]store.RecordedEvent, error)
	EventByID(ctx context.Context, id string) (store.RecordedEvent, error)
}

// ErrRunNotFound: no recorded replay run has that id.
var ErrRunNotFound = errors.New("no such replay run")

// RunLog reads the recorded replay runs (GET /v1/replays).
type RunLog struct{ r RunReader }

// NewRunLog returns a RunLog reading RunsStream through r.
func NewRunLog(r RunReader) *RunLog { return &RunLog{r: r} }

// RunListOptions page through the recorded runs.
type RunListOptions struct {
	// StartingAfter: only runs recorded after the run with this id.
	StartingAfter string
	// Limit caps the result (<= 0: 10).
	Limit int
}

// List returns recorded runs oldest first, each as its stored JSON (a
// RunRecord, byte for byte as recorded), and whether more follow. An
// unknown StartingAfter is ErrRunNotFound.
func (l *RunLog) List(ctx context.Context, o RunListOptions) ([]json.RawMessage, bool, error) {
	if o.Limit <= 0 {
		o.Limit = 10
	}
	var from uint64
	if o.StartingAfter != "" {
		ev, err := l.run(ctx, o.StartingAfter)
		if err != nil {
			return nil, false, err
		}
		from = ev.Revision + 1
	}
	evs, err := l.r.ReadStream(ctx, RunsStream, from, o.Limit+1)
	if err != nil && !errors.Is(err, store.ErrStreamNotFound) {
		return nil, false, fmt.Errorf("list replay runs: %w", err)
	}
	hasMore := len(evs) > o.Limit
	if hasMore {
		evs = evs[:o.Limit]
	}
	out := make([]json.RawMessage, 0, len(evs))
	for i := range evs {
		out = append(out, json.RawMessage(evs[i].Data))
	}
	return out, hasMore, nil
}

// Get returns the stored JSON of the run id (ErrRunNotFound when no run
// has that id).
func (l *RunLog) Get(ctx context.Context, id string) (json.RawMessage, error) {
	ev, err := l.run(ctx, id)
	if err != nil {
		return nil, err
	}
	return json.RawMessage(ev.Data), nil
}

// run finds the event of run id; an event of another stream is no run.
func (l *RunLog) run(ctx context.Context, id string) (store.RecordedEvent, error) {
	ev, err := l.r.EventByID(ctx, id)
	if errors.Is(err, store.ErrEventNotFound) || (err == nil && ev.Stream != RunsStream) {
		return ev, fmt.Errorf("replay run %q: %w", id, ErrRunNotFound)
	}
	if err != nil {
		return ev, fmt.Errorf("replay run %q: %w", id, err)
	}
	return ev, nil
}
