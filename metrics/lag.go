package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// LagSample is one projection's distance behind the event log.
type LagSample struct {
	// Projection names the read model (the "projection" label).
	Projection string
	// Events is how many stored events the projection has not applied yet.
	Events uint64
	// Seconds is how old the oldest unapplied event is (0 when caught up).
	Seconds float64
}

var (
	lagEventsDesc = prometheus.NewDesc(Namespace+"_projection_lag_events",
		"Events stored in the log that the projection has not applied yet.", []string{"projection"}, nil)
	lagSecondsDesc = prometheus.NewDesc(Namespace+"_projection_lag_seconds",
		"Age of the oldest event the projection has not applied yet (0 when caught up).", []string{"projection"}, nil)
)

// lagCollector asks its sources for samples at scrape time, so lag costs
// nothing between scrapes and is never stale.
type lagCollector struct {
	mu      sync.Mutex
	sources []func() []LagSample
}

func newLagCollector() *lagCollector { return &lagCollector{} }

// RegisterLag adds a source of projection lag samples, called on every
// scrape (from the scraping goroutine: it must be safe for concurrent use
// and quick). Sources may be added at any time; a projection name reported
// by two sources is exported once (the first).
func (m *Metrics) RegisterLag(source func() []LagSample) {
	if source == nil {
		return
	}
	m.lag.mu.Lock()
	m.lag.sources = append(m.lag.sources, source)
	m.lag.mu.Unlock()
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lagEventsDesc
	ch <- lagSecondsDesc
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	sources := append([]func() []LagSample(nil), c.sources...)
	c.mu.Unlock()
	seen := make(map[string]bool)
	for _, src := range sources {
		for _, s := range src() {
			if seen[s.Projection] {
				continue
			}
			seen[s.Projection] = true
			ch <- prometheus.MustNewConstMetric(lagEventsDesc, prometheus.GaugeValue, float64(s.Events), s.Projection)
			ch <- prometheus.MustNewConstMetric(lagSecondsDesc, prometheus.GaugeValue, s.Seconds, s.Projection)
		}
	}
}
