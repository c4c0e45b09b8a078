package fc

import "strings"

// Stream name prefixes of Stripe events. fcaudit's own records use
// store.SystemStreamPrefix.
const (
	// AccountStreamPrefix starts the stream of a Financial Connections
	// account: AccountStreamPrefix + data.object.id.
	AccountStreamPrefix = "fcaccount-"
	// ObjectStreamPrefix starts the stream of any other Stripe event:
	// ObjectStreamPrefix + object type + "-" + object id.
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
//     (AccountStream), whatever the id looks like;
//   - any other type → "stripe-<data.object.object>-<data.object.id>", with
//     every '.' of the object type replaced by '_' (customer.created →
//     "stripe-customer-cus_123"; a financial_connections.session →
//     "stripe-financial_connections_session-fcsess_…");
//   - an object without an id → "stripe-<object type>-unidentified";
//     an object without an object type uses "unknown".
func StreamFor(env Envelope) string {
	if IsAccountEvent(env.Type) && env.ObjectID != "" {
		return AccountStream(env.ObjectID)
	}
	objType := strings.ReplaceAll(env.ObjectType, ".", "_")
	if objType == "" {
		objType = "unknown"
	}
	id := env.ObjectID
	if id == "" {
		id = "unidentified"
	}
	return ObjectStreamPrefix + objType + "-" + id
}
