package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/progress"
	"github.com/fcaudit/fcaudit/internal/timearg"
	"github.com/fcaudit/fcaudit/projections"
	"github.com/fcaudit/fcaudit/replay"
	"github.com/fcaudit/fcaudit/store"
)

type replayOptions struct {
	accounts     []string
	types        []string
	since, until string
	fromPosition uint64
	limit        int

	to, projection string
	signingSecret  secretSource
	concurrency    int
	rate           float64
	maxRetries     int
	timeout        time.Duration
	dryRun         bool
	checkpoint     string
}

func newReplayCommand(f *factory) *cobra.Command {
	o := &replayOptions{signingSecret: secretSource{name: "signing-secret", env: "FCAUDIT_REPLAY_SIGNING_SECRET"}}
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Re-deliver, re-apply or export stored events",
		Long: `replay reads the event log in store order, selects events and sends them to a
target:

  --to URL          POST each event's original body, byte for byte, with a fresh
                    Stripe-Signature made with --signing-secret, plus the headers
                    Fcaudit-Replay: true and Fcaudit-Replay-Id: <run id>
  --to -            NDJSON of the stored records on stdout (as GET /v1/events/{id})
  --projection NAME rebuild that read model from the selected events

Events of one account are delivered one at a time in store order; different
accounts in parallel (--concurrency). 5xx, 429 and network errors are retried
with exponential backoff and jitter (Retry-After is honoured); other 4xx fail
at once. When an event fails, the later events of its account are skipped.
--checkpoint FILE makes a run resumable: a rerun with the same file never
resends an event that succeeded and retries everything that did not.

It works while serve runs on the same data. The summary line goes to stderr;
exit status 1 when any event failed, 2 for a bad command line, 130 when
interrupted. Every run (not --dry-run) is recorded in the audit log of
replays (GET /v1/replays).`,
		Example: `  # what would be sent?
  fcaudit replay --account fca_1OeX… --since 2026-11-01T00:00:00Z --to http://localhost:3000/webhooks --dry-run
  # re-deliver balance refreshes of November, resumable
  fcaudit replay --type 'financial_connections.account.refreshed_*' --since 2026-11-01T00:00:00Z \
      --until 2026-12-01T00:00:00Z --to https://example.com/stripe/webhooks \
      --signing-secret whsec_… --rate 50 --checkpoint nov.checkpoint
  # export as NDJSON
  fcaudit replay --account fca_1OeX… --to - > history.ndjson
  # rebuild the account_status read model
  fcaudit replay --projection account_status`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runReplay(cmd.Context(), f, cmd, o)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&o.accounts, "account", nil, "select events of this FC account (fca_…); repeatable")
	fl.StringArrayVar(&o.types, "type", nil, "select events of this type: full or short name (created), comma lists, '*' matching any run of characters (e.g. 'refreshed_*'); repeatable")
	fl.StringVar(&o.since, "since", "", "select events whose Stripe created time is at or after T (RFC 3339 or Unix seconds)")
	fl.StringVar(&o.until, "until", "", "select events whose Stripe created time is at or before T (RFC 3339 or Unix seconds)")
	fl.Uint64Var(&o.fromPosition, "from-position", 0, "select events after this global log position")
	fl.IntVar(&o.limit, "limit", 0, "select at most N events (0 = all)")
	fl.StringVar(&o.to, "to", "", "target: an http(s) URL to re-deliver to, or '-' for NDJSON on stdout")
	fl.StringVar(&o.projection, "projection", "", "target: rebuild this read model from the selection (e.g. account_status)")
	o.signingSecret.register(fl, "the receiver's Stripe signing secret (whsec_…); required with --to URL")
	fl.IntVar(&o.concurrency, "concurrency", replay.DefaultConcurrency, "requests in flight (events of one account are always sent one at a time)")
	fl.Float64Var(&o.rate, "rate", 0, "at most N requests per second, retries included (0 = unlimited)")
	fl.IntVar(&o.maxRetries, "max-retries", replay.DefaultMaxRetries, "retries of an event after a 5xx, 429 or network error (0 = none)")
	fl.DurationVar(&o.timeout, "timeout", 30*time.Second, "timeout of one request")
	fl.BoolVar(&o.dryRun, "dry-run", false, "print the plan (position, id, type, account per line) and send nothing")
	fl.StringVar(&o.checkpoint, "checkpoint", "", "progress file: resume from it if it exists, keep it up to date (--to URL only)")
	addSQLiteVFSFlag(cmd, f)
	return cmd
}

