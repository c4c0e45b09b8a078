package fcevents

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
)

const created = 1705312800

var idRE = regexp.MustCompile(`^evt_[0-9A-Za-z]{24}$`)

func TestEventRoundTrips(t *testing.T) {
	g := &Generator{Rand: rand.New(rand.NewPCG(1, 2))}
	acctID := g.NewAccountID()
	tests := []struct {
		typ     string
		status  stripe.FinancialConnectionsAccountStatus
		check   func(t *testing.T, a *stripe.FinancialConnectionsAccount)
		withReq bool
	}{
		{fc.TypeCreated, "active", func(t *testing.T, a *stripe.FinancialConnectionsAccount) {
			if a.Balance != nil || a.BalanceRefresh != nil || a.OwnershipRefresh != nil || a.TransactionRefresh != nil || a.Ownership != nil {
				t.Errorf("created carries refresh data: %+v", a)
			}
		}, false},
		{fc.TypeRefreshedBalance, "active", func(t *testing.T, a *stripe.FinancialConnectionsAccount) {
			if a.Balance == nil || a.Balance.Current["usd"] <= 0 || a.Balance.Cash == nil || a.BalanceRefresh == nil || a.BalanceRefresh.Status != "succeeded" {
				t.Errorf("no balance/balance_refresh: %+v", a)
			}
		}, false},
		{fc.TypeRefreshedOwnership, "active", func(t *testing.T, a *stripe.FinancialConnectionsAccount) {
			if a.Ownership == nil || !strings.HasPrefix(a.Ownership.ID, "fcaowns_") || a.OwnershipRefresh == nil || a.OwnershipRefresh.Status != "succeeded" {
				t.Errorf("no ownership/ownership_refresh: %+v", a)
			}
		}, false},
		{fc.TypeRefreshedTransactions, "active", func(t *testing.T, a *stripe.FinancialConnectionsAccount) {
			if a.TransactionRefresh == nil || a.TransactionRefresh.Status != "succeeded" || !strings.HasPrefix(a.TransactionRefresh.ID, "fctxnref_") ||
				len(a.Subscriptions) != 1 || a.Subscriptions[0] != "transactions" {
				t.Errorf("no transaction_refresh/subscriptions: %+v", a)
			}
		}, false},
		{fc.TypeDeactivated, "inactive", nil, false},
		{fc.TypeReactivated, "active", nil, false},
		{fc.TypeDisconnected, "disconnected", nil, true},
	}
	if len(tests) != len(fc.Types()) {
		t.Fatalf("fc.Types() has %d types, test covers %d", len(fc.Types()), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			if fc.Types()[i] != tt.typ {
				t.Errorf("fc.Types()[%d] = %s", i, fc.Types()[i])
			}
			body := g.Event(tt.typ, acctID, created)
			if !bytes.HasSuffix(body, []byte("}\n")) || !bytes.HasPrefix(body, []byte("{\n  \"id\": \"evt_")) {
				t.Errorf("body not in Stripe's layout:\n%s", body)
			}
			var ev stripe.Event
			if err := json.Unmarshal(body, &ev); err != nil {
				t.Fatalf("unmarshal stripe.Event: %v", err)
			}
			if !idRE.MatchString(ev.ID) || ev.Object != "event" || string(ev.Type) != tt.typ || ev.Created != created ||
				ev.APIVersion != stripe.APIVersion || ev.Livemode || ev.PendingWebhooks != 1 || ev.Data == nil {
				t.Fatalf("event envelope wrong: %+v", ev)
			}
			if (ev.Request != nil && ev.Request.ID != "") != tt.withReq {
				t.Errorf("request = %+v, want set: %v", ev.Request, tt.withReq)
			}
			var a stripe.FinancialConnectionsAccount
			if err := json.Unmarshal(ev.Data.Raw, &a); err != nil {
				t.Fatalf("unmarshal account: %v", err)
			}
			// v76 models every field generated without padding: strict decode.
			dec := json.NewDecoder(bytes.NewReader(ev.Data.Raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&stripe.FinancialConnectionsAccount{}); err != nil {
				t.Errorf("strict decode: %v", err)
			}
			if a.ID != acctID || a.Object != "financial_connections.account" || a.Status != tt.status ||
				a.AccountHolder == nil || a.AccountHolder.Customer == nil || a.InstitutionName == "" || len(a.Last4) != 4 {
				t.Errorf("account = %+v", a)
			}
			if tt.check != nil {
				tt.check(t, &a)
			}
			if _, err := webhook.ConstructEventWithOptions(body, Sign(body, "whsec_x", time.Now()), "whsec_x", webhook.ConstructEventOptions{}); err != nil {
				t.Errorf("stripe-go ConstructEvent: %v", err)
			}
		})
	}
}

