package loadgen

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable writes r as a small human-readable table.
func WriteTable(w io.Writer, r Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "target\t%s\n", r.URL)
	fmt.Fprintf(tw, "requests\t%d (%d stored, %d duplicates acknowledged, %d errors)\n", r.Requests, r.Stored, r.Duplicates, r.ErrorCount)
	fmt.Fprintf(tw, "senders\t%d\n", r.Concurrency)
	fmt.Fprintf(tw, "body\t≈%d bytes\n", r.BodyBytes)
	fmt.Fprintf(tw, "elapsed\t%s\n", r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(tw, "throughput\t%.0f req/s (successful requests only)\n", r.Throughput)
	fmt.Fprintf(tw, "latency\tp50 %s\tp90 %s\tp99 %s\tmax %s\t(%d successful)\n",
		roundLatency(r.Latency.P50), roundLatency(r.Latency.P90), roundLatency(r.Latency.P99), roundLatency(r.Latency.Max), r.Latency.Count)
	if l := r.FailedLatency; l.Count > 0 {
		fmt.Fprintf(tw, "failed latency\tp50 %s\tp90 %s\tp99 %s\tmax %s\t(%d failed, not in the figures above)\n",
			roundLatency(l.P50), roundLatency(l.P90), roundLatency(l.P99), roundLatency(l.Max), l.Count)
	}
	if r.ErrorCount > 0 {
		kinds := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		parts := make([]string, len(kinds))
		for i, k := range kinds {
			parts[i] = fmt.Sprintf("%s %d", k, r.Errors[k])
		}
		fmt.Fprintf(tw, "errors\t%s\n", strings.Join(parts, ", "))
	}
	return tw.Flush()
}

// roundLatency keeps three significant digits or so: 1.23ms, 45.6ms, 1.2s.
func roundLatency(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	default:
		return d.Round(10 * time.Microsecond)
	}
}
