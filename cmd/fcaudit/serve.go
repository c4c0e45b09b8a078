package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/fcaudit/fcaudit/api"
	"github.com/fcaudit/fcaudit/audit"
	"github.com/fcaudit/fcaudit/backfill"
	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/internal/logkey"
	"github.com/fcaudit/fcaudit/metrics"
	"github.com/fcaudit/fcaudit/replay"
	"github.com/fcaudit/fcaudit/store/sqlite"
	"github.com/fcaudit/fcaudit/translog/checkpoint"
)

type serveOptions struct {
	listen string
	// webhookSecrets and apiTokens: flags, environment or files (the files
	// are re-read on SIGHUP).
	webhookSecrets secretSource
	apiTokens      secretSource
	tolerance      time.Duration
	dev            bool
	maxBodyBytes   int64
	maxConns       int
	maxInflight    int64
	drainTimeout   time.Duration
	pprof          string
	// reconcileEvery > 0 runs the backfill reconciliation in the background.
	reconcileEvery time.Duration
	console        bool
	trustProxy     bool
	// checkpointInterval and logKeyFile drive checkpoint publication (log.go).
	checkpointInterval time.Duration
	logKeyFile         string
}

func newServeCommand(f *factory) *cobra.Command {
	o := &serveOptions{
		webhookSecrets: secretSource{name: "webhook-secret", env: "STRIPE_WEBHOOK_SECRET", list: true},
		apiTokens:      secretSource{name: "api-token", env: "FCAUDIT_API_TOKENS", list: true},
	}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run webhook ingest, projections and the query API",
		Long: `serve runs the Stripe webhook endpoint (POST /webhooks/stripe), the projections
and the query API (/v1) in one process.

A webhook is answered 200 only after it is durably stored. Without a webhook
secret serve refuses to start; --dev generates one (and an API token), prints
them and saves them in DATA_DIR/dev.json for 'fcaudit trigger'.

Secrets can come from files (--webhook-secret-file, --api-token-file, or
STRIPE_WEBHOOK_SECRET_FILE / FCAUDIT_API_TOKENS_FILE, as Docker and Kubernetes
mount them): one secret per line, blank lines and # comments ignored. On
SIGHUP serve re-reads those files and uses what they hold from then on, so a
secret is rotated without a restart: add the new line, reload, switch the
sender over, remove the old line, reload. A file that cannot be read or holds
no secret is reported and the secrets in use are kept.`,
		Example: `  fcaudit serve --dev
  STRIPE_WEBHOOK_SECRET=whsec_… FCAUDIT_API_TOKENS=t1 fcaudit serve --listen 0.0.0.0:8080
  fcaudit serve --webhook-secret whsec_new --webhook-secret whsec_old --api-token t1
  fcaudit serve --webhook-secret-file /run/secrets/stripe_whsec --api-token-file /run/secrets/fcaudit_tokens
  kill -HUP $(pidof fcaudit)   # after editing a secret file`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), f, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.listen, "listen", envOr("FCAUDIT_LISTEN", "127.0.0.1:8080"), "address to listen on (env FCAUDIT_LISTEN)")
	o.webhookSecrets.register(fl, "Stripe endpoint signing secret; give both during a secret roll")
	o.apiTokens.register(fl, "bearer token accepted by /v1")
	tol := 5 * time.Minute
	if v := os.Getenv("FCAUDIT_TOLERANCE"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			tol = d
		}
	}
	fl.DurationVar(&o.tolerance, "tolerance", tol, "accepted age (and future skew) of a webhook signature timestamp (env FCAUDIT_TOLERANCE)")
	fl.BoolVar(&o.dev, "dev", false, "development mode: generate a webhook secret and API token, save them in DATA_DIR/dev.json, listen on loopback only")
	fl.Int64Var(&o.maxBodyBytes, "max-body-bytes", api.DefaultMaxBodyBytes, "largest accepted webhook body")
	fl.IntVar(&o.maxConns, "max-connections", 0, "most client connections open at once; at the limit the oldest idle one is closed (0 = the file descriptor limit less 128)")
	fl.Int64Var(&o.maxInflight, "max-inflight-bytes", api.DefaultMaxInflightBytes, "most webhook body bytes being received at once; beyond it webhooks get 503 unread (Stripe retries)")
	fl.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "how long shutdown waits for in-flight requests")
	fl.StringVar(&o.pprof, "pprof", "", "serve net/http/pprof on this separate loopback address (e.g. 127.0.0.1:6060); off by default")
	fl.DurationVar(&o.checkpointInterval, "checkpoint-interval", 10*time.Second, "publish a signed checkpoint of the log's Merkle tree at most this often (and at shutdown) when it has grown")
	fl.StringVar(&o.logKeyFile, logKeyFlag, os.Getenv("FCAUDIT_LOG_KEY_FILE"), "checkpoint signing key (note signer format); default DATA_DIR/"+checkpoint.DefaultKeyFile+", generated when missing (env FCAUDIT_LOG_KEY_FILE)")
	fl.DurationVar(&o.reconcileEvery, "reconcile-every", 0, "run 'fcaudit backfill' against Stripe's Events API this often (e.g. 6h; key from STRIPE_API_KEY); 0 = off")
	addSQLiteVFSFlag(cmd, f)
	fl.BoolVar(&o.console, "console", true, "serve the web console under /console/ (sign in with an API token)")
	fl.BoolVar(&o.trustProxy, "trust-proxy", false, "believe X-Forwarded-Proto and X-Forwarded-For from a TLS-terminating proxy in front (the console's Secure cookies and sign-in rate limits)")
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
	if o.pprof != "" {
		if err := loopbackOnly(o.pprof); err != nil {
			return flagError("pprof", err)
		}
	}
	if o.maxConns < 0 {
		return flagError("max-connections", fmt.Errorf("must be positive (or 0 for the default), got %d", o.maxConns))
	}
	if o.maxConns == 0 {
		o.maxConns = api.DefaultMaxConnections()
	}
	if o.maxInflight <= 0 {
		return flagError("max-inflight-bytes", fmt.Errorf("must be positive, got %d", o.maxInflight))
	}
	secrets, secretFile, err := o.webhookSecrets.resolve()
	if err != nil {
		return err
	}
	tokens, tokenFile, err := o.apiTokens.resolve()
	if err != nil {
		return err
	}
	// devSecret and devToken stay accepted across reloads of the files.
	var devSecret, devToken []string
	if o.dev {
		host, _, err := net.SplitHostPort(o.listen)
		if err != nil {
			return flagError("listen", err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return flagError("listen", fmt.Errorf("--dev listens on loopback only, got %s", o.listen))
		}
		dc, created, err := ensureDevConfig(f.dataDir)
		if err != nil {
			return fmt.Errorf("dev credentials: %w", err)
		}
		devSecret, devToken = []string{dc.WebhookSecret}, []string{dc.APIToken}
		verb := "reusing"
		if created {
			verb = "generated"
		}
		fmt.Fprintf(f.errOut, "dev mode (%s %s):\n  webhook secret: %s\n  API token:      %s\n",
			verb, strings.TrimPrefix(f.dataDir+"/"+devConfigFile, "./"), dc.WebhookSecret, dc.APIToken)
	}
	secrets, tokens = append(secrets, devSecret...), append(tokens, devToken...)
	if len(secrets) == 0 {
		return &usageError{errors.New("no webhook secret: set --webhook-secret or STRIPE_WEBHOOK_SECRET (or a file: --webhook-secret-file, STRIPE_WEBHOOK_SECRET_FILE; or try --dev)")}
	}
	if len(tokens) == 0 {
		log.Warn("no API token configured (--api-token / FCAUDIT_API_TOKENS, or a token file): every /v1 request will get 401")
	}
	verifier, err := ingest.NewVerifier(secrets, o.tolerance)
	if err != nil {
		return flagError("webhook-secret", err)
	}
	tokenSet := api.NewTokenSet(tokens)
	stopReload := reloadOnSIGHUP(secretReload{
		webhookSecrets: &o.webhookSecrets, secretFile: secretFile, devSecret: devSecret, verifier: verifier,
		apiTokens: &o.apiTokens, tokenFile: tokenFile, devToken: devToken, tokens: tokenSet, log: log,
	})
	defer stopReload()

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
	// A backend with a per-append size limit (EventStoreDB) caps the body
	// limit, so a body ingest accepts is never refused by the store.
	if lim, ok := st.(interface{ MaxBodySize() int64 }); ok && lim.MaxBodySize() < o.maxBodyBytes {
		log.Info("webhook body limit lowered to what the event store takes in one append", "max_body_bytes", lim.MaxBodySize())
		o.maxBodyBytes = lim.MaxBodySize()
	}
	if fe, ok := st.(interface{ ForeignEvents() uint64 }); ok {
		m.Registry().MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "fcaudit_store_foreign_events_skipped_total",
			Help: "Events under fcaudit's stream prefixes that are not fcaudit events, skipped by reads of the log (EventStoreDB).",
		}, func() float64 { return float64(fe.ForeignEvents()) }))
	}
	defer startLogBuilder(ctx, st, log)()
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
	var reconciliation api.Reconciliation // nil: no GET /v1/reconciliation
	var reconciler *backfill.Reconciler   // nil unless --reconcile-every (the console's system page)
	if o.reconcileEvery != 0 {
		rec, wait, err := startReconciler(ctx, st, o.reconcileEvery, log)
		if err != nil {
			return err
		}
		defer wait() // the loop ends with ctx; a run cut short keeps what it appended
		m.Registry().MustRegister(rec.Collector())
		reconciliation = rec
		reconciler = rec
	}
	cons, err := newConsole(f, o, st, proj.Runner, verifier, tokenSet, reconciler, log)
	if err != nil {
		return err
	}
	svc := ingest.NewService(verifier, st, ingest.ServiceOptions{Logger: log, Observe: m.ObserveIngest})
	srv := api.NewServer(api.Config{
		Accounts:         proj.Runner,
		Replays:          replay.NewRunLog(st),
		Verify:           audit.NewAccountChecker(st, verifier),
		Reconciliation:   reconciliation,
		Store:            st,
		Ingest:           svc,
		TokenSet:         tokenSet,
		Ready:            st.Ping,
		MaxBodyBytes:     o.maxBodyBytes,
		MaxInflightBytes: o.maxInflight,
		MaxConnections:   o.maxConns,
		Logger:           log,
		Metrics:          m.Handler(),
		ObserveRequest:   m.ObserveRequest,
		Console:          cons,
		Log:              tlog,
	})
	m.RegisterConnections(func() metrics.ConnSample {
		c := srv.ConnStats()
		return metrics.ConnSample{Open: c.Open, Shed: c.Shed, AcceptErrors: c.AcceptErrors,
			InflightBodyBytes: c.InflightBodyBytes, Busy: c.Busy}
	})
	// dev.json names this server's URL before it accepts a request, so a
	// trigger sent once it answers finds it; with port 0 the URL is known
	// only after binding (and is logged only after it is recorded).
	claimDev := func(url string) {
		recorded, err := claimDevURL(ctx, f.dataDir, url)
		if err != nil {
			log.Error("dev.json: cannot record this server's URL; pass --url to trigger", logkey.Err(err))
		} else if recorded != url {
			log.Warn("another dev server on this data directory is alive: dev.json keeps its URL, so trigger and loadgen default to it; pass --url "+url+" to reach this one",
				"dev_json_url", recorded)
		}
	}
	devURLClaimed := false
	if _, port, _ := net.SplitHostPort(o.listen); o.dev && port != "0" {
		claimDev("http://" + o.listen + "/webhooks/stripe")
		devURLClaimed = true
	}
	if err := srv.Open(o.listen); err != nil {
		return err
	}
	webhookURL := "http://" + srv.Addr() + "/webhooks/stripe"
	if o.dev && !devURLClaimed {
		claimDev(webhookURL)
	}
	log.Info("fcaudit serving", "addr", srv.Addr(), "webhook", webhookURL,
		"secrets", len(secrets), "tokens", tokenSet.Len(),
		"max_connections", o.maxConns, "max_inflight_bytes", o.maxInflight)

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

