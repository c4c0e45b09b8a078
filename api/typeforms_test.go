package api_test

import (
	"fmt"
	"strings"
	"testing"
)

// The type parameter takes the same forms as replay
// --type (fc.ParseTypes): comma lists, short names, globs; a type that
// matches no known one is a 400 naming type, not an empty list.
func TestTypeParameterForms(t *testing.T) {
	e := newEnv(t)
	e.ingestAll(t, fixtures(t))
	for _, base := range []string{"/v1/events?limit=100", "/v1/accounts/" + account + "/events?limit=100"} {
		for _, tt := range []struct {
			q    string
			want int
		}{
			{"&type=created", 1},
			{"&type=created,disconnected", 2},
			{"&type=created&type=deactivated", 2},
			{"&type=refreshed_*", 3},
			{"&type=financial_connections.account.refreshed_*", 3},
			{"&type=*.reactivated", 1},
			{"&type=customer.created", 0}, // another Stripe object's type: valid, none stored
		} {
			code, m := e.get(base + tt.q)
			if code != 200 || len(ids(m)) != tt.want {
				t.Errorf("%s%s: %d, %d events; want %d", base, tt.q, code, len(ids(m)), tt.want)
			}
		}
		for _, q := range []string{"&type=creatd", "&type=created,bogus", "&type=financial_connections.account.foo", "&type=Created"} {
			code, m := e.get(base + q)
			detail, _ := m["error"].(map[string]any)
			if code != 400 || fmt.Sprint(detail["param"]) != "type" || !strings.Contains(fmt.Sprint(detail["message"]), "unknown event type") {
				t.Errorf("%s%s: %d %v; want 400 naming type", base, q, code, m)
			}
		}
	}
}