// replayRun is a validated command line.
type replayRun struct {
	sel    replay.Selection
	target replay.Target
	url    string // unredacted, --to URL only
	secret string // --to URL only
}

// targetKey ties a checkpoint to the exact target. For a URL it is a hash
// of the whole URL: two URLs that differ only in a (redacted) query value
// are different receivers, and the checkpoint file must not hold secrets.
func (rr *replayRun) targetKey() string {
	if rr.url != "" {
		sum := sha256.Sum256([]byte(rr.url))
		return "url-sha256:" + hex.EncodeToString(sum[:])
	}
	return rr.target.String()
}

func parseReplay(cmd *cobra.Command, o *replayOptions) (*replayRun, error) {
	rr := &replayRun{sel: replay.Selection{
		Accounts: o.accounts, Types: o.types, FromPosition: store.Position(o.fromPosition), Limit: o.limit,
	}}
	for _, a := range o.accounts {
		if strings.TrimSpace(a) == "" {
			return nil, flagError("account", errors.New("empty account id"))
		}
	}
	for _, t := range o.types {
		if strings.TrimSpace(t) == "" {
			return nil, flagError("type", errors.New("empty type"))
		}
	}
	// The same forms as the API's type= (fc.ParseTypes): a --type that
	// matches no known type is a usage error, not a run over nothing.
	types, err := fc.ParseTypes(o.types)
	if err != nil {
		return nil, flagError("type", err)
	}
	rr.sel.Types = types
	if o.since != "" {
		if rr.sel.Since, err = timearg.Parse(o.since); err != nil {
			return nil, flagError("since", err)
		}
	}
	if o.until != "" {
		if rr.sel.Until, err = timearg.Parse(o.until); err != nil {
			return nil, flagError("until", err)
		}
		// The zero time would read as "no bound", the epoch as 0 = no
		// bound in the store filter: say what it really selects.
		if rr.sel.Until.Unix() <= 0 {
			return nil, flagError("until", fmt.Errorf("%s is at or before the Unix epoch: no Stripe event was created by then, nothing would be selected", o.until))
		}
	}
	if !rr.sel.Since.IsZero() && !rr.sel.Until.IsZero() && rr.sel.Since.After(rr.sel.Until) {
		return nil, flagError("since", fmt.Errorf("%s is after --until %s", o.since, o.until))
	}
	if o.limit < 0 {
		return nil, flagError("limit", fmt.Errorf("must not be negative, got %d", o.limit))
	}

	switch {
	case o.to == "" && o.projection == "" && o.dryRun:
		// A plan needs no target: "what would a replay of this selection send?"
		rr.target = replay.Target{Kind: "plan"}
	case o.to == "" && o.projection == "":
		return nil, flagError("to", errors.New("a target is required: --to URL, --to - (NDJSON on stdout) or --projection NAME"))
	case o.to != "" && o.projection != "":
		return nil, flagError("projection", errors.New("cannot be combined with --to: pick one target"))
	case o.projection != "":
		if !validProjection(o.projection) {
			return nil, flagError("projection", fmt.Errorf("unknown read model %q (known: %s)", o.projection, strings.Join(projections.Names(), ", ")))
		}
		// A read model is a fold over all history: a narrowed rebuild
		// would replace every other account's row.
		if name := rr.sel.NarrowedBy(); name != "" {
			return nil, flagError(name, replay.ErrNotForProjection)
		}
		rr.target = replay.Target{Kind: "projection", Projection: o.projection}
	case o.to == "-":
		rr.target = replay.Target{Kind: "ndjson"}
	default:
		u, err := url.Parse(o.to)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, flagError("to", fmt.Errorf("%q: want an http:// or https:// URL, or '-' for stdout", replay.RedactURL(o.to)))
		}
		secrets, _, err := o.signingSecret.resolve()
		if err != nil {
			return nil, err
		}
		if len(secrets) == 0 && !o.dryRun {
			return nil, flagError("signing-secret", errors.New("required with --to URL (or --signing-secret-file, FCAUDIT_REPLAY_SIGNING_SECRET, FCAUDIT_REPLAY_SIGNING_SECRET_FILE): the receiver's Stripe signing secret"))
		}
		if len(secrets) > 0 {
			rr.secret = secrets[0]
		}
		rr.url = o.to
		rr.target = replay.Target{Kind: "http", URL: replay.RedactURL(o.to)}
	}

	if rr.target.Kind == "http" {
		if o.concurrency < 1 || o.concurrency > 1024 {
			return nil, flagError("concurrency", fmt.Errorf("must be from 1 to 1024, got %d", o.concurrency))
		}
		if o.rate < 0 || math.IsNaN(o.rate) || math.IsInf(o.rate, 0) {
			return nil, flagError("rate", fmt.Errorf("must be a non-negative number of events per second, got %v", o.rate))
		}
		if o.maxRetries < 0 {
			return nil, flagError("max-retries", fmt.Errorf("must not be negative, got %d", o.maxRetries))
		}
		if o.timeout <= 0 {
			return nil, flagError("timeout", fmt.Errorf("must be positive, got %s", o.timeout))
		}
	} else {
		// Delivery settings mean nothing for the other targets: say so
		// rather than ignore them.
		for _, name := range []string{"signing-secret", "signing-secret-file", "concurrency", "rate", "max-retries", "timeout", "checkpoint"} {
			if cmd.Flags().Changed(name) {
				return nil, flagError(name, errors.New("only applies to --to URL"))
			}
		}
	}
	return rr, nil
}

