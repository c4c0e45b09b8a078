package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fcaudit/fcaudit/internal/progress"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

// Exit codes, decided in one place (run).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError marks a mistake in the command line (exit 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// flagError returns a usage error that names the flag: "--since: …".
func flagError(flag string, err error) error {
	return &usageError{err: fmt.Errorf("--%s: %w", flag, err)}
}

// exitError carries a specific exit status with an already-reported failure
// (e.g. replay's "some events failed").
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// run executes one command line and returns the process exit status.
func run(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) int {
	root := NewRootCommand(in, out, errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(errOut, "fcaudit:", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(errOut, "fcaudit:", err)
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitFailure
}

// factory holds the global flags and builds dependencies lazily, so --help
// never touches a database.
type factory struct {
	in          io.Reader
	out, errOut io.Writer

	dataDir    string
	eventStore string
	logFormat  string
	logLevel   string
	sqliteVFS  sqliteVFS // --sqlite-vfs on the commands that write

	logger *slog.Logger
}

// NewRootCommand returns a fresh command tree (tests build one per case).
func NewRootCommand(in io.Reader, out, errOut io.Writer) *cobra.Command {
	f := &factory{in: in, out: out, errOut: errOut, sqliteVFS: sqliteVFSFromEnv()}
	root := &cobra.Command{
		Use:   "fcaudit",
		Short: "Audit and replay store for Stripe Financial Connections webhooks",
		Long: `fcaudit verifies Stripe Financial Connections webhooks, appends each one immutably
to a per-account event stream (embedded SQLite by default, EventStoreDB for
clusters), projects every account's current status, and lets you query,
verify, export and replay the history.`,
		Example: `  fcaudit serve --dev                      # try it locally
  fcaudit trigger financial_connections.account.created
  fcaudit replay --to http://localhost:3000/webhooks --signing-secret whsec_… --since 2026-11-01T00:00:00Z`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(in)
	root.SetOut(out)
	root.SetErr(errOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err: err} })
	pf := root.PersistentFlags()
	pf.StringVar(&f.dataDir, "data-dir", envOr("FCAUDIT_DATA_DIR", "./fcaudit-data"), "directory of the embedded event store and local read models (env FCAUDIT_DATA_DIR)")
	pf.StringVar(&f.eventStore, "eventstore", os.Getenv("FCAUDIT_EVENTSTORE"), "EventStoreDB connection string (esdb://… or esdb+discover://…); empty = embedded store (env FCAUDIT_EVENTSTORE)")
	pf.StringVar(&f.logFormat, "log-format", envOr("FCAUDIT_LOG_FORMAT", "text"), "log format: text or json (env FCAUDIT_LOG_FORMAT)")
	pf.StringVar(&f.logLevel, "log-level", envOr("FCAUDIT_LOG_LEVEL", "info"), "log level: debug, info, warn, error (env FCAUDIT_LOG_LEVEL)")
	hideEnvDefault(pf, "eventstore", "FCAUDIT_EVENTSTORE") // it may carry credentials

	root.AddCommand(
		newServeCommand(f),
		newBackfillCommand(f),
		newProjectionsCommand(f),
		newReplayCommand(f),
		newTriggerCommand(f),
		newLoadgenCommand(f),
		newVerifyCommand(f),
		newExportCommand(f),
		newBackupCommand(f),
		newAccountsCommand(f),
		newHealthcheckCommand(f),
		newLogCommand(f),
		newVersionCommand(f),
	)
	root.Version = versionString()
	root.SetVersionTemplate("{{.Version}}\n")
	enforceUsage(root)
	return root
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// envList splits a comma-separated environment variable.
func envList(name string) []string {
	var out []string
	for _, s := range strings.Split(os.Getenv(name), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Logger returns the process logger (stderr), built on first use.
func (f *factory) Logger() (*slog.Logger, error) {
	if f.logger != nil {
		return f.logger, nil
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, flagError("log-level", fmt.Errorf("%q: want debug, info, warn or error", f.logLevel))
	}
	opts := &slog.HandlerOptions{Level: level}
	switch f.logFormat {
	case "text":
		f.logger = slog.New(slog.NewTextHandler(f.errOut, opts))
	case "json":
		f.logger = slog.New(slog.NewJSONHandler(f.errOut, opts))
	default:
		return nil, flagError("log-format", fmt.Errorf("%q: want text or json", f.logFormat))
	}
	return f.logger, nil
}

// storeOptions says how a command uses the event log.
type storeOptions struct {
	// readOnly: the command only reads (verify, export); on the embedded
	// store it opens the file read-only so it can never disturb serve.
	readOnly bool
	// onCommit receives group-commit statistics (metrics), embedded only.
	onCommit func(sqlite.CommitStats)
}

// OpenStore opens the event log chosen by --eventstore / --data-dir.
func (f *factory) OpenStore(ctx context.Context, o storeOptions) (store.Store, error) {
	log, err := f.Logger()
	if err != nil {
		return nil, err
	}
	if f.eventStore != "" {
		return openEventStore(ctx, f.eventStore, log)
	}
	path := filepath.Join(f.dataDir, sqlite.FileName)
	if o.readOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("no event store at %s (is --data-dir right?): %w", path, err)
		}
	}
	plainVFS, err := f.sqliteVFS.plain()
	if err != nil && !o.readOnly {
		return nil, err
	}
	s, err := sqlite.Open(path, sqlite.Options{ReadOnly: o.readOnly, Logger: log, OnCommit: o.onCommit, PlainVFS: plainVFS})
	if err != nil {
		return nil, fmt.Errorf("open event store %s: %w", path, err)
	}
	return s, nil
}

// isTerminal reports whether w is a terminal (progress lines only then).
// FCAUDIT_TTY=1 or 0 forces the answer: progress under a wrapper that
// hides the terminal, none in a terminal recording, and the terminal path
// in tests.
func isTerminal(w io.Writer) bool {
	if force, err := strconv.ParseBool(os.Getenv("FCAUDIT_TTY")); err == nil {
		return force
	}
	return progress.IsTerminal(w)
}
