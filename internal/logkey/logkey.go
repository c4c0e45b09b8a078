// Package logkey names the attributes of fcaudit's log records once, so that
// every package logs an error, an event id or a stream under the same key and
// operators can filter on one name. It imports only log/slog.
//
// Log an error with Err(err) (key "error"), never with a literal key;
// TestLogCallsUseCanonicalKeys scans the tree for log calls that do not.
package logkey

import "log/slog"

// Keys shared by more than one package.
const (
	// Error is the key of an error.
	Error = "error"
	// EventID is the key of a Stripe event id ("evt_…").
	EventID = "event_id"
	// EventType is the key of an event type.
	EventType = "event_type"
	// Stream is the key of an event-log stream name.
	Stream = "stream"
)

// Err is the attribute of err under Error. Handlers render an error as its
// Error() text.
func Err(err error) slog.Attr { return slog.Any(Error, err) }
