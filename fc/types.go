package fc

import "strings"

// AccountEventPrefix is the type prefix of every Financial Connections
// account event, the seven below and any Stripe adds later; such events are
// stored in the account's stream (see StreamFor).
const AccountEventPrefix = "financial_connections.account."

// The Financial Connections account event types stripe-go v76 knows. Types
// lists them in lifecycle order; adding one here means adding it to Types
// and giving it a fixture in testdata/stripe and a snapshot in
// internal/fcevents (their tests fail until both exist).
const (
	TypeCreated               = AccountEventPrefix + "created"
	TypeRefreshedBalance      = AccountEventPrefix + "refreshed_balance"
	TypeRefreshedOwnership    = AccountEventPrefix + "refreshed_ownership"
	TypeRefreshedTransactions = AccountEventPrefix + "refreshed_transactions"
	TypeDeactivated           = AccountEventPrefix + "deactivated"
	TypeReactivated           = AccountEventPrefix + "reactivated"
	TypeDisconnected          = AccountEventPrefix + "disconnected"
)

// types is the one ordered list; Types hands out copies so no caller can
// reorder it for the others.
var types = [...]string{
	TypeCreated, TypeRefreshedBalance, TypeRefreshedOwnership,
	TypeRefreshedTransactions, TypeDeactivated, TypeReactivated, TypeDisconnected,
}

// Types returns the Financial Connections account event types, in lifecycle
// order (created, the three refreshes, deactivated, reactivated,
// disconnected). The slice is a fresh copy.
func Types() []string {
	out := make([]string, len(types))
	copy(out, types[:])
	return out
}

// IsAccountEvent reports whether typ is a Financial Connections account event
// type (known or not: any type with AccountEventPrefix).
func IsAccountEvent(typ string) bool { return strings.HasPrefix(typ, AccountEventPrefix) }

// ShortName returns typ without AccountEventPrefix ("created" for
// TypeCreated); other types are returned unchanged.
func ShortName(typ string) string { return strings.TrimPrefix(typ, AccountEventPrefix) }

// Lookup returns the known type named by name, either in full
// ("financial_connections.account.created") or by its short name
// ("created"), and whether there is one.
func Lookup(name string) (string, bool) {
	for _, t := range types {
		if name == t || name == ShortName(t) {
			return t, true
		}
	}
	return "", false
}
