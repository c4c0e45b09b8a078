package api

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/fcaudit/fcaudit/audit"
	"github.com/fcaudit/fcaudit/backfill"
	"github.com/fcaudit/fcaudit/projections"
	"github.com/fcaudit/fcaudit/replay"
)

// outsideAPI are registered paths the description leaves out on purpose:
// the console is HTML for people, not part of the API.
func outsideAPI(path string) bool {
	return path == "/" || path == "/console" || strings.HasPrefix(path, "/console/")
}

// TestEveryRouteDocumented walks the router with every optional route
// registered and fails when a route (path and method) is missing from
// openapi.json, or when the document has an operation no route serves.
// (openapi.json is openapi.yaml converted; TestOpenAPIJSONUpToDate.)
func TestEveryRouteDocumented(t *testing.T) {
	// Typed nil dependencies register their routes; no handler runs here.
	s := NewServer(Config{
		Metrics:        http.NotFoundHandler(),
		Accounts:       (*projections.Runner)(nil),
		Replays:        (*replay.RunLog)(nil),
		Verify:         (*audit.AccountChecker)(nil),
		Reconciliation: (*backfill.Reconciler)(nil),
	})
	registered := map[string]bool{}
	err := s.router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		path, err := route.GetPathTemplate()
		if err != nil || outsideAPI(path) {
			return nil
		}
		methods, err := route.GetMethods()
		if err != nil {
			if route.GetHandler() == nil {
				return nil // a subrouter's prefix (/v1): its routes are walked too
			}
			methods = []string{"(any method)"}
		}
		for _, m := range methods {
			registered[m+" "+path] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapiJSON, &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for key := range item {
			switch key {
			case "get", "head", "post", "put", "patch", "delete", "options", "trace":
				documented[strings.ToUpper(key)+" "+path] = true
			}
		}
	}

	var missing, extra []string
	for r := range registered {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for d := range documented {
		if !registered[d] {
			extra = append(extra, d)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	for _, r := range missing {
		t.Errorf("route %s is registered but not in openapi.yaml", r)
	}
	for _, d := range extra {
		t.Errorf("openapi.yaml documents %s, which no route serves", d)
	}
	if len(registered) == 0 {
		t.Fatal("walked no routes")
	}
	t.Logf("%d routes (path and method) registered", len(registered))
}
