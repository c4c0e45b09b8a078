package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fcaudit/fcaudit/ingest"
)

// Namespace prefixes every fcaudit metric name.
const Namespace = "fcaudit"

// maxEventTypes bounds the distinct values of the "type" label. Only
// verified events are labelled (so only Stripe can choose the value), but a
// bound keeps a misconfigured endpoint that receives every Stripe event
// type from growing the series set without limit; further types count
// under "other".
const maxEventTypes = 64

// Bucket layouts. Webhook latency spans a sub-millisecond verify-and-dedupe
// answer to a multi-second stall of the store; commit sizes follow the
// writer's group-commit cap (512 by default).
var (
	latencyBuckets   = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	commitBuckets    = []float64{.0005, .001, .002, .004, .008, .016, .032, .064, .128, .256, .512, 1, 2}
	batchSizeBuckets = prometheus.ExponentialBuckets(1, 2, 11) // 1 … 1024
)

// Metrics is fcaudit's registry with its collectors. Build it with New; all
// methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	ingestTotal    *prometheus.CounterVec
	ingestDuration *prometheus.HistogramVec
	httpTotal      *prometheus.CounterVec
	httpDuration   *prometheus.HistogramVec
	commitEvents   prometheus.Histogram
	commitRequests prometheus.Histogram
	commitDuration prometheus.Histogram
	commitErrors   prometheus.Counter

	typesMu sync.RWMutex
	types   map[string]struct{}

	lag *lagCollector
}

// New returns a Metrics with its own registry holding the Go runtime and
// process collectors and every fcaudit metric.
func New() *Metrics {
	m := &Metrics{
		reg:   prometheus.NewRegistry(),
		types: make(map[string]struct{}),
		ingestTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "ingest", Name: "events_total",
			Help: "Webhook deliveries by outcome (stored, duplicate, signature_invalid, …) and Stripe event type (empty when the body was not verified).",
		}, []string{"outcome", "type"}),
		ingestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "ingest", Name: "duration_seconds",
			Help:    "Time to verify, parse and durably store (or reject) one webhook delivery, by outcome.",
			Buckets: latencyBuckets,
		}, []string{"outcome"}),
		httpTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests by route and status code.",
		}, []string{"route", "status"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "http", Name: "request_duration_seconds",
			Help:    "HTTP request latency by route, from routing to the handler's return.",
			Buckets: latencyBuckets,
		}, []string{"route"}),
		commitEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "store", Name: "commit_batch_events",
			Help:    "Events inserted per group commit of the embedded store.",
			Buckets: batchSizeBuckets,
		}),
		commitRequests: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "store", Name: "commit_batch_requests",
			Help:    "Append calls served per group commit of the embedded store (each is one acknowledged webhook).",
			Buckets: batchSizeBuckets,
		}),
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "store", Name: "commit_duration_seconds",
			Help:    "Duration of one group commit of the embedded store, BEGIN to the end of COMMIT (includes the fsync).",
			Buckets: commitBuckets,
		}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "store", Name: "commit_errors_total",
			Help: "Group commits of the embedded store that failed (their appends were answered store_unavailable).",
		}),
		lag: newLagCollector(),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.ingestTotal, m.ingestDuration, m.httpTotal, m.httpDuration,
		m.commitEvents, m.commitRequests, m.commitDuration, m.commitErrors,
		m.lag,
	)
	return m
}

// Registry returns the underlying registry, for packages that add their
// own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveIngest records one webhook delivery; it fits
// ingest.ServiceOptions.Observe.
func (m *Metrics) ObserveIngest(o ingest.Outcome) {
	m.ingestTotal.WithLabelValues(o.Result, m.typeLabel(o.EventType)).Inc()
	m.ingestDuration.WithLabelValues(o.Result).Observe(o.Duration.Seconds())
}

// typeLabel returns typ, or "other" once maxEventTypes distinct types have
// been seen.
func (m *Metrics) typeLabel(typ string) string {
	m.typesMu.RLock()
	_, ok := m.types[typ]
	n := len(m.types)
	m.typesMu.RUnlock()
	if ok {
		return typ
	}
	if n >= maxEventTypes {
		return "other"
	}
	m.typesMu.Lock()
	defer m.typesMu.Unlock()
	if len(m.types) >= maxEventTypes {
		return "other"
	}
	m.types[typ] = struct{}{}
	return typ
}

// ObserveRequest records one HTTP request; it fits api.Config.ObserveRequest.
// route is the server's route name (never the raw path, which would let
// clients create series).
func (m *Metrics) ObserveRequest(route string, status int, d time.Duration) {
	m.httpTotal.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.httpDuration.WithLabelValues(route).Observe(d.Seconds())
}

// ObserveCommit records one group commit of the embedded store: how many
// Append calls and events it carried, how long it took, and whether it
// failed (a failed commit's sizes are not observed, since nothing was
// stored). cmd/fcaudit adapts sqlite.Options.OnCommit to it.
func (m *Metrics) ObserveCommit(requests, events int, d time.Duration, err error) {
	m.commitDuration.Observe(d.Seconds())
	if err != nil {
		m.commitErrors.Inc()
		return
	}
	m.commitRequests.Observe(float64(requests))
	m.commitEvents.Observe(float64(events))
}
