package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fcaudit/fcaudit/backfill"
	"github.com/fcaudit/fcaudit/internal/progress"
	"github.com/fcaudit/fcaudit/internal/timearg"
)

type backfillOptions struct {
	key     string
	account string
	since   string
	apiBase string
	dryRun  bool
	retries int
}

func newBackfillCommand(f *factory) *cobra.Command {
	o := &backfillOptions{}
	cmd := &cobra.Command{
		Use:   "backfill",
		Short: "Fetch missed Financial Connections events from Stripe's Events API",
		Long: `backfill lists the financial_connections.account.* events Stripe's Events API
still has (it keeps 30 days) and appends those the event log lacks, with
source "backfill" — the repair for webhooks that were never delivered.

It is idempotent with webhooks in both directions: an event id is stored once,
whichever arrives first, so running it again appends nothing. It prints, per
account, the events the log lacked, and the summary
"fetched N, already stored M, appended K". --dry-run prints the same report
and appends nothing.

The key (a secret or restricted key that can read events) comes from
--stripe-key or STRIPE_API_KEY; only its fingerprint is stored. backfill may
run while 'fcaudit serve' is running on the same data directory; serve picks
the appended events up.`,
		Example: `  STRIPE_API_KEY=rk_live_… fcaudit backfill --dry-run
  fcaudit backfill --stripe-key sk_test_… --since 72h
  fcaudit backfill --stripe-key sk_live_platform… --stripe-account acct_1Connected…   # a connected account
  fcaudit backfill --stripe-key sk_test_123 --api-base http://127.0.0.1:12111   # stripe-mock`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBackfill(cmd.Context(), f, o)
		},
	}
	fl := cmd.Flags()
	// No environment default in the flag itself: --help would print the key.
	fl.StringVar(&o.key, "stripe-key", "", "Stripe secret or restricted API key with read access to events (env STRIPE_API_KEY)")
	fl.StringVar(&o.account, "stripe-account", "", "Connect: list this connected account's events (acct_…), sent as the Stripe-Account header")
	fl.StringVar(&o.since, "since", "30d", "list events created since this time: a duration back from now (72h, 30d) or RFC 3339 / Unix seconds")
	fl.StringVar(&o.apiBase, "api-base", "", "Stripe API base URL (default https://api.stripe.com; e.g. a stripe-mock address)")
	fl.BoolVar(&o.dryRun, "dry-run", false, "report the missing events without appending them")
	fl.IntVar(&o.retries, "max-retries", backfill.DefaultMaxNetworkRetries, "stripe-go retries per request on network errors, 5xx and retryable 429s (0 = none)")
	addSQLiteVFSFlag(cmd, f)
	return cmd
}

func runBackfill(ctx context.Context, f *factory, o *backfillOptions) error {
	log, err := f.Logger()
	if err != nil {
		return err
	}
	if o.key == "" {
		o.key = os.Getenv("STRIPE_API_KEY")
	}
	if o.key == "" {
		return &usageError{errors.New("no Stripe API key: set --stripe-key or STRIPE_API_KEY")}
	}
	now := time.Now()
	since, err := timearg.ParseSince(o.since, now)
	if err != nil {
		return flagError("since", err)
	}
	if since.After(now) {
		return flagError("since", fmt.Errorf("%s is in the future", since.UTC().Format(time.RFC3339)))
	}
	if o.apiBase != "" {
		if u, err := url.Parse(o.apiBase); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return flagError("api-base", fmt.Errorf("%q is not an http(s) URL", o.apiBase))
		}
	}
	if o.account != "" && !strings.HasPrefix(o.account, "acct_") {
		return flagError("stripe-account", fmt.Errorf("%q is not a Stripe account id (acct_…)", o.account))
	}
	if o.retries < 0 {
		return flagError("max-retries", fmt.Errorf("must not be negative, got %d", o.retries))
	}
	retries := o.retries
	if retries == 0 {
		retries = -1 // backfill.Options: negative means none, 0 the default
	}

	st, err := f.OpenStore(ctx, storeOptions{})
	if err != nil {
		return err
	}
	defer st.Close()

	opts := backfill.Options{
		APIKey:            o.key,
		StripeAccount:     o.account,
		APIBase:           o.apiBase,
		Since:             since,
		DryRun:            o.dryRun,
		MaxNetworkRetries: retries,
		Logger:            log,
	}
	return backfill.RunAndReport(ctx, st, opts, f.out, progress.New(f.errOut, isTerminal(f.errOut)))
}

// minReconcileEvery keeps serve --reconcile-every from hammering the Events
// API (each run lists up to 30 days).
const minReconcileEvery = time.Minute

// startReconciler wires serve --reconcile-every: the key comes from
// STRIPE_API_KEY, the API base from STRIPE_API_BASE (default Stripe's). It
// runs the first reconciliation at once in the background; wait blocks until
// the loop has stopped after ctx is cancelled (call it before closing st).
func startReconciler(ctx context.Context, st backfill.Log, every time.Duration, log *slog.Logger) (rec *backfill.Reconciler, wait func(), err error) {
	if every < minReconcileEvery {
		return nil, nil, flagError("reconcile-every", fmt.Errorf("must be at least %s, got %s", minReconcileEvery, every))
	}
	key := os.Getenv("STRIPE_API_KEY")
	if key == "" {
		return nil, nil, &usageError{errors.New("--reconcile-every needs a Stripe API key in STRIPE_API_KEY")}
	}
	base := os.Getenv("STRIPE_API_BASE")
	if base != "" {
		if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, nil, &usageError{fmt.Errorf("STRIPE_API_BASE: %q is not an http(s) URL", base)}
		}
	}
	rec = backfill.NewReconciler(st, backfill.Options{APIKey: key, APIBase: base, Logger: log.With("component", "reconcile")}, every, 0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = rec.Run(ctx) // returns ctx.Err() at shutdown
	}()
	return rec, func() { <-done }, nil
}