func runReplay(ctx context.Context, f *factory, cmd *cobra.Command, o *replayOptions) error {
	rr, err := parseReplay(cmd, o)
	if err != nil {
		return err
	}
	log, err := f.Logger()
	if err != nil {
		return err
	}
	if o.dryRun {
		st, err := f.OpenStore(ctx, storeOptions{readOnly: true})
		if err != nil {
			return err
		}
		defer st.Close()
		n, err := replay.WritePlan(ctx, st, rr.sel, f.out, replay.Options{Checkpoint: o.checkpoint, TargetKey: rr.targetKey()})
		if errors.Is(err, replay.ErrCheckpointMismatch) {
			return flagError("checkpoint", err)
		} else if err != nil {
			return err
		}
		if rr.target.Kind == "plan" {
			fmt.Fprintf(f.errOut, "dry run: %d events selected; nothing sent\n", n)
		} else {
			fmt.Fprintf(f.errOut, "dry run: %d events would be sent to %s; nothing sent\n", n, rr.target)
		}
		return nil
	}

	// Not read-only: the run appends its own audit record.
	st, err := f.OpenStore(ctx, storeOptions{})
	if err != nil {
		return err
	}
	defer st.Close()
	req := replay.RunRequest{
		Selection: rr.sel, Target: rr.target, URL: rr.url, Secret: rr.secret,
		Concurrency: o.concurrency, Rate: o.rate, MaxRetries: o.maxRetries, Timeout: o.timeout,
		Checkpoint: o.checkpoint, TargetKey: rr.targetKey(),
		Out: f.out, Progress: progress.New(f.errOut, isTerminal(f.errOut)), Logger: log,
	}
	if rr.target.Kind == "projection" {
		r, err := f.openReadModels(st, log)
		if err != nil {
			return err
		}
		defer r.Close()
		req.Rebuilder = r
	}
	run, err := replay.Run(ctx, st, req)
	if errors.Is(err, replay.ErrCheckpointMismatch) {
		return flagError("checkpoint", err) // nothing was sent: not a run
	}
	run.WriteSummary(f.errOut)
	if run.RecordErr != nil {
		if run.ExitCode == replay.ExitSucceeded {
			return fmt.Errorf("replay %s succeeded but its audit record was not written: %w", run.Record.ID, run.RecordErr)
		}
		fmt.Fprintf(f.errOut, "fcaudit: audit record of %s not written: %v\n", run.Record.ID, run.RecordErr)
	}
	if err != nil {
		return err
	}
	if run.ExitCode != replay.ExitSucceeded {
		return &exitError{code: run.ExitCode, msg: run.ExitMessage()}
	}
	return nil
}
