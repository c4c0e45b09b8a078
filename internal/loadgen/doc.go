// Package loadgen is fcaudit's load generator: it prepares realistic,
// unique, correctly signed Stripe Financial Connections webhook deliveries
// (package fcevents), fires them at a webhook endpoint from a number of
// concurrent senders, checks every answer, and summarises throughput,
// latency percentiles and errors by kind.
//
// Bodies are generated and signed by Prepare, before Run starts its clock,
// so the generator's CPU time is not part of the measurement (the sender
// and the server under test share the machine). A Plan can be run against
// several targets, which is how bench/ compares fcaudit with the reference
// handlers on exactly the same requests.
//
// Load tests must target only servers you run yourself; nothing here checks
// that the URL is a loopback address.
//
// It imports the standard library and fcevents only.
package loadgen
