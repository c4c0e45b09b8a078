package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/progress"
)

// Exit statuses of a recorded run (RunOutcome.ExitCode, RunRecord.ExitCode).
const (
	ExitSucceeded = 0
	// ExitFailure: events failed, or the run stopped on an error.
	ExitFailure = 1
	// ExitInterrupted: the run was cancelled (128 + SIGINT).
	ExitInterrupted = 130
)

// RunStore is what a recorded run needs of the log: the selection to read
// and the audit log of replays to append to.
type RunStore interface {
	Reader
	Appender
}

// RunRequest is one recorded replay run (everything but --dry-run), in
// domain terms: the command has parsed and checked it.
type RunRequest struct {
	Selection Selection
	// Target's Kind is "http", "ndjson" or "projection"; its URL is the
	// redacted form recorded in the audit log.
	Target Target
	// URL (unredacted) and Secret are the http target's receiver and its
	// Stripe signing secret.
	URL, Secret string
	// Delivery settings of the http target. MaxRetries 0 means no retry
	// here (unlike Options); Checkpoint is the resumable-run file.
	Concurrency int
	Rate        float64
	MaxRetries  int
	Timeout     time.Duration
	Checkpoint  string
	// TargetKey ties the checkpoint to the exact target (see Options).
	TargetKey string
	// Out receives the ndjson target's records.
	Out io.Writer
	// Rebuilder rebuilds the projection target's read model.
	Rebuilder Rebuilder
	// Progress draws the run's progress line (nil: none).
	Progress *progress.Line
	Logger   *slog.Logger
	// Host and User are recorded in the audit record (defaults: this
	// machine and the current user).
	Host, User string
}

// RunOutcome is what a recorded run did and what the command should do:
// print the summary, exit with ExitCode.
type RunOutcome struct {
	// Record is the run's audit record, as appended (or as it would have
	// been when RecordErr is set).
	Record RunRecord
	Result Result
	// ExitCode is the command's exit status (Exit*).
	ExitCode int
	// RecordErr is set when the audit record could not be appended.
	RecordErr error
}

// Run runs req against st and appends its audit record to RunsStream, even
// when ctx was cancelled: auditors need to see interrupted runs too. The
// error is the run's own: ErrCheckpointMismatch before anything was sent
// (nothing recorded; a usage error), or what stopped the run (recorded
// with status error). Failed and interrupted runs are not errors; see
// RunOutcome.ExitCode. A narrowed selection with the projection target is
// refused the same way (ErrNotForProjection).
func Run(ctx context.Context, st RunStore, req RunRequest) (RunOutcome, error) {
	if req.Host == "" {
		req.Host, _ = os.Hostname()
	}
	if req.User == "" {
		req.User = CurrentUser()
	}
	rec := RunRecord{
		ID: NewRunID(), User: req.User, Host: req.Host,
		StartedAt: time.Now().UTC(), Selection: req.Selection, Target: req.Target,
	}
	var res Result
	var runErr error
	switch req.Target.Kind {
	case "http":
		rec.Settings = RunSettings{Concurrency: req.Concurrency, Rate: req.Rate, MaxRetries: req.MaxRetries,
			Timeout: req.Timeout.String(), Checkpoint: req.Checkpoint}
		res, runErr = deliverHTTP(ctx, st, req, rec.ID)
		if errors.Is(runErr, ErrCheckpointMismatch) {
			return RunOutcome{Record: rec, ExitCode: ExitFailure}, runErr // nothing was sent: not a run
		}
	case "ndjson":
		res.Replayed, runErr = WriteNDJSON(ctx, st, req.Selection, req.Out)
	case "projection":
		if f := req.Selection.NarrowedBy(); f != "" {
			// Refused before the read model is touched: not a run.
			return RunOutcome{Record: rec, ExitCode: ExitFailure}, fmt.Errorf("%s: %w", f, ErrNotForProjection)
		}
		name := req.Target.Projection
		res.Replayed, runErr = RebuildProjection(ctx, req.Rebuilder, req.Selection, name, func(n int) {
			req.Progress.Draw(fmt.Sprintf("rebuilding %s: %d events", name, n))
		})
		req.Progress.Finish()
	default:
		return RunOutcome{Record: rec, ExitCode: ExitFailure}, fmt.Errorf("replay: unknown target %q", req.Target.Kind)
	}
	if req.Target.Kind != "http" && runErr != nil && ctx.Err() != nil {
		res.Interrupted, runErr = true, nil
	}
	rec.FinishedAt = time.Now().UTC()
	rec.Counts = res
	rec.SetFailures(res)
	switch {
	case runErr != nil:
		rec.Status, rec.ExitCode, rec.Error = StatusError, ExitFailure, runErr.Error()
	case res.Interrupted:
		rec.Status, rec.ExitCode = StatusInterrupted, ExitInterrupted
	case res.Failed > 0:
		rec.Status, rec.ExitCode = StatusFailed, ExitFailure
	default:
		rec.Status, rec.ExitCode = StatusSucceeded, ExitSucceeded
	}
	out := RunOutcome{Record: rec, Result: res, ExitCode: rec.ExitCode}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	out.RecordErr = AppendRun(actx, st, rec)
	return out, runErr
}

