package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/fcaudit/fcaudit/store"
)

// ErrRunNotFound: no replay run has that id.
var ErrRunNotFound = errors.New("no such replay run")

// ListRuns returns up to limit replay runs of the audit log, oldest first,
// after the run startingAfter ("" = from the first), and whether more
// follow. An unknown startingAfter is ErrRunNotFound.
func ListRuns(ctx context.Context, r RunReader, startingAfter string, limit int) ([]RunRecord, bool, error) {
	if limit <= 0 {
		limit = 10
	}
	var from uint64
	if startingAfter != "" {
		ev, err := runEvent(ctx, r, startingAfter)
		if err != nil {
			return nil, false, err
		}
		from = ev.Revision + 1
	}
	evs, err := r.ReadStream(ctx, RunsStream, from, limit+1)
	if err != nil && !errors.Is(err, store.ErrStreamNotFound) {
		return nil, false, fmt.Errorf("list replay runs: %w", err)
	}
	more := len(evs) > limit
	if more {
		evs = evs[:limit]
	}
	out := make([]RunRecord, 0, len(evs))
	for i := range evs {
		var rec RunRecord
		if err := json.Unmarshal(evs[i].Data, &rec); err != nil {
			return nil, false, fmt.Errorf("list replay runs: decode %s: %w", evs[i].ID, err)
		}
		out = append(out, rec)
	}
	return out, more, nil
}

// GetRun returns one replay run by id (ErrRunNotFound when the id is not a
// run of the audit log).
func GetRun(ctx context.Context, r RunReader, id string) (*RunRecord, error) {
	ev, err := runEvent(ctx, r, id)
	if err != nil {
		return nil, err
	}
	rec := new(RunRecord)
	if err := json.Unmarshal(ev.Data, rec); err != nil {
		return nil, fmt.Errorf("replay run %s: decode: %w", id, err)
	}
	return rec, nil
}

func runEvent(ctx context.Context, r RunReader, id string) (store.RecordedEvent, error) {
	ev, err := r.EventByID(ctx, id)
	if errors.Is(err, store.ErrEventNotFound) || (err == nil && ev.Stream != RunsStream) {
		return store.RecordedEvent{}, fmt.Errorf("replay run %q: %w", id, ErrRunNotFound)
	}
	if err != nil {
		return store.RecordedEvent{}, fmt.Errorf("replay run %q: %w", id, err)
	}
	return ev, nil
}
