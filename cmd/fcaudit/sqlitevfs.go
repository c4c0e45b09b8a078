package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/fcaudit/fcaudit/projections"
)

// sqliteVFSEnv is the environment variable behind --sqlite-vfs.
const sqliteVFSEnv = "FCAUDIT_SQLITE_VFS"

// sqliteVFS is the value of --sqlite-vfs: which SQLite VFS the connections
// that write the embedded store and the read models use. "wc" is the
// write-combining VFS of internal/sqlitewc, "unix" SQLite's default one
// (the off switch; see docs/reliability.md for when to use it).
type sqliteVFS struct {
	name string
	// envErr: FCAUDIT_SQLITE_VFS held something else. It is reported
	// when a store is opened for writing, unless the flag replaced it.
	envErr error
}

// sqliteVFSFromEnv returns the value FCAUDIT_SQLITE_VFS selects ("wc" when
// unset), so commands without the flag honour it too.
func sqliteVFSFromEnv() sqliteVFS {
	v := sqliteVFS{name: "wc"}
	if s := os.Getenv(sqliteVFSEnv); s != "" {
		if err := v.Set(s); err != nil {
			v.envErr = fmt.Errorf("%s=%q: %w", sqliteVFSEnv, s, err)
		}
	}
	return v
}

// String implements pflag.Value.
func (v *sqliteVFS) String() string { return v.name }

// Type implements pflag.Value.
func (v *sqliteVFS) Type() string { return "unix|wc" }

// Set implements pflag.Value; a bad value is a usage error naming the flag.
func (v *sqliteVFS) Set(s string) error {
	switch s {
	case "unix", "wc":
		v.name, v.envErr = s, nil
		return nil
	}
	return fmt.Errorf("want unix or wc")
}

// plain reports whether writes go through SQLite's default VFS, or the
// usage error of a bad FCAUDIT_SQLITE_VFS.
func (v *sqliteVFS) plain() (bool, error) {
	if v.envErr != nil {
		return false, flagError("sqlite-vfs", v.envErr)
	}
	return v.name == "unix", nil
}

// addSQLiteVFSFlag defines --sqlite-vfs on a command that writes the
// embedded store or the read models, and checks a FCAUDIT_SQLITE_VFS the
// flag did not replace before the command does anything.
func addSQLiteVFSFlag(cmd *cobra.Command, f *factory) {
	runE := cmd.PreRunE
	cmd.PreRunE = func(c *cobra.Command, args []string) error {
		if _, err := f.sqliteVFS.plain(); err != nil {
			return err
		}
		if runE != nil {
			return runE(c, args)
		}
		return nil
	}
	cmd.Flags().Var(&f.sqliteVFS, "sqlite-vfs", "SQLite VFS for writes: wc (write-combining, faster) or unix (SQLite's default; the off switch, see docs/reliability.md) (env "+sqliteVFSEnv+")")
}

// openReadModels opens the read models in --data-dir for writing, through
// the VFS --sqlite-vfs selects.
func (f *factory) openReadModels(st projections.Log, log *slog.Logger) (*projections.Runner, error) {
	plain, err := f.sqliteVFS.plain()
	if err != nil {
		return nil, err
	}
	return projections.Open(filepath.Join(f.dataDir, projections.FileName), st, projections.Options{Logger: log, PlainVFS: plain})
}
