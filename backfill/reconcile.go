package backfill

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fcaudit/fcaudit/internal/logkey"
)

// Reconciler runs the backfill periodically inside serve (serve
// --reconcile-every) and keeps the last result for GET /v1/reconciliation
// and /metrics. It is safe for concurrent use.
type Reconciler struct {
	log      Log
	opts     Options
	every    time.Duration
	lookback time.Duration
	logger   *slog.Logger
	now      func() time.Time

	mu      sync.Mutex
	last    *Result
	running bool
	next    time.Time
}

// Result is one reconciliation run as GET /v1/reconciliation shows it.
type Result struct {
	StartedAt     time.Time `json:"started_at"`
	FinishedAt    time.Time `json:"finished_at"`
	Since         time.Time `json:"since"`
	OK            bool      `json:"ok"`
	Error         *string   `json:"error"`
	Fetched       int       `json:"fetched"`
	AlreadyStored int       `json:"already_stored"`
	Appended      int       `json:"appended"`
	// Gaps are the events this run found missing (and appended unless
	// the run failed first).
	Gaps []GapJSON `json:"gaps"`
}

// GapJSON is a Gap in the API's JSON.
type GapJSON struct {
	ID             string  `json:"id"`
	Type           string  `json:"type"`
	Created        int64   `json:"created"`
	Account        string  `json:"account"`
	ConnectAccount *string `json:"connect_account"`
	Appended       bool    `json:"appended"`
}

// NewReconciler returns a Reconciler that runs Run(lg, opts) every `every`,
// each time over the last `lookback` (RetentionPeriod when <= 0);
// opts.Since and opts.DryRun are ignored.
func NewReconciler(lg Log, opts Options, every, lookback time.Duration) *Reconciler {
	if lookback <= 0 {
		lookback = RetentionPeriod
	}
	r := &Reconciler{log: lg, opts: opts, every: every, lookback: lookback, logger: opts.Logger, now: opts.Now}
	r.opts.DryRun = false
	r.opts.Progress = nil
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// Run reconciles at once, then every interval, until ctx is cancelled; it
// returns ctx.Err(). A failed run is logged and recorded, never fatal.
func (r *Reconciler) Run(ctx context.Context) error {
	for {
		r.Once(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.mu.Lock()
		r.next = r.now().Add(r.every)
		r.mu.Unlock()
		t := time.NewTimer(r.every)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Once runs one reconciliation and records its result.
func (r *Reconciler) Once(ctx context.Context) Result {
	r.mu.Lock()
	r.running = true
	r.mu.Unlock()
	opts := r.opts
	start := r.now()
	opts.Since = start.Add(-r.lookback)
	rep, err := Run(ctx, r.log, opts)
	res := Result{
		StartedAt: start.UTC(), FinishedAt: r.now().UTC(), Since: rep.Since.UTC(), OK: err == nil,
		Fetched: rep.Fetched, AlreadyStored: rep.AlreadyStored, Appended: rep.Appended, Gaps: []GapJSON{},
	}
	if err != nil {
		msg := err.Error()
		res.Error = &msg
		r.logger.Warn("reconciliation with Stripe's Events API failed", logkey.Err(err), "appended", rep.Appended)
	} else {
		r.logger.Info("reconciliation with Stripe's Events API", "fetched", rep.Fetched,
			"already_stored", rep.AlreadyStored, "appended", rep.Appended)
	}
	for _, g := range rep.Gaps {
		gj := GapJSON{ID: g.ID, Type: g.Type, Created: g.Created, Account: g.Account, Appended: g.Appended}
		if g.ConnectAccount != "" {
			ca := g.ConnectAccount
			gj.ConnectAccount = &ca
		}
		res.Gaps = append(res.Gaps, gj)
	}
	r.mu.Lock()
	r.running = false
	r.last = &res
	r.mu.Unlock()
	return res
}

// Last returns the last finished run (false before the first one ends).
func (r *Reconciler) Last() (Result, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		return Result{}, false
	}
	return *r.last, true
}

// ReconcilerStatus is the Reconciler's state, as GET /v1/reconciliation
// shows it.
type ReconcilerStatus struct {
	// Interval is the time between runs.
	Interval time.Duration
	// Running is true while a run is in progress.
	Running bool
	// NextRunAt is when the next run starts (zero before the first ends).
	NextRunAt time.Time
	// LastRun is the last finished run (nil before the first one ends).
	LastRun *Result
}

// Status returns the interval, whether a run is in progress, when the next
// starts, and the last result.
func (r *Reconciler) Status() ReconcilerStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := ReconcilerStatus{Interval: r.every, Running: r.running, NextRunAt: r.next}
	if r.last != nil {
		l := *r.last
		s.LastRun = &l
	}
	return s
}

var (
	reconLastDesc = prometheus.NewDesc("fcaudit_reconciliation_last_run_timestamp_seconds",
		"When the last reconciliation with Stripe's Events API finished (Unix seconds).", nil, nil)
	reconOKDesc = prometheus.NewDesc("fcaudit_reconciliation_last_run_success",
		"1 if the last reconciliation succeeded, 0 if it failed.", nil, nil)
	reconEventsDesc = prometheus.NewDesc("fcaudit_reconciliation_last_run_events",
		"Events of the last reconciliation: fetched from Stripe, already stored, appended.", []string{"result"}, nil)
)

// Collector exports the last result to Prometheus (nothing before the first
// run ends).
func (r *Reconciler) Collector() prometheus.Collector { return reconCollector{r} }

type reconCollector struct{ r *Reconciler }

func (c reconCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- reconLastDesc
	ch <- reconOKDesc
	ch <- reconEventsDesc
}

func (c reconCollector) Collect(ch chan<- prometheus.Metric) {
	res, ok := c.r.Last()
	if !ok {
		return
	}
	success := 0.0
	if res.OK {
		success = 1
	}
	ch <- prometheus.MustNewConstMetric(reconLastDesc, prometheus.GaugeValue, float64(res.FinishedAt.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(reconOKDesc, prometheus.GaugeValue, success)
	ch <- prometheus.MustNewConstMetric(reconEventsDesc, prometheus.GaugeValue, float64(res.Fetched), "fetched")
	ch <- prometheus.MustNewConstMetric(reconEventsDesc, prometheus.GaugeValue, float64(res.AlreadyStored), "already_stored")
	ch <- prometheus.MustNewConstMetric(reconEventsDesc, prometheus.GaugeValue, float64(res.Appended), "appended")
}
