package fc

import "strings"

// Stream name prefixes of Stripe events. fcaudit's own records use
// store.SystemStreamPrefix.
const (
	// AccountStreamPrefix starts the stream of a Financial Connections
	// account: AccountStreamPrefix + data.object.id.
	AccountStreamPrefix = "fcaccount-"
	// ObjectStreamPrefix starts the stream of any other Stripe event:
	// ObjectStreamPrefix + object type + "-" + object id (see StreamFor).
	ObjectStreamPrefix = "stripe-"
)

// AccountStream returns the stream of a Financial Connections account.
func AccountStream(accountID string) string { return AccountStreamPrefix + accountID }

// AccountOf returns the account id of an account stream, or "" when the
// stream is not an account stream.
func AccountOf(stream string) string {
	if id, ok := strings.CutPrefix(stream, AccountStreamPrefix); ok {
		return id
	}
	return ""
}

// StreamFor returns the stream an event belongs in:
//
//   - financial_connections.account.* → "fcaccount-<data.object.id>"
//     (AccountStream);
//   - any other type → "stripe-<data.object.object>-<data.object.id>"
//     (customer.created → "stripe-customer-cus_123"; a
//     financial_connections.session → "stripe-financial_connections.session-fcsess_…");
//   - an object without an id → "stripe-<object type>-unidentified";
//     an object without an object type uses "unknown".
//
// On envelopes ParseEnvelope accepts (CheckShapes) the name is injective:
// an object type never holds '-', so the first '-' after "stripe-" ends
// it, and the placeholders are reserved (NoObjectID, NoObjectType), so
// "unidentified" and "unknown" always mean "absent". Two different
// (object type, object id) pairs never share a stream.
//
// Before identifier shapes were enforced (December 2026) the object type's dots were replaced by '_', which made
// "a.b" and "a_b" share a stream; LegacyStreamFor gives that name, and
// events stored under it stay where they are. A legacy name never has a
// '.' before its first '-' after the prefix (the type's dots were replaced)
// and a new name of a dotted type always has, so the two sets of names
// only meet where they are equal: undotted object types, whose names did
// not change.
func StreamFor(env Envelope) string {
	if IsAccountEvent(env.Type) && env.ObjectID != "" {
		return AccountStream(env.ObjectID)
	}
	return objectStream(env.ObjectType, env.ObjectID)
}

// LegacyStreamFor returns the stream name fcaudit gave env before December 2026
// (the object type's dots replaced by '_'). It equals StreamFor(env) except
// for object types with a dot. Verification accepts a stored event under
// either name.
func LegacyStreamFor(env Envelope) string {
	if IsAccountEvent(env.Type) && env.ObjectID != "" {
		return AccountStream(env.ObjectID)
	}
	return objectStream(strings.ReplaceAll(env.ObjectType, ".", "_"), env.ObjectID)
}

func objectStream(objType, id string) string {
	if objType == "" {
		objType = NoObjectType
	}
	if id == "" {
		id = NoObjectID
	}
	return ObjectStreamPrefix + objType + "-" + id
}
