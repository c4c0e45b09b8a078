package api

import (
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/mux"
)

// TestEveryRouteHasAMetricsLabel: with every optional dependency present,
// each route the router serves has a name, which observeRoute uses as the
// request metrics' route label (a route without one would be unmeasured).
func TestEveryRouteHasAMetricsLabel(t *testing.T) {
	// Non-nil interface values register the optional routes; no request
	// is served here, so their methods are never called.
	type (
		accountsI = Accounts
		replaysI  = ReplayRuns
		verifyI   = AccountVerifier
		reconI    = Reconciliation
		accounts  struct{ accountsI }
		replays   struct{ replaysI }
		verify    struct{ verifyI }
		recon     struct{ reconI }
	)
	s := NewServer(Config{Accounts: accounts{}, Replays: replays{}, Verify: verify{}, Reconciliation: recon{},
		Metrics: http.NotFoundHandler(), ObserveRequest: func(string, int, time.Duration) {}})
	n := 0
	err := s.router.Walk(func(rt *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		if rt.GetHandler() == nil {
			return nil // the /v1 prefix: its subrouter's routes are walked too
		}
		n++
		if tpl, _ := rt.GetPathTemplate(); rt.GetName() == "" {
			t.Errorf("route %s has no name (metrics label)", tpl)
		}
		return nil
	})
	if err != nil || n < 13 {
		t.Fatalf("walked %d routes: %v", n, err)
	}
}
