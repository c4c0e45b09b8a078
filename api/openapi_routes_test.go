package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gorilla/mux"

	"github.com/fcaudit/fcaudit/audit"
	"github.com/fcaudit/fcaudit/backfill"
	"github.com/fcaudit/fcaudit/projections"
	"github.com/fcaudit/fcaudit/replay"
)

// outsideAPI are registered paths the description leaves out on purpose:
// the console (api.Config.Console) is HTML for people, not part of the
// API: /console/ serves it, and GET / and GET /console redirect there.
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

// TestRouteParamsDocumented keeps the document's query parameters equal to
// routeParams (params.go), the table checkParams enforces: every /v1
// operation lists exactly the parameters its route accepts, the list
// parameters (and only they) are arrays bounded at MaxListValues, free
// strings are bounded at MaxParamBytes, an empty value is documented as
// allowed (the handlers read it as absent), and every /v1 operation
// documents the 400 that refuses the rest.
func TestRouteParamsDocumented(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapiJSON)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		if !strings.HasPrefix(path, "/v1/") {
			continue
		}
		accepted, ok := routeParams[path]
		if !ok {
			t.Errorf("openapi.yaml documents %s, which routeParams does not declare", path)
		}
		seen[path] = true
		for method, op := range item.Operations() {
			var names []string
			for _, p := range append(item.Parameters, op.Parameters...) {
				v := p.Value
				if v.In != openapi3.ParameterInQuery {
					continue
				}
				names = append(names, v.Name)
				where := fmt.Sprintf("%s %s: parameter %s", method, path, v.Name)
				if !v.AllowEmptyValue {
					t.Errorf("%s: allowEmptyValue is not true (an empty value is read as absent)", where)
				}
				s := v.Schema.Value
				isArray := s.Type.Is(openapi3.TypeArray)
				if isArray != listParamNames[v.Name] {
					t.Errorf("%s: an array in the document is %v, a list parameter in params.go is %v", where, isArray, listParamNames[v.Name])
				}
				if isArray && (s.MaxItems == nil || *s.MaxItems != MaxListValues) {
					t.Errorf("%s: maxItems is not %d", where, MaxListValues)
				}
				if s.Type.Is(openapi3.TypeString) && len(s.Enum) == 0 && (s.MaxLength == nil || *s.MaxLength != MaxParamBytes) {
					t.Errorf("%s: maxLength is not %d", where, MaxParamBytes)
				}
			}
			want := slices.Clone(accepted)
			slices.Sort(names)
			slices.Sort(want)
			if !slices.Equal(names, want) {
				t.Errorf("%s %s: the document's query parameters %v, routeParams %v", method, path, names, want)
			}
			if r := op.Responses.Status(http.StatusBadRequest); r == nil || r.Ref != "#/components/responses/InvalidRequest" {
				t.Errorf("%s %s: no 400 InvalidRequest (every /v1 route refuses parameters it does not take)", method, path)
			}
		}
	}
	for path := range routeParams {
		if !seen[path] {
			t.Errorf("routeParams declares %s, which openapi.yaml does not document", path)
		}
	}
}
