package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/spf13/cobra"

	"github.com/fcaudit/fcaudit/api"
	"github.com/fcaudit/fcaudit/audit"
	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/metrics"
	"github.com/fcaudit/fcaudit/replay"
	"github.com/fcaudit/fcaudit/store/sqlite"
	"github.com/fcaudit/fcaudit/translog/checkpoint"
)

type serveOptions struct {
	listen       string
	secrets      []string
	tokens       []string
	tolerance    time.Duration
	dev          bool
	maxBodyBytes int64
	drainTimeout time.Duration
	pprof        string
	// reconcileEvery > 0 runs the backfill reconciliation in the background.
	reconcileEvery time.Duration
	// checkpointInterval and logKeyFile drive checkpoint publication (log.go).
	checkpointInterval time.Duration
	logKeyFile         string
}

func newServeCommand(f *factory) *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run webhook ingest, projections and the query API",
		Long: `serve runs the Stripe webhook endpoint (POST /webhooks/stripe), the projections
and the query API (/v1) in one process.

A webhook is answered 200 only after it is durably stored. Without a webhook
secret serve refuses to start; --dev generates one (and an API token), prints
them and saves them in DATA_DIR/dev.json for 'fcaudit trigger'.`,
		Example: `  fcaudit serve --dev
  STRIPE_WEBHOOK_SECRET=whsec_… FCAUDIT_API_TOKENS=t1 fcaudit serve --listen 0.0.0.0:8080
  fcaudit serve --webhook-secret whsec_new --webhook-secret whsec_old --api-token t1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), f, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.listen, "listen", envOr("FCAUDIT_LISTEN", "127.0.0.1:8080"), "address to listen on (env FCAUDIT_LISTEN)")
	fl.StringArrayVar(&o.secrets, "webhook-secret", envList("STRIPE_WEBHOOK_SECRET"), "Stripe endpoint signing secret; repeat during a secret roll (env STRIPE_WEBHOOK_SECRET, comma-separated)")
	fl.StringArrayVar(&o.tokens, "api-token", envList("FCAUDIT_API_TOKENS"), "bearer token accepted by /v1; repeatable (env FCAUDIT_API_TOKENS, comma-separated)")
	tol := 5 * time.Minute
	if v := os.Getenv("FCAUDIT_TOLERANCE"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			tol = d
		}
	}
	fl.DurationVar(&o.tolerance, "tolerance", tol, "accepted age (and future skew) of a webhook signature timestamp (env FCAUDIT_TOLERANCE)")
	fl.BoolVar(&o.dev, "dev", false, "development mode: generate a webhook secret and API token, save them in DATA_DIR/dev.json, listen on loopback only")
	fl.Int64Var(&o.maxBodyBytes, "max-body-bytes", api.DefaultMaxBodyBytes, "largest accepted webhook body")
	fl.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "how long shutdown waits for in-flight requests")
	fl.StringVar(&o.pprof, "pprof", "", "serve net/http/pprof on this separate address (e.g. 127.0.0.1:6060); off by default")
	fl.DurationVar(&o.checkpointInterval, "checkpoint-interval", 10*time.Second, "publish a signed checkpoint of the log's Merkle tree at most this often (and at shutdown) when it has grown")
	fl.StringVar(&o.logKeyFile, logKeyFlag, os.Getenv("FCAUDIT_LOG_KEY_FILE"), "checkpoint signing key (note signer format); default DATA_DIR/"+checkpoint.DefaultKeyFile+", generated when missing (env FCAUDIT_LOG_KEY_FILE)")
	fl.DurationVar(&o.reconcileEvery, "reconcile-every", 0, "run 'fcaudit backfill' against Stripe's Events API this often (e.g. 6h; key from STRIPE_API_KEY); 0 = off")
	return cmd
}

func runServe(ctx context.Context, f *factory, o *serveOptions) error {
	log, err := f.Logger()
	if err != nil {
		return err
	}
	if v := os.Getenv("FCAUDIT_TOLERANCE"); v != "" {
		if _, err := time.ParseDuration(v); err != nil {
			return &usageError{fmt.Errorf("FCAUDIT_TOLERANCE: %q is not a duration (e.g. 5m)", v)}
		}
	}
	if o.tolerance <= 0 {
		return flagError("tolerance", fmt.Errorf("must be positive, got %s", o.tolerance))
	}
	if o.checkpointInterval <= 0 {
		return flagError("checkpoint-interval", fmt.Errorf("must be positive, got %s", o.checkpointInterval))
	}
	if o.maxBodyBytes <= 0 {
		return flagError("max-body-bytes", fmt.Errorf("must be positive"))
	}
	if o.dev {
		host, _, err := net.SplitHostPort(o.listen)
		if err != nil {
			return flagError("listen", err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return flagError("listen", fmt.Errorf("--dev listens on loopback only, got %s", o.listen))
		}
		dc, created, err := ensureDevConfig(f.dataDir, "http://"+o.listen+"/webhooks/stripe")
		if err != nil {
			return fmt.Errorf("dev credentials: %w", err)
		}
		o.secrets = append(o.secrets, dc.WebhookSecret)
		o.tokens = append(o.tokens, dc.APIToken)
		verb := "reusing"
		if created {
			verb = "generated"
		}
		fmt.Fprintf(f.errOut, "dev mode (%s %s):\n  webhook secret: %s\n  API token:      %s\n",
			verb, strings.TrimPrefix(f.dataDir+"/"+devConfigFile, "./"), dc.WebhookSecret, dc.APIToken)
	}
	if len(o.secrets) == 0 {
		return &usageError{errors.New("no webhook secret: set --webhook-secret or STRIPE_WEBHOOK_SECRET (or try --dev)")}
	}
	if len(o.tokens) == 0 {
		log.Warn("no API token configured (--api-token / FCAUDIT_API_TOKENS): every /v1 request will get 401")
	}
	verifier, err := ingest.NewVerifier(o.secrets, o.tolerance)
	if err != nil {
		return flagError("webhook-secret", err)
	}

	if o.pprof != "" {
		stopPprof, err := startPprof(o.pprof, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	m := metrics.New()
	st, err := f.OpenStore(ctx, storeOptions{onCommit: func(c sqlite.CommitStats) { m.ObserveCommit(c.Requests, c.Events, c.Duration, c.Err) }})
	if err != nil {
		return err
	}
	defer st.Close()
	tlog, stopCheckpoints, err := startCheckpoints(ctx, f, st, o, log)
	if err != nil {
		return err
	}
	defer stopCheckpoints()
	proj, err := startProjections(f, st, log)
	if err != nil {
		return err
	}
	defer proj.Stop()

	m.RegisterLag(func() (out []metrics.LagSample) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		sts, _ := proj.Status(ctx) // on error the lag series are absent from this scrape
		for _, s := range sts {
			out = append(out, metrics.LagSample{Projection: s.Name, Events: uint64(s.EventsBehind), Seconds: s.SecondsBehind})
		}
		return out
	})
	var extraRoutes []func(*mux.Router, api.Helpers)
	if o.reconcileEvery != 0 {
		rec, wait, err := startReconciler(ctx, st, o.reconcileEvery, log)
		if err != nil {
			return err
		}
		defer wait() // the loop ends with ctx; a run cut short keeps what it appended
		m.Registry().MustRegister(rec.Collector())
		extraRoutes = append(extraRoutes, rec.Routes())
	}
	svc := ingest.NewService(verifier, st, ingest.ServiceOptions{Logger: log, Observe: m.ObserveIngest})
	srv := api.NewServer(api.Config{
		Routes:         append([]func(*mux.Router, api.Helpers){proj.Routes(), replay.Routes(st), audit.Routes(st, verifier)}, extraRoutes...),
		Store:          st,
		Ingest:         svc,
		Log:            tlog,
		Tokens:         o.tokens,
		Ready:          st.Ping,
		MaxBodyBytes:   o.maxBodyBytes,
		Logger:         log,
		Metrics:        m.Handler(),
		ObserveRequest: m.ObserveRequest,
	})
	if err := srv.Open(o.listen); err != nil {
		return err
	}
	log.Info("fcaudit serving", "addr", srv.Addr(), "webhook", "http://"+srv.Addr()+"/webhooks/stripe",
		"secrets", len(o.secrets), "tokens", len(o.tokens))

	<-ctx.Done()
	log.Info("shutting down: draining in-flight requests")
	drainCtx, cancel := context.WithTimeout(context.Background(), o.drainTimeout)
	defer cancel()
	if err := srv.Close(drainCtx); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	stopCheckpoints() // the last checkpoint covers every acknowledged webhook
	proj.Stop()       // before the store closes
	if err := st.Close(); err != nil {
		return fmt.Errorf("close event store: %w", err)
	}
	log.Info("stopped")
	return nil
}
