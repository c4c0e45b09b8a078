package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/fcaudit/fcaudit/audit"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

type backupOptions struct {
	out string
}

func newBackupCommand(f *factory) *cobra.Command {
	o := &backupOptions{}
	cmd := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Copy the embedded event log to one file, consistently, while serve runs",
		Long: `backup writes a consistent snapshot of the embedded event log (DATA_DIR/events.db)
to FILE, then verifies the copy's hash chains and body hashes.

The snapshot is SQLite's VACUUM INTO on a read-only connection: a read
transaction, so serve keeps ingesting while it runs, and the copy holds every
event committed when it began. FILE is written under a temporary name, fsynced
and then linked into place, so it is either absent or complete; it must not
exist. The copy is one self-contained file (no -wal or -shm beside it).

Copying events.db with cp while serve runs is not a backup: the newest events
live in events.db-wal until they are checkpointed.

Restore: stop serve; move events.db, events.db-wal, events.db-shm and
readmodels.db* out of DATA_DIR; copy FILE to DATA_DIR/events.db; start serve.
It rebuilds the read models from the restored log (they are derived data and
are not part of the backup; kept, they could describe events newer than the
backup).

Exit status 0 when the copy is written and intact; 1 when the copy failed or
its verification found damage (the copy is kept: it is a faithful copy of a
damaged log); 2 for a bad command line. EventStoreDB has its own backup
procedures; this command works on the embedded store only.`,
		Example: `  fcaudit backup --out /backups/fcaudit-$(date +%F).db
  fcaudit verify --data-dir /restore-test   # after copying the backup to /restore-test/events.db`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBackup(cmd.Context(), f, o)
		},
	}
	cmd.Flags().StringVar(&o.out, "out", "", "the backup `FILE` to create (must not exist)")
	return cmd
}

func runBackup(ctx context.Context, f *factory, o *backupOptions) error {
	if o.out == "" {
		return flagError("out", errors.New("required: the backup file to create"))
	}
	if f.eventStore != "" {
		return &usageError{errors.New("backup copies the embedded SQLite event log; back up EventStoreDB with its own tools (docs/eventstoredb.md)")}
	}
	if fi, err := os.Stat(filepath.Dir(o.out)); err != nil || !fi.IsDir() {
		return flagError("out", fmt.Errorf("directory %s does not exist", filepath.Dir(o.out)))
	}
	st, err := f.OpenStore(ctx, storeOptions{readOnly: true})
	if err != nil {
		return err
	}
	defer st.Close()
	src, ok := st.(*sqlite.Store)
	if !ok {
		return fmt.Errorf("backup: the event log is not the embedded store")
	}
	start := time.Now()
	size, err := src.Backup(ctx, o.out)
	if errors.Is(err, os.ErrExist) {
		return flagError("out", fmt.Errorf("%s exists; backup never overwrites a file", o.out))
	}
	if err != nil {
		return err
	}
	copied, err := sqlite.Open(o.out, sqlite.Options{ReadOnly: true})
	if err != nil {
		return &exitError{code: exitFailure, msg: fmt.Sprintf("backup: %s was written but does not open as an event log: %v", o.out, err)}
	}
	defer copied.Close()
	rep, err := audit.Verify(ctx, copied, audit.VerifyOptions{})
	if err != nil {
		return &exitError{code: exitFailure, msg: fmt.Sprintf("backup: %s was written but could not be verified: %v", o.out, err)}
	}
	for _, b := range rep.Damaged {
		fmt.Fprintf(f.out, "DAMAGED %s\n", b)
	}
	summary := fmt.Sprintf("backed up %d events in %d streams (up to position %d) to %s, %.1f MB, in %s",
		rep.Events, rep.Streams, rep.Head, o.out, float64(size)/1e6, time.Since(start).Round(time.Millisecond))
	if !rep.Intact() {
		fmt.Fprintln(f.out, summary)
		return &exitError{code: exitFailure, msg: fmt.Sprintf("backup: the copy is faithful but %d streams of the log are damaged (first broken event of each above)", len(rep.Damaged))}
	}
	fmt.Fprintln(f.out, "OK "+summary+"; hash chains verified")
	return nil
}
