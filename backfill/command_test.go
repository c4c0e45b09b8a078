package backfill_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/backfill"
	"github.com/fcaudit/fcaudit/backfill/backfilltest"
	"github.com/fcaudit/fcaudit/internal/progress"
	"github.com/fcaudit/fcaudit/store"
)

// A failure after some appends writes their report first and says how far
// the run got; a failure before any says nothing was appended.
func TestRunAndReportFailures(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	srv := backfilltest.New(t, apiKey)
	srv.Add(timeline(t, 6, "fca_1HHHHHHHHHHHHHHHHHHHHHHH")...)
	var out bytes.Buffer
	err := backfill.RunAndReport(ctx, &failingLog{Store: st, n: 4}, opts(srv), &out, nil)
	if !errors.Is(err, store.ErrUnavailable) || !strings.HasPrefix(err.Error(), "backfill stopped after appending 3 of 6 missing events: ") {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(out.String(), "appended 3") {
		t.Errorf("report of the appended events:\n%s", out.String())
	}

	out.Reset()
	o := opts(srv)
	o.APIKey = "sk_test_wrong"
	err = backfill.RunAndReport(ctx, st, o, &out, nil)
	if !errors.Is(err, backfill.ErrKeyRejected) || !strings.HasSuffix(err.Error(), "(nothing was appended)") || out.Len() != 0 {
		t.Errorf("err = %v, report %q", err, out.String())
	}
}

// On a terminal the listing and appending progress is redrawn in place and
// cleared before the report; elsewhere nothing is drawn.
func TestRunAndReportProgress(t *testing.T) {
	for _, tty := range []bool{true, false} {
		st := openStore(t)
		srv := backfilltest.New(t, apiKey)
		srv.Add(timeline(t, 3, "fca_1IIIIIIIIIIIIIIIIIIIIIII")...)
		var out, errOut bytes.Buffer
		if err := backfill.RunAndReport(context.Background(), st, opts(srv), &out, progress.New(&errOut, tty)); err != nil {
			t.Fatal(err)
		}
		got := errOut.String()
		if !tty {
			if got != "" {
				t.Errorf("not a terminal: progress %q", got)
			}
			continue
		}
		for _, want := range []string{"\r\033[Klisting: 3 events in 1 pages, 3 missing", "\r\033[Kappending 3/3"} {
			if !strings.Contains(got, want) {
				t.Errorf("progress %q lacks %q", got, want)
			}
		}
		if !strings.HasSuffix(got, "\r\033[K") || strings.Contains(got, "\n") {
			t.Errorf("progress %q must end on a cleared line", got)
		}
	}
}

// A --since beyond Stripe's retention is warned about, and still run.
func TestRunAndReportWarnsBeyondRetention(t *testing.T) {
	st := openStore(t)
	srv := backfilltest.New(t, apiKey)
	var logs bytes.Buffer
	o := opts(srv)
	o.Since = now.Add(-backfill.RetentionPeriod - time.Hour)
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	if err := backfill.RunAndReport(context.Background(), st, o, &bytes.Buffer{}, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "keeps 30 days") {
		t.Errorf("logs %q", logs.String())
	}
}
