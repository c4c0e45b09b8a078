package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/internal/fcevents"
)

// FCAUDIT_TTY forces the terminal path: the long commands redraw one
// progress line in place (carriage return, erase) and clear it before
// their summary; forced off, stderr holds only the summary.
func TestProgressLineForcedByFCAUDIT_TTY(t *testing.T) {
	dir := t.TempDir()
	replaySeed(t, dir, 2, 3)
	cmdLog(t, dir, &fcevents.Generator{}, []string{"fca_ttyAccount000000000000"}, 3, time.Unix(1705312800, 0).UTC())
	cmds := []struct {
		args []string
		line string
	}{
		{[]string{"replay", "--data-dir", dir, "--projection", "account_status"}, "\r\033[Krebuilding account_status: "},
		{[]string{"verify", "--data-dir", dir}, "\r\033[Kverify [==="},
		{[]string{"projections", "rebuild", "account_status", "--data-dir", dir}, "\r\033[Krebuilding account_status: "},
	}
	for _, c := range cmds {
		t.Run(c.args[0]+"/tty", func(t *testing.T) {
			t.Setenv("FCAUDIT_TTY", "1")
			code, _, errOut := runCmd(t, context.Background(), c.args...)
			if code != 0 {
				t.Fatalf("exit %d: %q", code, errOut)
			}
			if !strings.Contains(errOut, c.line) {
				t.Errorf("stderr %q lacks the redrawn line %q", errOut, c.line)
			}
			if i := strings.LastIndex(errOut, "\r"); !strings.HasPrefix(errOut[i:], "\r\033[K") || strings.Contains(errOut[i+4:], "\r") {
				t.Errorf("stderr %q: the line is not cleared at the end", errOut)
			}
		})
		t.Run(c.args[0]+"/plain", func(t *testing.T) {
			t.Setenv("FCAUDIT_TTY", "0")
			code, _, errOut := runCmd(t, context.Background(), c.args...)
			if code != 0 {
				t.Fatalf("exit %d: %q", code, errOut)
			}
			if strings.ContainsAny(errOut, "\r\033") {
				t.Errorf("stderr %q holds terminal control characters", errOut)
			}
		})
	}
}
