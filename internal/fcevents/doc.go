// Package fcevents makes realistic Stripe Financial Connections webhook
// events — full `event` JSON bodies in the shape Stripe sends (2-space
// indented, trailing newline, api_version 2023-10-16, data.object a complete
// financial_connections.account consistent with the event type) — and signs
// them like Stripe does. `fcaudit trigger`, the load generator and tests use
// it. It imports the standard library and stripe-go's webhook package only.
package fcevents
