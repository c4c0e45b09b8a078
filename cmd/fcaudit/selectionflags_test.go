package main

import (
	"context"
	"strings"
	"testing"
)

// The zero time, the Unix epoch and the largest times in
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

// replay --type 'a,b' and --type created selected 0
// events and exited 0. The forms of the API's type= work, and a type that
// matches no known one is a usage error.
func TestReplayTypeForms(t *testing.T) {
	dir := t.TempDir()
	replaySeed(t, dir, 2, 7) // each account walks the 7 types once
	for _, tt := range []struct {
		types []string
		want  string
	}{
		{[]string{"created"}, "dry run: 2 events selected"},
		{[]string{"created,deactivated"}, "dry run: 4 events selected"},
		{[]string{"financial_connections.account.created,financial_connections.account.deactivated"}, "dry run: 4 events selected"},
		{[]string{"created", "disconnected"}, "dry run: 4 events selected"},
		{[]string{"refreshed_*"}, "dry run: 6 events selected"},
		{[]string{"financial_connections.account.refreshed_*"}, "dry run: 6 events selected"},
	} {
		args := []string{"replay", "--dry-run", "--data-dir", dir}
		for _, ty := range tt.types {
			args = append(args, "--type", ty)
		}
		code, _, errOut := runCmd(t, context.Background(), args...)
		if code != 0 || !strings.Contains(errOut, tt.want) {
			t.Errorf("--type %q: exit %d, stderr %q; want %q", tt.types, code, errOut, tt.want)
		}
	}
	for _, bad := range []string{"creatd", "created,bogus", "financial_connections.account.foo", "refreshed_x*"} {
		code, _, errOut := runCmd(t, context.Background(), "replay", "--to", "-", "--data-dir", dir, "--type", bad)
		if code != exitUsage || !strings.Contains(errOut, "--type: unknown event type") {
			t.Errorf("--type %q: exit %d, stderr %q; want exit 2 naming --type", bad, code, errOut)
		}
	}
}

// export --type takes the same forms as replay --type and the API's type=.
func TestExportTypeForms(t *testing.T) {
	dir := t.TempDir()
	replaySeed(t, dir, 1, 7)
	for _, tt := range []struct {
		types []string
		want  string
	}{
		{[]string{"created"}, "exported 1 of 7 events"},
		{[]string{"created,deactivated"}, "exported 2 of 7 events"},
		{[]string{"refreshed_*"}, "exported 3 of 7 events"},
		{[]string{"financial_connections.account.refreshed_*", "disconnected"}, "exported 4 of 7 events"},
	} {
		args := []string{"export", "--account", "fca_cmdreplay000", "--data-dir", dir}
		for _, ty := range tt.types {
			args = append(args, "--type", ty)
		}
		code, _, errOut := runCmd(t, context.Background(), args...)
		if code != 0 || !strings.Contains(errOut, tt.want) {
			t.Errorf("--type %q: exit %d, stderr %q; want %q", tt.types, code, errOut, tt.want)
		}
	}
	code, _, errOut := runCmd(t, context.Background(), "export", "--account", "fca_cmdreplay000", "--data-dir", dir, "--type", "creatd")
	if code != exitUsage || !strings.Contains(errOut, "--type: unknown event type") {
		t.Errorf("--type creatd: exit %d, stderr %q; want exit 2", code, errOut)
	}
}
