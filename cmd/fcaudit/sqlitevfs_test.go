package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/internal/sqlitewc"
)

func TestSQLiteVFSUsageErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		env  string
		args []string
		want string
	}{
		{"", []string{"serve", "--dev", "--data-dir", dir, "--sqlite-vfs", "fast"}, `invalid argument "fast" for "--sqlite-vfs" flag: want unix or wc`},
		{"fast", []string{"serve", "--dev", "--data-dir", dir}, `--sqlite-vfs: FCAUDIT_SQLITE_VFS="fast": want unix or wc`},
		{"fast", []string{"projections", "rebuild", "--data-dir", dir}, `--sqlite-vfs: FCAUDIT_SQLITE_VFS="fast"`},
		{"fast", []string{"backfill", "--data-dir", dir}, `--sqlite-vfs: FCAUDIT_SQLITE_VFS="fast"`},
		{"fast", []string{"replay", "--data-dir", dir, "--to", "-"}, `--sqlite-vfs: FCAUDIT_SQLITE_VFS="fast"`},
	}
	for _, tt := range tests {
		t.Setenv(sqliteVFSEnv, tt.env)
		code, _, errOut := runCmd(t, context.Background(), tt.args...)
		if code != exitUsage || !strings.Contains(errOut, tt.want) {
			t.Errorf("%s=%q %v: exit %d, stderr %q; want exit 2 mentioning %q", sqliteVFSEnv, tt.env, tt.args, code, errOut, tt.want)
		}
	}
	// The flag replaces a bad environment value.
	t.Setenv(sqliteVFSEnv, "fast")
	if code, _, errOut := runCmd(t, context.Background(), "serve", "--sqlite-vfs", "unix", "--data-dir", dir, "--listen", "bad"); code != exitUsage || strings.Contains(errOut, "sqlite-vfs") {
		t.Errorf("--sqlite-vfs unix over a bad %s: exit %d, stderr %q; want only the other usage error", sqliteVFSEnv, code, errOut)
	}
}

// TestServeSQLiteVFS: serve with --sqlite-vfs unix (or FCAUDIT_SQLITE_VFS)
// stores and projects a webhook without one write through the
// write-combining VFS; with wc (the default) its writes go through it.
func TestServeSQLiteVFS(t *testing.T) {
	tests := []struct {
		name, env string
		args      []string
		combined  bool
	}{
		{"flag unix", "", []string{"--sqlite-vfs", "unix"}, false},
		{"env unix", "unix", nil, false},
		{"default", "", nil, true},
		{"flag wc over env unix", "unix", []string{"--sqlite-vfs", "wc"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(sqliteVFSEnv, tt.env)
			dir := t.TempDir()
			before, _ := sqlitewc.Counts()
			base := startServe(t, dir, append([]string{"--dev"}, tt.args...)...)
			if code, out, errOut := runCmd(t, context.Background(), "trigger", "created", "--data-dir", dir, "--account", "fca_vfs1"); code != 0 {
				t.Fatalf("trigger: %d %s %s", code, out, errOut)
			}
			dc, err := loadDevConfig(dir)
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				req, _ := http.NewRequest("GET", base+"/v1/accounts/fca_vfs1", nil)
				req.Header.Set("Authorization", "Bearer "+dc.APIToken)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break // stored and projected
				}
				if time.Now().After(deadline) {
					t.Fatalf("account not projected after 30s (last status %d)", resp.StatusCode)
				}
				time.Sleep(20 * time.Millisecond)
			}
			after, _ := sqlitewc.Counts()
			if n := after - before; tt.combined && n == 0 {
				t.Error("no write went through the write-combining VFS")
			} else if !tt.combined && n != 0 {
				t.Errorf("%d writes went through the write-combining VFS, want 0", n)
			}
		})
	}
}
