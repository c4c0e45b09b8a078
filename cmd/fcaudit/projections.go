package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fcaudit/fcaudit/internal/progress"
	"github.com/fcaudit/fcaudit/projections"
	"github.com/fcaudit/fcaudit/store"
)

// startedProjections is serve's running projection runner.
type startedProjections struct {
	*projections.Runner
	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan struct{}
}

// startProjections opens the read models in --data-dir and runs the
// projections over st in the background until Stop. Serve calls Stop after
// draining HTTP and before closing st.
func startProjections(f *factory, st store.Store, log *slog.Logger) (*startedProjections, error) {
	r, err := f.openReadModels(st, log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &startedProjections{Runner: r, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		_ = r.Run(ctx) // returns nil when stopped; failures are logged and retried inside
	}()
	return p, nil
}

// Stop stops the runner and closes the read models; later calls do nothing.
func (p *startedProjections) Stop() {
	p.stopOnce.Do(func() {
		p.cancel()
		<-p.done
		_ = p.Runner.Close()
	})
}

func newProjectionsCommand(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "projections",
		Short: "Rebuild read models; show their checkpoint and lag",
		Long: `Projections fold the event log into read models (account_status: every account's
current status). serve runs them; these commands inspect and rebuild them, and
both work while serve is running.`,
		Example: `  fcaudit projections status
  fcaudit projections rebuild account_status`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newProjectionsStatusCommand(f), newProjectionsRebuildCommand(f))
	return cmd
}

type projectionsStatusOptions struct {
	json bool
}

func newProjectionsStatusCommand(f *factory) *cobra.Command {
	o := &projectionsStatusOptions{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each projection's checkpoint, the log head and the lag",
		Long: `status prints, per projection, the last global position applied (checkpoint),
the event log's head, how many events the projection has still to apply and
how long the oldest of them has waited. It opens everything read-only, so it
is safe while serve runs.`,
		Example: `  fcaudit projections status
  fcaudit projections status --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runProjectionsStatus(cmd.Context(), f, o)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON instead of a table")
	return cmd
}

func runProjectionsStatus(ctx context.Context, f *factory, o *projectionsStatusOptions) error {
	st, err := f.OpenStore(ctx, storeOptions{readOnly: true})
	if err != nil {
		return err
	}
	defer st.Close()
	path := filepath.Join(f.dataDir, projections.FileName)
	r, err := projections.Open(path, st, projections.Options{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("%w (run serve or 'fcaudit projections rebuild' first)", err)
	}
	defer r.Close()
	sts, err := r.Status(ctx)
	if err != nil {
		return err
	}
	if o.json {
		enc := json.NewEncoder(f.out)
		enc.SetIndent("", "  ")
		return enc.Encode(sts)
	}
	tw := tabwriter.NewWriter(f.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECTION\tCHECKPOINT\tHEAD\tEVENTS BEHIND\tSECONDS BEHIND\tROWS\tGENERATION\tUPDATED")
	for _, s := range sts {
		behind := fmt.Sprint(s.EventsBehind)
		if s.EventsBehind >= projections.MaxCountedLag {
			behind = "≥" + behind
		}
		updated := "never"
		if !s.UpdatedAt.IsZero() {
			updated = s.UpdatedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%.1f\t%d\t%d\t%s\n", s.Name, s.Checkpoint, s.Head, behind,
			s.SecondsBehind, s.Rows, s.Generation, updated)
		if s.Rebuilding != "" {
			fmt.Fprintf(tw, "  (rebuild in progress or abandoned: %s)\t\t\t\t\t\t\t\n", s.Rebuilding)
		}
	}
	return tw.Flush()
}

func newProjectionsRebuildCommand(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rebuild [NAME]",
		Short: "Rebuild read models from the whole event log",
		Long: `rebuild folds the event log from position 0 into a fresh table and, once it has
caught up, swaps it in atomically with its checkpoint. A running serve moves to
the new table at once; queries never see a half-built model. NAME defaults to
every projection (today: account_status).`,
		Example: `  fcaudit projections rebuild
  fcaudit projections rebuild account_status --data-dir /var/lib/fcaudit`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runProjectionsRebuild(cmd.Context(), f, args)
		},
	}
	addSQLiteVFSFlag(cmd, f)
	return cmd
}

func runProjectionsRebuild(ctx context.Context, f *factory, args []string) error {
	names := projections.Names()
	if len(args) == 1 {
		names = args
		if !validProjection(args[0]) {
			return &usageError{fmt.Errorf("unknown projection %q (known: %v)", args[0], projections.Names())}
		}
	}
	log, err := f.Logger()
	if err != nil {
		return err
	}
	st, err := f.OpenStore(ctx, storeOptions{readOnly: true})
	if err != nil {
		return err
	}
	defer st.Close()
	r, err := f.openReadModels(st, log)
	if err != nil {
		return err
	}
	defer r.Close()
	line := progress.New(f.errOut, isTerminal(f.errOut))
	for _, name := range names {
		start := time.Now()
		var n int
		err := r.Rebuild(ctx, name, store.Filter{}, func(applied int) {
			n = applied
			line.Draw(fmt.Sprintf("rebuilding %s: %d events", name, applied))
		})
		line.Finish()
		if err != nil {
			return err
		}
		fmt.Fprintf(f.out, "rebuilt %s: %d events in %s\n", name, n, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

func validProjection(name string) bool {
	for _, n := range projections.Names() {
		if n == name {
			return true
		}
	}
	return false
}
