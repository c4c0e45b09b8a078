package main

import (
	"context"
	"strings"
	"testing"
)

// Issue 14, item 4: the zero time, the Unix epoch and the largest times in
// every time flag. An --until at or before the epoch meant "no bound" (0 in
// the store filter, or the zero time.Time) and exported or replayed
// everything.
func TestTimeFlagEdges(t *testing.T) {
	dir := t.TempDir()
	stored := replaySeed(t, dir, 2, 3)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"export", "--account", "fca_cmdreplay000", "--until", "0"}, "exported 0 of 3 events"},
		{[]string{"export", "--account", "fca_cmdreplay000", "--until", "1970-01-01T00:00:00Z"}, "exported 0 of 3 events"},
		{[]string{"export", "--account", "fca_cmdreplay000", "--until", "0001-01-01T00:00:00Z"}, "exported 0 of 3 events"},
		{[]string{"export", "--account", "fca_cmdreplay000", "--until", "9999-12-31T23:59:59Z"}, "exported 3 of 3 events"},
		{[]string{"export", "--account", "fca_cmdreplay000", "--since", "0001-01-01T00:00:00Z"}, "exported 3 of 3 events"},
		{[]string{"export", "--account", "fca_cmdreplay000", "--since", "9999-12-31T23:59:59Z"}, "exported 0 of 3 events"},
		{[]string{"replay", "--dry-run", "--until", "9999-12-31T23:59:59Z"}, "dry run: 6 events selected"},
		{[]string{"replay", "--dry-run", "--since", "0001-01-01T00:00:00Z"}, "dry run: 6 events selected"},
		{[]string{"replay", "--dry-run", "--since", "9999-12-31T23:59:59Z"}, "dry run: 0 events selected"},
	} {
		code, _, errOut := runCmd(t, context.Background(), append(tt.args, "--data-dir", dir)...)
		if code != 0 || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want %q", tt.args, code, errOut, tt.want)
		}
	}
	if len(stored) != 6 {
		t.Fatalf("seeded %d events", len(stored))
	}
}