// secretReload is what serve re-reads on SIGHUP: the secret files, and the
// sets they feed.
type secretReload struct {
	webhookSecrets *secretSource
	secretFile     string   // "" when the secrets did not come from a file
	devSecret      []string // --dev's, kept across reloads
	verifier       *ingest.Verifier

	apiTokens *secretSource
	tokenFile string
	devToken  []string
	tokens    *api.TokenSet

	log *slog.Logger
}

// reloadOnSIGHUP re-reads the secret files on every SIGHUP until stop is
// called.
func reloadOnSIGHUP(r secretReload) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-ch:
				r.reload()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
		<-finished
	}
}

// reload re-reads the files. A file that cannot be read, or holds no
// secret, is reported and its set keeps what it had: a botched edit must
// not lock Stripe or the API's users out. Its errors never hold a secret.
func (r secretReload) reload() {
	if r.secretFile == "" && r.tokenFile == "" {
		r.log.Warn("SIGHUP: nothing to reload (no --webhook-secret-file or --api-token-file)")
		return
	}
	ok := true
	if r.secretFile != "" {
		secrets, err := r.webhookSecrets.read(r.secretFile)
		if err == nil {
			err = r.verifier.SetSecrets(append(secrets, r.devSecret...))
		}
		if err != nil {
			ok = false
			r.log.Error("SIGHUP: webhook secrets not reloaded; keeping the ones in use", logkey.Err(err))
		}
	}
	if r.tokenFile != "" {
		tokens, err := r.apiTokens.read(r.tokenFile)
		if err != nil {
			ok = false
			r.log.Error("SIGHUP: API tokens not reloaded; keeping the ones in use", logkey.Err(err))
		} else {
			r.tokens.Set(append(tokens, r.devToken...))
		}
	}
	if ok {
		r.log.Info("secrets reloaded", "secrets", len(r.verifier.Fingerprints()),
			"secret_fingerprints", r.verifier.Fingerprints(), "tokens", r.tokens.Len())
	}
}
