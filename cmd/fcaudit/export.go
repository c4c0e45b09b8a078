package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/fcaudit/fcaudit/audit"
	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/atomicfile"
	"github.com/fcaudit/fcaudit/internal/timearg"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/translog"
)

type exportOptions struct {
	account      string
	since, until string
	types        []string
	format       string
	out          string
	force        bool
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
seconds), --type by event type (as replay --type). Statuses are those of
GET /v1/accounts/{id}?as_of=<--until>: no event created after --until sets one.
--out FILE is written atomically with mode 0600; an existing FILE is
refused unless --force (it then keeps its mode), a symlink, device or directory
always; '-' (the default) writes to stdout. --bundle DIR (a new or empty directory) also writes an evidence
bundle (built under a temporary name and renamed into place, so DIR is
complete or absent; files 0600, directories 0700): records.ndjson, events.csv, status_timeline.json, chain_proof.json
(every revision's body hash and chain hash, with the recipe to recompute
them), bodies/ (the exact bytes), log_proof.json (each event's Merkle
inclusion proof against the latest signed log checkpoint)
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
	fl.StringArrayVar(&o.types, "type", nil, "only events of this type: full or short name (created), comma lists, '*' globs (refreshed_*); repeatable")
	fl.StringVar(&o.format, "format", "ndjson", "output format: ndjson or csv")
	fl.StringVar(&o.out, "out", "-", "write to `FILE` (atomically, mode 0600) instead of stdout ('-'); an existing FILE is refused without --force")
	fl.BoolVar(&o.force, "force", false, "let --out replace an existing file (it keeps its mode); never a symlink or device")
	fl.StringVar(&o.bundle, "bundle", "", "also write an evidence bundle into `DIR` (new or empty)")
	return cmd
}

func runExport(ctx context.Context, f *factory, o *exportOptions) error {
	if o.account == "" {
		return flagError("account", errors.New("required"))
	}
	if !slices.Contains(audit.ExportFormats, o.format) {
		return flagError("format", fmt.Errorf("%q: want ndjson or csv", o.format))
	}
	req := audit.ExportRequest{ExportOptions: audit.ExportOptions{Account: o.account},
		Format: o.format, Out: o.out, Force: o.force, Stdout: f.out, Bundle: o.bundle, Now: o.now()}
	// The same type forms as replay --type and the API's type=.
	types, err := fc.ParseTypes(o.types)
	if err != nil {
		return flagError("type", err)
	}
	req.Types = types
	for _, tf := range []struct {
		flag, val string
		dst       *int64
	}{{"since", o.since, &req.Since}, {"until", o.until, &req.Until}} {
		if tf.val == "" {
			continue
		}
		t, err := timearg.Parse(tf.val)
		if err != nil {
			return flagError(tf.flag, err)
		}
		*tf.dst = t.Unix()
	}
	if o.force && o.out == "-" {
		return flagError("force", errors.New("only applies to --out FILE"))
	}
	if o.until != "" {
		req.Until = store.CreatedUntil(time.Unix(req.Until, 0))
	}
	if req.Since != 0 && req.Until != 0 && req.Since > req.Until {
		return flagError("since", errors.New("is after --until"))
	}
	st, err := f.OpenStore(ctx, storeOptions{readOnly: true})
	if err != nil {
		return err
	}
	defer st.Close()
	if l, err := translog.Of(st); err == nil {
		req.Log = l
	}
	res, err := audit.Export(ctx, st, req)
	if res.Written {
		fmt.Fprintf(f.errOut, "exported %d of %d events of account %s\n", res.Selected, res.Total, o.account)
	}
	if errors.Is(err, audit.ErrUnknownAccount) {
		return &exitError{code: exitFailure, msg: fmt.Sprintf("export: no stored events for account %q (is --data-dir right?)", o.account)}
	}
	if !res.Written && (errors.Is(err, fs.ErrExist) || errors.Is(err, atomicfile.ErrNotRegular)) {
		// A refused --out or --bundle target, found before any work.
		if errors.Is(err, fs.ErrExist) && !o.force && o.bundle == "" {
			err = fmt.Errorf("%w: pass --force to replace it", err)
		}
		return &usageError{err: err}
	}
	if err != nil {
		return err
	}
	if res.NoProofs != "" {
		fmt.Fprintln(f.errOut, "no Merkle inclusion proofs in the bundle: "+res.NoProofs)
	} else if res.NotCovered > 0 {
		fmt.Fprintf(f.errOut, "%d event(s) arrived after the latest checkpoint (tree size %d): no inclusion proof for them\n", res.NotCovered, res.TreeSize)
	}
	if b := res.Bundle; b != nil {
		fmt.Fprintf(f.errOut, "evidence bundle written to %s (%d files); manifest.json SHA-256 %s — record it\n",
			b.Dir, b.Files, b.ManifestSHA256)
	}
	if res.Broken != nil {
		return &exitError{code: exitFailure, msg: fmt.Sprintf("export: the account's hash chain is BROKEN: %s", res.Broken)}
	}
	return nil
}
