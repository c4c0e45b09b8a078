package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestRunLog(t *testing.T) {
	ctx := context.Background()
	st, _ := openStore(t)
	stored := seed(t, st, 1, 2) // Stripe events are no runs
	l := NewRunLog(st)
	if runs, more, err := l.List(ctx, RunListOptions{}); err != nil || len(runs) != 0 || more {
		t.Fatalf("no runs yet: %d %v %v", len(runs), more, err)
	}
	for i := range 12 {
		if err := AppendRun(ctx, st, RunRecord{ID: fmt.Sprintf("replay_%02d", i), StartedAt: time.Unix(t0+int64(i), 0).UTC()}); err != nil {
			t.Fatal(err)
		}
	}
	id := func(raw json.RawMessage) string {
		var r RunRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	runs, more, err := l.List(ctx, RunListOptions{}) // default limit 10
	if err != nil || len(runs) != 10 || !more || id(runs[0]) != "replay_00" || id(runs[9]) != "replay_09" {
		t.Fatalf("first page: %d %v %v", len(runs), more, err)
	}
	runs, more, err = l.List(ctx, RunListOptions{StartingAfter: "replay_09", Limit: 5})
	if err != nil || len(runs) != 2 || more || id(runs[0]) != "replay_10" {
		t.Fatalf("last page: %d %v %v", len(runs), more, err)
	}
	if raw, err := l.Get(ctx, "replay_03"); err != nil || id(raw) != "replay_03" {
		t.Fatalf("Get: %v", err)
	}
	for _, bad := range []string{"replay_nope", stored[0].ID} {
		if _, err := l.Get(ctx, bad); !errors.Is(err, ErrRunNotFound) {
			t.Errorf("Get(%s): %v, want ErrRunNotFound", bad, err)
		}
		if _, _, err := l.List(ctx, RunListOptions{StartingAfter: bad}); !errors.Is(err, ErrRunNotFound) {
			t.Errorf("List after %s: %v, want ErrRunNotFound", bad, err)
		}
	}
}