func TestSize(t *testing.T) {
	for _, size := range []int{2048, 3 * 1024, 4096, 8192, 64 * 1024} {
		g := &Generator{Rand: rand.New(rand.NewPCG(3, 4)), Size: size}
		for _, typ := range fc.Types() {
			body := g.Event(typ, "", created)
			if n := len(body); n > size || float64(n) < 0.9*float64(size) {
				t.Errorf("Size %d, %s: body is %d bytes", size, typ, n)
			}
			ev, err := webhook.ConstructEventWithOptions(body, Sign(body, "whsec_x", time.Now()), "whsec_x", webhook.ConstructEventOptions{})
			if err != nil {
				t.Fatalf("Size %d, %s: %v", size, typ, err)
			}
			if env, err := fc.ParseEnvelope(body); err != nil || env.Type != typ {
				t.Fatalf("Size %d, %s: ParseEnvelope = %+v, %v", size, typ, env, err)
			}
			var a stripe.FinancialConnectionsAccount
			if err := json.Unmarshal(ev.Data.Raw, &a); err != nil || a.ID == "" {
				t.Fatalf("Size %d, %s: account %v", size, typ, err)
			}
		}
	}
	small := (&Generator{Size: 100}).Event(fc.TypeCreated, "", created)
	if len(small) < 1000 {
		t.Errorf("a too small Size truncated the body to %d bytes", len(small))
	}
}

func TestDeterministic(t *testing.T) {
	gen := func() [][]byte {
		g := &Generator{Rand: rand.New(rand.NewPCG(7, 7)), Size: 3000}
		var out [][]byte
		for _, typ := range fc.Types() {
			out = append(out, g.Event(typ, "", created))
		}
		return out
	}
	a, b := gen(), gen()
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("event %d differs between equally seeded generators", i)
		}
	}
	if bytes.Equal(a[0], a[1]) {
		t.Fatal("successive events are identical")
	}
	var g1, g2 Generator
	if g1.NewAccountID() == g2.NewAccountID() {
		t.Fatal("unseeded generators repeat account ids")
	}
}

func TestConcurrent(t *testing.T) {
	g := &Generator{Rand: rand.New(rand.NewPCG(9, 9))}
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				var ev stripe.Event
				if err := json.Unmarshal(g.Event(fc.TypeRefreshedBalance, "", created), &ev); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[ev.ID] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 400 {
		t.Errorf("%d distinct ids, want 400", len(seen))
	}
}

func TestIDs(t *testing.T) {
	if id := NewAccountID(); !regexp.MustCompile(`^fca_[0-9A-Za-z]{24}$`).MatchString(id) {
		t.Errorf("NewAccountID() = %q", id)
	}
	if id := (&Generator{}).NewEventID(); !idRE.MatchString(id) {
		t.Errorf("NewEventID() = %q", id)
	}
}

func TestSign(t *testing.T) {
	body := (&Generator{}).Event(fc.TypeCreated, "", created)
	now := time.Now()
	h := Sign(body, "whsec_abc", now)
	if !regexp.MustCompile(`^t=\d+,v1=[0-9a-f]{64}$`).MatchString(h) {
		t.Fatalf("Sign = %q", h)
	}
	if err := webhook.ValidatePayload(body, h, "whsec_abc"); err != nil {
		t.Errorf("ValidatePayload: %v", err)
	}
	if err := webhook.ValidatePayload(body, h, "whsec_other"); err == nil {
		t.Error("signature verifies with another secret")
	}
	want := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: "whsec_abc", Timestamp: now}).Header
	if h != want {
		t.Errorf("Sign = %q, stripe-go's test helper makes %q", h, want)
	}
}

func TestAccountAttributesStable(t *testing.T) {
	g := &Generator{}
	type holder struct {
		Data struct {
			Object struct {
				Last4         string `json:"last4"`
				AccountHolder struct {
					Customer string `json:"customer"`
				} `json:"account_holder"`
			} `json:"object"`
		} `json:"data"`
	}
	decode := func(b []byte) holder {
		var h holder
		if err := json.Unmarshal(b, &h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	a := decode(g.Event(fc.TypeCreated, "fca_stable1", created))
	b := decode(g.Event(fc.TypeRefreshedBalance, "fca_stable1", created+10))
	c := decode(g.Event(fc.TypeCreated, "fca_other22", created))
	if a != b {
		t.Fatalf("one account's attributes changed between events: %+v vs %+v", a, b)
	}
	if a == c {
		t.Fatalf("two accounts got the same attributes: %+v", a)
	}
}

// TestEventWithOptions: each option lands in the right field, and the rest
// of the event is what Event would have made (same seed, same bytes).
func TestEventWithOptions(t *testing.T) {
	const acct = "fca_optionsTest0000000000000"
	plain := (&Generator{Rand: rand.New(rand.NewPCG(7, 8))}).Event(fc.TypeCreated, acct, created)
	same := (&Generator{Rand: rand.New(rand.NewPCG(7, 8))}).EventWith(fc.TypeCreated, acct, created, Options{})
	if !bytes.Equal(plain, same) {
		t.Fatal("EventWith with zero options differs from Event")
	}
	body := (&Generator{}).EventWith(fc.TypeRefreshedBalance, acct, created-500, Options{
		EventID: "evt_fixedForRedelivery000000", Status: "disconnected", Institution: "Test Credit Union", Livemode: true})
	var ev stripe.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatal(err)
	}
	var a stripe.FinancialConnectionsAccount
	if err := json.Unmarshal(ev.Data.Raw, &a); err != nil {
		t.Fatal(err)
	}
	if ev.ID != "evt_fixedForRedelivery000000" || ev.Created != created-500 || !ev.Livemode || !a.Livemode ||
		a.Status != "disconnected" || a.InstitutionName != "Test Credit Union" || a.BalanceRefresh == nil {
		t.Fatalf("options not applied: event %s created %d livemode %t; account %+v", ev.ID, ev.Created, ev.Livemode, a)
	}
}
