// Package timearg parses the points in time users pass to fcaudit's flags and
// query parameters: RFC 3339 (with any offset) or Unix seconds.
package timearg

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Parse parses s as Unix seconds ("1705312800") or RFC 3339
// ("2024-01-15T10:00:00Z", "2024-01-15T11:00:00+01:00", fractional seconds
// allowed). The error message is fit to show after the flag or parameter name.
func Parse(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, fmt.Errorf("empty time: want RFC 3339 or Unix seconds")
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > 1<<40 {
			return time.Time{}, fmt.Errorf("%q: Unix seconds out of range", s)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want RFC 3339 (2024-01-15T10:00:00Z) or Unix seconds", s)
	}
	return t, nil
}

// ParseSince parses s like Parse, or as a duration back from now ("72h",
// "30m"), for flags such as backfill's --since.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(strings.TrimSpace(s)); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%q: negative duration", s)
		}
		return now.Add(-d), nil
	}
	if d, ok := parseDays(s); ok {
		return now.Add(-d), nil
	}
	return Parse(s)
}

// parseDays accepts "30d", which time.ParseDuration does not.
func parseDays(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	n, ok := strings.CutSuffix(s, "d")
	if !ok {
		return 0, false
	}
	days, err := strconv.Atoi(n)
	if err != nil || days < 0 {
		return 0, false
	}
	return time.Duration(days) * 24 * time.Hour, true
}
