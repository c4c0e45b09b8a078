package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/fcaudit/fcaudit/audit"
	"github.com/fcaudit/fcaudit/internal/timearg"
)

type exportOptions struct {
	account      string
	since, until string
	format       string
	out          string
	bundle       string
	now          func() time.Time
}

func newExportCommand(f *factory) *cobra.Command {
	o := &exportOptions{now: time.Now}
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export an account's history for auditors (NDJSON, CSV, evidence bundle)",
		Long: `export writes one Financial Connections account's stored history, oldest first:

  --format ndjson   one stored event record per line (as GET /v1/events/{id}):
                    metadata, signature provenance, chain hash and the payload
  --format csv      one row per event with the main fields and the account's
                    status after the event, with a header row

--since/--until select by the Stripe created time (inclusive; RFC 3339 or Unix
seconds). --bundle DIR (a new or empty directory) also writes an evidence
bundle: records.ndjson, events.csv, status_timeline.json, chain_proof.json
(every revision's body hash and chain hash, with the recipe to recompute
them), bodies/ (the exact bytes), log_proof.json (each event's Merkle
inclusion proof against the latest signed log checkpoint, embedded store only)
and manifest.json (SHA-256 of every file), plus README.txt for the auditor. The SHA-256 of manifest.json is printed:
record it.

The stream's hash chain is checked while exporting; when it is broken the
export is still written (it is evidence too) and the exit status is 1.
An unknown account is an error (exit 1).`,
		Example: `  fcaudit export --account fca_1OeXkQ2eZvKYlo2CqT7hN3aB --format csv --out history.csv
  fcaudit export --account fca_1OeX… --since 2026-01-01T00:00:00Z --format ndjson > 2026.ndjson
  fcaudit export --account fca_1OeX… --format csv --out history.csv --bundle evidence-fca_1OeX…`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runExport(cmd.Context(), f, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.account, "account", "", "Financial Connections account id (fca_…); required")
	fl.StringVar(&o.since, "since", "", "only events created at or after `T` (RFC 3339 or Unix seconds)")
	fl.StringVar(&o.until, "until", "", "only events created at or before `T` (RFC 3339 or Unix seconds)")
	fl.StringVar(&o.format, "format", "ndjson", "output format: ndjson or csv")
	fl.StringVar(&o.out, "out", "-", "write to `FILE` (atomically) instead of stdout")
	fl.StringVar(&o.bundle, "bundle", "", "also write an evidence bundle into `DIR` (new or empty)")
	return cmd
}

func runExport(ctx context.Context, f *factory, o *exportOptions) error {
	if o.account == "" {
		return flagError("account", errors.New("required"))
	}
	if o.format != "ndjson" && o.format != "csv" {
		return flagError("format", fmt.Errorf("%q: want ndjson or csv", o.format))
	}
	opts := audit.ExportOptions{Account: o.account}
	for _, tf := range []struct {
		flag, val string
		dst       *int64
	}{{"since", o.since, &opts.Since}, {"until", o.until, &opts.Until}} {
		if tf.val == "" {
			continue
		}
		t, err := timearg.Parse(tf.val)
		if err != nil {
			return flagError(tf.flag, err)
		}
		*tf.dst = t.Unix()
	}
	if opts.Since != 0 && opts.Until != 0 && opts.Since > opts.Until {
		return flagError("since", errors.New("is after --until"))
	}
	st, err := f.OpenStore(ctx, storeOptions{readOnly: true})
	if err != nil {
		return err
	}
	defer st.Close()
	h, err := audit.LoadHistory(ctx, st, opts)
	if errors.Is(err, audit.ErrUnknownAccount) {
		return &exitError{code: exitFailure, msg: fmt.Sprintf("export: no stored events for account %q (is --data-dir right?)", o.account)}
	}
	if err != nil {
		return err
	}
	write := h.WriteNDJSON
	if o.format == "csv" {
		write = h.WriteCSV
	}
	if err := writeOutput(f.out, o.out, write); err != nil {
		return err
	}
	fmt.Fprintf(f.errOut, "exported %d of %d events of account %s\n", len(h.Selected), len(h.Events), o.account)
	if o.bundle != "" {
		if err := addLogProofs(ctx, f, st, h); err != nil {
			return err
		}
		res, err := audit.WriteBundle(h, o.bundle, o.now())
		if err != nil {
			return err
		}
		fmt.Fprintf(f.errOut, "evidence bundle written to %s (%d files); manifest.json SHA-256 %s — record it\n",
			res.Dir, res.Files, res.ManifestSHA256)
	}
	if b := h.Check.FirstBroken; b != nil {
		return &exitError{code: exitFailure, msg: fmt.Sprintf("export: the account's hash chain is BROKEN: %s", b)}
	}
	return nil
}

// writeOutput runs write into stdout ("-") or into path via a temporary file
// renamed into place, so a failed export never leaves a partial file.
func writeOutput(stdout io.Writer, path string, write func(io.Writer) error) error {
	if path == "-" {
		bw := bufio.NewWriter(stdout)
		if err := write(bw); err != nil {
			return err
		}
		return bw.Flush()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("export to %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriter(tmp)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("export to %s: %w", path, err)
	}
	return nil
}
