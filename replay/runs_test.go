package replay

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestListAndGetRuns pages through the audit log of replay runs oldest first
// and reads one run; event ids that are not runs are ErrRunNotFound.
func TestListAndGetRuns(t *testing.T) {
	st, _ := openStore(t)
	ctx := context.Background()
	stored := seed(t, st, 1, 1)
	if runs, more, err := ListRuns(ctx, st, "", 10); err != nil || len(runs) != 0 || more {
		t.Fatalf("empty log: %v %v %v", runs, more, err)
	}
	for i := range 5 {
		rec := RunRecord{ID: fmt.Sprintf("replay_%d", i), User: "auditor", StartedAt: time.Unix(t0+int64(i), 0).UTC(),
			Target: Target{Kind: "http", URL: "https://example.test/hook?token=REDACTED"}}
		if err := AppendRun(ctx, st, rec); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	after := ""
	for {
		page, more, err := ListRuns(ctx, st, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page {
			ids = append(ids, r.ID)
		}
		if !more {
			break
		}
		after = page[len(page)-1].ID
	}
	if fmt.Sprint(ids) != "[replay_0 replay_1 replay_2 replay_3 replay_4]" {
		t.Fatalf("runs %v", ids)
	}
	run, err := GetRun(ctx, st, "replay_3")
	if err != nil || run.User != "auditor" || run.Object != "replay_run" || run.Target.URL == "" {
		t.Fatalf("GetRun: %+v, %v", run, err)
	}
	for _, id := range []string{"replay_nope", stored[0].ID} {
		if _, err := GetRun(ctx, st, id); !errors.Is(err, ErrRunNotFound) {
			t.Errorf("GetRun(%s): %v, want ErrRunNotFound", id, err)
		}
		if _, _, err := ListRuns(ctx, st, id, 2); !errors.Is(err, ErrRunNotFound) {
			t.Errorf("ListRuns(after %s): %v, want ErrRunNotFound", id, err)
		}
	}
}
