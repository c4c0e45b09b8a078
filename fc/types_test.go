package fc

import (
	"fmt"
	"path/filepath"
	"testing"
)

// TestEveryTypeHasFixture holds the list of types and testdata/stripe
// together: fixture NN_account.<short>.json is the NNth type of Types, in
// the same order, so a type added here without its fixture (or a fixture
// without its type) fails. internal/fcevents' TestEventRoundTrips does the
// same for the generator's snapshots.
func TestEveryTypeHasFixture(t *testing.T) {
	names, err := filepath.Glob(filepath.Join("..", "testdata", "stripe", "[0-9][0-9]_account.*.json"))
	if err != nil {
		t.Fatal(err)
	}
	types := Types()
	if len(names) != len(types) {
		t.Errorf("testdata/stripe has %d numbered fixtures, Types() has %d types", len(names), len(types))
	}
	for i, typ := range types {
		name := fmt.Sprintf("%02d_account.%s.json", i+1, ShortName(typ))
		env, err := ParseEnvelope(fixture(t, name))
		if err != nil {
			t.Errorf("%s: fixture for %s: %v", name, typ, err)
			continue
		}
		if env.Type != typ {
			t.Errorf("%s has type %q, want %q", name, env.Type, typ)
		}
	}
}

func TestTypes(t *testing.T) {
	types := Types()
	seen := map[string]bool{}
	for _, typ := range types {
		if !IsAccountEvent(typ) || seen[typ] {
			t.Errorf("Types() has %q twice or outside %s", typ, AccountEventPrefix)
		}
		seen[typ] = true
	}
	types[0] = "changed"
	if Types()[0] != TypeCreated {
		t.Error("Types() hands out the package's own slice")
	}
}

func TestLookup(t *testing.T) {
	for _, typ := range Types() {
		for _, name := range []string{typ, ShortName(typ)} {
			if got, ok := Lookup(name); !ok || got != typ {
				t.Errorf("Lookup(%q) = %q, %v; want %q", name, got, ok, typ)
			}
		}
	}
	for _, name := range []string{"", "nope", "account.created", "financial_connections.account.", "financial_connections.account.no_such_type", "customer.created"} {
		if got, ok := Lookup(name); ok {
			t.Errorf("Lookup(%q) = %q, want not found", name, got)
		}
	}
	if got := ShortName("customer.created"); got != "customer.created" {
		t.Errorf("ShortName(customer.created) = %q", got)
	}
}

func TestAccountStream(t *testing.T) {
	if s := AccountStream("fca_1"); s != "fcaccount-fca_1" || AccountOf(s) != "fca_1" {
		t.Errorf("AccountStream(fca_1) = %q, AccountOf = %q", s, AccountOf(s))
	}
	for _, s := range []string{"stripe-customer-cus_1", "fcaudit-replays", "fcaccount"} {
		if a := AccountOf(s); a != "" {
			t.Errorf("AccountOf(%q) = %q, want \"\"", s, a)
		}
	}
}
