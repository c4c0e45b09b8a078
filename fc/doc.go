// Package fc is fcaudit's Financial Connections vocabulary: the one list of
// account event types (Types, Lookup, and ParseTypes for the type arguments
// of flags and query parameters), the stream an event is filed in
// (StreamFor, AccountStream, AccountOf and the stream prefixes), and the
// envelope of a Stripe event with its parser (Envelope, ParseEnvelope).
//
// Everything else that needs an FC type name, an account stream name or an
// event's envelope takes it from here, so adding an event type is one edit
// to this package (plus its fixture in testdata/stripe and its snapshot in
// internal/fcevents, which their tests demand).
//
// It imports the standard library and internal/jsonscan only, so every
// package, store included, may import it.
//
// # Streams
//
//	financial_connections.account.*   fcaccount-<data.object.id>
//	any other type                    stripe-<data.object.object>-<data.object.id>
//	                                  e.g. customer.created → stripe-customer-cus_123
//	object without an id              stripe-<object type>-unidentified
//	object without an object type     stripe-unknown-<data.object.id>
//
// Injective on the identifier shapes ParseEnvelope enforces (CheckShapes:
// ids of letters, digits, '_' and '-'; types of lowercase letters, digits,
// '_' and dots; the placeholders reserved). Streams named before these
// rules (object types' dots as '_') keep their names: LegacyStreamFor.
//
// # Envelope
//
// ParseEnvelope reads a body in one pass, allocating only the strings it
// returns, validating all of it as encoding/json would and decoding
// only the fields fcaudit files events by; a test oracle (the encoding/json
// decoder it replaced) and a fuzz target hold it to that.
package fc
