package fcevents

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/stripe/stripe-go/v76/webhook"
)

// APIVersion is the api_version of generated events: stripe-go v76's.
const APIVersion = "2023-10-16"

// Generator makes event bodies. The zero value is ready to use and draws
// from a randomly seeded source. A Generator is safe for concurrent use; set
// its fields before the first call and do not change them afterwards.
type Generator struct {
	// Rand, when set, makes the output deterministic: the same seed and the
	// same sequence of calls give the same bytes. Calls are serialised on it.
	Rand *mrand.Rand
	// Size, when positive, pads each body to about Size bytes (never more)
	// with further account_numbers entries, a field newer API versions send
	// and stripe-go v76 ignores. Bodies are within one entry (≈ 260 bytes)
	// below Size; a body already larger than Size is left as it is.
	Size int
	// Customer is the account holder ("cus_…"); empty means one derived
	// from the account id, so an account keeps its customer across events.
	Customer string

	mu   sync.Mutex
	rnd  *mrand.Rand
	once sync.Once
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func (g *Generator) source() *mrand.Rand {
	g.once.Do(func() {
		if g.Rand != nil {
			g.rnd = g.Rand
			return
		}
		var seed [32]byte
		_, _ = rand.Read(seed[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
		g.rnd = mrand.New(mrand.NewChaCha8(seed))
	})
	return g.rnd
}

// id returns prefix + n random base62 characters; g.mu must be held.
func (g *Generator) id(prefix string, n int) string {
	r := g.source()
	b := make([]byte, len(prefix)+n)
	copy(b, prefix)
	for i := len(prefix); i < len(b); i++ {
		b[i] = base62[r.IntN(len(base62))]
	}
	return string(b)
}

// NewAccountID returns a random "fca_" id in Stripe's shape.
func (g *Generator) NewAccountID() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.id("fca_", 24)
}

// NewEventID returns a random "evt_" id in Stripe's shape.
func (g *Generator) NewEventID() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.id("evt_", 24)
}

var defaultGenerator Generator

// NewAccountID returns a random "fca_" id from a package-level Generator.
func NewAccountID() string { return defaultGenerator.NewAccountID() }

// Sign returns a Stripe-Signature header value "t=<unix>,v1=<hex>" for body,
// signed with secret at t, computed by stripe-go's webhook.ComputeSignature.
func Sign(body []byte, secret string, t time.Time) string {
	return fmt.Sprintf("t=%d,v1=%s", t.Unix(), hex.EncodeToString(webhook.ComputeSignature(t, body, secret)))
}

// The wire shapes. Field order follows Stripe's (id, object, then
// alphabetical) as in testdata/stripe; nil pointers render as JSON null.
type event struct {
	ID              string  `json:"id"`
	Object          string  `json:"object"`
	APIVersion      string  `json:"api_version"`
	Created         int64   `json:"created"`
	Data            data    `json:"data"`
	Livemode        bool    `json:"livemode"`
	PendingWebhooks int     `json:"pending_webhooks"`
	Request         request `json:"request"`
	Type            string  `json:"type"`
}

type data struct {
	Object account `json:"object"`
}

type request struct {
	ID             *string `json:"id"`
	IdempotencyKey *string `json:"idempotency_key"`
}

type account struct {
	ID                          string          `json:"id"`
	Object                      string          `json:"object"`
	AccountHolder               accountHolder   `json:"account_holder"`
	AccountNumbers              []accountNumber `json:"account_numbers,omitempty"`
	Balance                     *balance        `json:"balance"`
	BalanceRefresh              *refresh        `json:"balance_refresh"`
	Category                    string          `json:"category"`
	Created                     int64           `json:"created"`
	DisplayName                 string          `json:"display_name"`
	InstitutionName             string          `json:"institution_name"`
	Last4                       string          `json:"last4"`
	Livemode                    bool            `json:"livemode"`
	Ownership                   *string         `json:"ownership"`
	OwnershipRefresh            *refresh        `json:"ownership_refresh"`
	Permissions                 []string        `json:"permissions"`
	Status                      string          `json:"status"`
	Subcategory                 string          `json:"subcategory"`
	Subscriptions               []string        `json:"subscriptions"`
	SupportedPaymentMethodTypes []string        `json:"supported_payment_method_types"`
	TransactionRefresh          *refresh        `json:"transaction_refresh"`
}

type accountHolder struct {
	Customer string `json:"customer"`
	Type     string `json:"type"`
}

type accountNumber struct {
	ExpectedExpiryDate *int64   `json:"expected_expiry_date"`
	IdentifierType     string   `json:"identifier_type"`
	Status             string   `json:"status"`
	SupportedNetworks  []string `json:"supported_networks"`
}

type balance struct {
	AsOf    int64            `json:"as_of"`
	Cash    cashBalance      `json:"cash"`
	Current map[string]int64 `json:"current"`
	Type    string           `json:"type"`
}

type cashBalance struct {
	Available map[string]int64 `json:"available"`
}

// refresh is balance_refresh, ownership_refresh or transaction_refresh;
// ownership_refresh has neither id nor next_refresh_available_at.
type refresh struct {
	ID                     string `json:"id,omitempty"`
	LastAttemptedAt        int64  `json:"last_attempted_at"`
	NextRefreshAvailableAt int64  `json:"next_refresh_available_at,omitempty"`
	Status                 string `json:"status"`
}

// Event returns the body of a typ event for accountID created at created
// (Unix seconds). accountID "" means a new random account. The account
// snapshot matches the type: created and reactivated are active with no
// refresh data (reactivated keeps a succeeded transaction refresh),
// refreshed_* carry the refreshed data, deactivated is inactive after a
// failed transaction refresh, disconnected is disconnected. Any other type
// (e.g. a newer financial_connections.account.* one) gets an active
// snapshot.
func (g *Generator) Event(typ, accountID string, created int64) []byte {
	return g.EventWith(typ, accountID, created, Options{})
}

// Options override parts of a generated event, so a user can stage the
// history Stripe really sends: events created out of order (the created
// argument), redeliveries (EventID), live-mode events and statuses or
// institutions the type would not give. Zero fields keep Event's values.
type Options struct {
	// EventID is the event id ("evt_…"); "" draws a random one.
	EventID string
	// Status is data.object.status; "" keeps the type's.
	Status string
	// Institution is data.object.institution_name; "" keeps "StripeBank".
	Institution string
	// Livemode sets livemode on the event and on the account.
	Livemode bool
}

// EventWith is Event with the parts o sets overridden.
func (g *Generator) EventWith(typ, accountID string, created int64, o Options) []byte {
	g.mu.Lock()
	r := g.source()
	if accountID == "" {
		accountID = g.id("fca_", 24)
	}
	// An account's own attributes stay the same across its events, as they
	// do at Stripe: derive them from the account id.
	stable := fnv.New64a()
	stable.Write([]byte(accountID))
	seed := stable.Sum64()
	customer := g.Customer
	if customer == "" {
		customer = "cus_" + stableID(seed, 14)
	}
	ev := event{
		ID:              g.id("evt_", 24),
		Object:          "event",
		APIVersion:      APIVersion,
		Created:         created,
		Livemode:        false,
		PendingWebhooks: 1,
		Type:            typ,
	}
	acct := account{
		ID:                          accountID,
		Object:                      "financial_connections.account",
		AccountHolder:               accountHolder{Customer: customer, Type: "customer"},
		Category:                    "cash",
		Created:                     created - 15,
		DisplayName:                 "Sample Checking Account",
		InstitutionName:             "StripeBank",
		Last4:                       fmt.Sprintf("%04d", seed%10000),
		Permissions:                 []string{"balances", "ownership", "payment_method", "transactions"},
		Status:                      "active",
		Subcategory:                 "checking",
		Subscriptions:               []string{},
		SupportedPaymentMethodTypes: []string{"link", "us_bank_account"},
	}
	attempted := created - 60
	switch typ {
	case fc.TypeRefreshedBalance:
		current := 100000 + r.Int64N(900000)
		acct.Balance = &balance{
			AsOf:    created - 5,
			Cash:    cashBalance{Available: map[string]int64{"usd": current - r.Int64N(20000)}},
			Current: map[string]int64{"usd": current},
			Type:    "cash",
		}
		acct.BalanceRefresh = &refresh{LastAttemptedAt: attempted, NextRefreshAvailableAt: attempted + 3600, Status: "succeeded"}
	case fc.TypeRefreshedOwnership:
		own := g.id("fcaowns_", 24)
		acct.Ownership = &own
		acct.OwnershipRefresh = &refresh{LastAttemptedAt: attempted, Status: "succeeded"}
	case fc.TypeRefreshedTransactions:
		acct.Subscriptions = []string{"transactions"}
		acct.TransactionRefresh = &refresh{ID: g.id("fctxnref_", 24), LastAttemptedAt: attempted, NextRefreshAvailableAt: attempted + 3600, Status: "succeeded"}
	case fc.TypeDeactivated:
		acct.Status = "inactive"
		acct.TransactionRefresh = &refresh{ID: g.id("fctxnref_", 24), LastAttemptedAt: attempted, NextRefreshAvailableAt: attempted + 3600, Status: "failed"}
	case fc.TypeReactivated:
		acct.TransactionRefresh = &refresh{ID: g.id("fctxnref_", 24), LastAttemptedAt: attempted, NextRefreshAvailableAt: attempted + 3600, Status: "succeeded"}
	case fc.TypeDisconnected:
		acct.Status = "disconnected"
		// Disconnections are usually API-initiated, so they carry a request.
		reqID, key := g.id("req_", 14), uuid(r)
		ev.Request = request{ID: &reqID, IdempotencyKey: &key}
	}
	g.mu.Unlock()
	if o.EventID != "" {
		ev.ID = o.EventID
	}
	if o.Status != "" {
		acct.Status = o.Status
	}
	if o.Institution != "" {
		acct.InstitutionName = o.Institution
	}
	ev.Livemode, acct.Livemode = o.Livemode, o.Livemode

	ev.Data.Object = acct
	body := marshal(&ev)
	if g.Size <= 0 || len(body) >= g.Size {
		return body
	}
	// One entry adds a fixed number of bytes once the list exists; measure
	// it, then add as many as fit.
	ev.Data.Object.AccountNumbers = []accountNumber{numberEntry()}
	one := marshal(&ev)
	if len(one) > g.Size {
		return body
	}
	ev.Data.Object.AccountNumbers = append(ev.Data.Object.AccountNumbers, numberEntry())
	step := len(marshal(&ev)) - len(one)
	n := 1 + (g.Size-len(one))/step
	ev.Data.Object.AccountNumbers = make([]accountNumber, n)
	for i := range n {
		ev.Data.Object.AccountNumbers[i] = numberEntry()
	}
	return marshal(&ev)
}

func numberEntry() accountNumber {
	return accountNumber{IdentifierType: "account_number", Status: "active", SupportedNetworks: []string{"ach"}}
}

// marshal renders v like Stripe does: 2-space indent and a trailing newline.
func marshal(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("fcevents: marshal event: %v", err)) // only fixed, valid types are marshalled
	}
	return append(b, '\n')
}

// uuid returns a version-4 UUID drawn from r (an idempotency key).
func uuid(r *mrand.Rand) string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], r.Uint64())
	binary.LittleEndian.PutUint64(b[8:], r.Uint64())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// stableID renders n base62 characters derived from seed.
func stableID(seed uint64, n int) string {
	b := make([]byte, n)
	for i := range b {
		seed = seed*6364136223846793005 + 1442695040888963407
		b[i] = base62[(seed>>33)%62]
	}
	return string(b)
}
