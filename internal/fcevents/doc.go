// Package fcevents makes realistic Stripe Financial Connections webhook
// events — full `event` JSON bodies in the shape Stripe sends (2-space
// indented, trailing newline, api_version 2023-10-16, data.object a complete
// financial_connections.account consistent with the event type) — and signs
// them like Stripe does. `fcaudit trigger`, the load generator and tests use
// it. The event types are fc's (fc.Types); TestEventRoundTrips fails until
// every one has its snapshot here. It imports the standard library, fc and
// stripe-go's webhook package only.
package fcevents
