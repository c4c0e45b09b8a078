package backfill

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/fcaudit/fcaudit/internal/logkey"
	"github.com/fcaudit/fcaudit/internal/progress"
)

// RunAndReport is `fcaudit backfill`: it runs Run with opts, drawing the
// listing and appending progress on line (nil: none), and writes the
// report to w. When Run fails after appending some events, their report is
// written first (what was appended is real and stays) and the error says how
// far it got; when nothing was appended the error says so. A Since older
// than Stripe's retention is warned about on opts.Logger, not refused.
func RunAndReport(ctx context.Context, lg Log, opts Options, w io.Writer, line *progress.Line) error {
	now := time.Now()
	if opts.Now != nil {
		now = opts.Now()
	}
	if !opts.Since.IsZero() && opts.Since.Before(now.Add(-RetentionPeriod-time.Minute)) && opts.Logger != nil {
		opts.Logger.Warn("Stripe's Events API keeps 30 days of events; older ones cannot be backfilled", "since", opts.Since.UTC().Format(time.RFC3339))
	}
	if line.TTY() {
		opts.Progress = func(p Progress) {
			if p.Phase == "appending" {
				line.Draw(fmt.Sprintf("appending %d/%d", p.Appended, p.Missing))
				return
			}
			line.Draw(fmt.Sprintf("listing: %d events in %d pages, %d missing", p.Fetched, p.Pages, p.Missing))
		}
	}
	rep, err := Run(ctx, lg, opts)
	line.Finish()
	if err != nil {
		if rep.Appended > 0 {
			if werr := rep.WriteText(w); werr != nil && opts.Logger != nil {
				opts.Logger.Warn("write report", logkey.Err(werr))
			}
			return fmt.Errorf("backfill stopped after appending %d of %d missing events: %w", rep.Appended, len(rep.Gaps), err)
		}
		return fmt.Errorf("backfill: %w (nothing was appended)", err)
	}
	if err := rep.WriteText(w); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
