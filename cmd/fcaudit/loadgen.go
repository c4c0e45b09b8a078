package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/fcaudit/fcaudit/internal/loadgen"
)

type loadgenOptions struct {
	url        string
	secret     string
	requests   int
	senders    int
	accounts   int
	duplicates float64
	size       int
	timeout    time.Duration
	seed       uint64
	json       bool
}

func newLoadgenCommand(f *factory) *cobra.Command {
	o := &loadgenOptions{}
	cmd := &cobra.Command{
		Use:   "loadgen",
		Short: "Load-test a webhook endpoint with realistic signed FC events",
		Long: `loadgen sends N realistic, unique, correctly signed Stripe Financial Connections
events (about --size bytes each, spread over --accounts accounts) to a webhook
endpoint from C concurrent senders, checks every answer (200, JSON, the right
event id, "duplicate" as expected) and prints throughput and latency
percentiles. A fraction --duplicates of the requests re-send events the
target has already acknowledged; those must be answered "duplicate": true.

The events are generated and signed before the clock starts, so the generator
does not compete with the server for CPU during the measurement (memory:
about N × size). It stops after N requests. Exit status 1 when any request
failed.

Point it only at servers you run yourself. Defaults for --url and --secret
come from DATA_DIR/dev.json, written by 'serve --dev'.`,
		Example: `  fcaudit serve --dev &
  fcaudit loadgen -n 20000 -c 64
  fcaudit loadgen --url http://127.0.0.1:8080/webhooks/stripe --secret whsec_… -n 50000 --duplicates 0.1 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLoadgen(cmd.Context(), f, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.url, "url", "", "webhook endpoint; a URL without a path gets /webhooks/stripe (default: the dev server's, from DATA_DIR/dev.json)")
	fl.StringVar(&o.secret, "secret", "", "webhook signing secret (default: STRIPE_WEBHOOK_SECRET or STRIPE_WEBHOOK_SECRET_FILE, else DATA_DIR/dev.json)")
	fl.IntVarP(&o.requests, "requests", "n", loadgen.DefaultRequests, "number of requests to send")
	fl.IntVarP(&o.senders, "concurrency", "c", loadgen.DefaultConcurrency, "concurrent senders")
	fl.IntVar(&o.accounts, "accounts", loadgen.DefaultAccounts, "distinct FC accounts the events are spread over")
	fl.Float64Var(&o.duplicates, "duplicates", 0, "fraction (0 ≤ P < 1) of requests that re-send an already acknowledged event")
	fl.IntVar(&o.size, "size", loadgen.DefaultSize, "approximate body size in bytes")
	fl.DurationVar(&o.timeout, "timeout", loadgen.DefaultTimeout, "per-request timeout")
	fl.Uint64Var(&o.seed, "seed", 0, "seed for events reproducible byte for byte (0: random)")
	fl.BoolVar(&o.json, "json", false, "print the result as JSON")
	return cmd
}

func runLoadgen(ctx context.Context, f *factory, o *loadgenOptions) error {
	for _, c := range []struct {
		flag string
		v    int
	}{{"requests", o.requests}, {"concurrency", o.senders}, {"accounts", o.accounts}, {"size", o.size}} {
		if c.v <= 0 {
			return flagError(c.flag, fmt.Errorf("must be positive, got %d", c.v))
		}
	}
	if o.duplicates < 0 || o.duplicates >= 1 {
		return flagError("duplicates", fmt.Errorf("must be a fraction in [0, 1), got %v", o.duplicates))
	}
	if o.timeout <= 0 {
		return flagError("timeout", fmt.Errorf("must be positive, got %s", o.timeout))
	}
	if err := webhookTarget(f.dataDir, &o.url, &o.secret); err != nil {
		return err
	}
	u, err := url.Parse(o.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return flagError("url", fmt.Errorf("%q is not an http(s) URL", o.url))
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/webhooks/stripe"
	}

	fmt.Fprintf(f.errOut, "preparing %d signed events of ≈%d bytes…\n", o.requests, o.size)
	plan, err := loadgen.Prepare(ctx, loadgen.Config{
		Secret: o.secret, Requests: o.requests, Concurrency: o.senders, Accounts: o.accounts,
		Duplicates: o.duplicates, Size: o.size, Timeout: o.timeout, Seed: o.seed,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(f.errOut, "sending to %s with %d senders…\n", u, o.senders)
	res, err := plan.Run(ctx, u.String(), nil)
	if err != nil {
		return fmt.Errorf("load run interrupted after %d requests: %w", res.Requests, err)
	}
	if o.json {
		enc := json.NewEncoder(f.out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else if err := loadgen.WriteTable(f.out, res); err != nil {
		return err
	}
	if res.ErrorCount > 0 {
		return &exitError{code: exitFailure, msg: fmt.Sprintf("%d of %d requests failed", res.ErrorCount, res.Requests)}
	}
	return nil
}