// deliverHTTP re-delivers the selection to req.URL.
func deliverHTTP(ctx context.Context, st RunStore, req RunRequest, runID string) (Result, error) {
	maxRetries := req.MaxRetries
	if maxRetries == 0 {
		maxRetries = -1 // Options: 0 means the default
	}
	opts := Options{
		Concurrency: req.Concurrency, Rate: req.Rate, MaxRetries: maxRetries,
		Checkpoint: req.Checkpoint, TargetKey: req.TargetKey, TargetLabel: req.Target.URL,
		RunID: runID, Logger: req.Logger,
	}
	var bar *ProgressBar
	if req.Progress.TTY() {
		if head, err := st.Head(ctx); err == nil {
			bar = NewProgressBar(req.Progress, req.Selection.FromPosition, head, req.Selection.Limit)
			opts.Progress = bar.Update
		}
	}
	sender := &HTTPSender{URL: req.URL, Secret: req.Secret, RunID: runID,
		Client: NewHTTPClient(req.Concurrency), Timeout: req.Timeout}
	res, err := Deliver(ctx, st, req.Selection, sender, opts)
	if bar != nil {
		bar.Finish()
	}
	return res, err
}

// WriteSummary writes the run's human summary: counts and time, events an
// earlier run delivered, every failure, and the skipped ids (the first 20).
func (o RunOutcome) WriteSummary(w io.Writer) {
	res, rec := o.Result, o.Record
	fmt.Fprintf(w, "replayed %d events, %d failed, %d skipped in %s\n", res.Replayed, res.Failed, res.Skipped,
		rec.FinishedAt.Sub(rec.StartedAt).Round(time.Millisecond))
	if res.AlreadyDone > 0 {
		fmt.Fprintf(w, "%d events were already delivered by an earlier run (--checkpoint %s)\n", res.AlreadyDone, rec.Settings.Checkpoint)
	}
	for _, fl := range res.Failures {
		acct := fc.AccountOf(fl.Stream)
		if acct == "" {
			acct = fl.Stream
		}
		fmt.Fprintf(w, "failed: %s (position %d, %s, %d attempts): %s\n", fl.ID, fl.Position, acct, fl.Attempts, fl.Error)
	}
	if len(res.SkippedIDs) > 0 {
		const show = 20
		ids := res.SkippedIDs[:min(show, len(res.SkippedIDs))]
		more := ""
		if len(res.SkippedIDs) > show {
			more = fmt.Sprintf(" and %d more", len(res.SkippedIDs)-show)
		}
		fmt.Fprintf(w, "skipped (an earlier event of their account failed): %s%s\n", strings.Join(ids, ", "), more)
	}
}

// ExitMessage is the one-line reason for a non-zero ExitCode of a run that
// did not fail with an error ("" otherwise).
func (o RunOutcome) ExitMessage() string {
	switch o.Record.Status {
	case StatusInterrupted:
		atLeast := ""
		if o.Result.NotAttemptedAtLeast {
			atLeast = "at least "
		}
		msg := fmt.Sprintf("interrupted: %s%d events not sent", atLeast, o.Result.NotAttempted)
		if cp := o.Record.Settings.Checkpoint; cp != "" {
			msg += "; rerun the same command to resume from --checkpoint " + cp
		}
		return msg
	case StatusFailed:
		return fmt.Sprintf("%d events failed, %d skipped", o.Result.Failed, o.Result.Skipped)
	}
	return ""
}
