package replay

import (
	"context"
	"encoding/json"
	"fmt"
)

// ListRuns is RunLog.List with each run decoded into a RunRecord (the
// console shows their fields; the API serves the stored JSON as is).
func ListRuns(ctx context.Context, r RunReader, startingAfter string, limit int) ([]RunRecord, bool, error) {
	raws, more, err := NewRunLog(r).List(ctx, RunListOptions{StartingAfter: startingAfter, Limit: limit})
	if err != nil {
		return nil, false, err
	}
	out := make([]RunRecord, len(raws))
	for i, raw := range raws {
		if err := json.Unmarshal(raw, &out[i]); err != nil {
			return nil, false, fmt.Errorf("list replay runs: decode run %d: %w", i, err)
		}
	}
	return out, more, nil
}

// GetRun is RunLog.Get decoded into a RunRecord (ErrRunNotFound when no
// run has that id).
func GetRun(ctx context.Context, r RunReader, id string) (*RunRecord, error) {
	raw, err := NewRunLog(r).Get(ctx, id)
	if err != nil {
		return nil, err
	}
	rec := new(RunRecord)
	if err := json.Unmarshal(raw, rec); err != nil {
		return nil, fmt.Errorf("replay run %s: decode: %w", id, err)
	}
	return rec, nil
}
