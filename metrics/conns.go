package metrics

import "github.com/prometheus/client_golang/prometheus"

// ConnSample is the server's connection counts at scrape time.
type ConnSample struct {
	// Open is the number of client connections open now.
	Open int64
	// Shed counts idle connections closed to admit new ones.
	Shed int64
	// AcceptErrors counts failed accepts (e.g. out of file descriptors).
	AcceptErrors int64
	// InflightBodyBytes is the webhook body bytes reserved now.
	InflightBodyBytes int64
	// Busy counts webhooks refused unread because the body budget was spent.
	Busy int64
}

// RegisterConnections exports the server's connection counts, read from
// source on every scrape (it must be safe for concurrent use and quick):
// fcaudit_http_connections_open, fcaudit_http_connections_shed_total,
// fcaudit_http_accept_errors_total, fcaudit_http_inflight_body_bytes and
// fcaudit_http_busy_total.
func (m *Metrics) RegisterConnections(source func() ConnSample) {
	gauge := func(name, help string, v func(ConnSample) int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: "http", Name: name, Help: help},
			func() float64 { return float64(v(source())) })
	}
	counter := func(name, help string, v func(ConnSample) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "http", Name: name, Help: help},
			func() float64 { return float64(v(source())) })
	}
	m.reg.MustRegister(
		gauge("connections_open", "Client connections open now (bounded by serve --max-connections).",
			func(s ConnSample) int64 { return s.Open }),
		counter("connections_shed_total", "Idle client connections closed to admit new ones at the connection limit.",
			func(s ConnSample) int64 { return s.Shed }),
		counter("accept_errors_total", "Failed accepts of client connections (e.g. out of file descriptors).",
			func(s ConnSample) int64 { return s.AcceptErrors }),
		gauge("inflight_body_bytes", "Webhook body bytes reserved by requests being read or processed (bounded by serve --max-inflight-bytes).",
			func(s ConnSample) int64 { return s.InflightBodyBytes }),
		counter("busy_total", "Webhooks answered 503 server_busy unread because the in-flight body budget was spent.",
			func(s ConnSample) int64 { return s.Busy }),
	)
}
