package api

import (
	"net/http"
	"sort"
	"strings"

	"github.com/gorilla/mux"
)

// routeParams declares, for every /v1 route (by its path template), the
// query parameters it accepts: the one place to look, and to edit when a
// route learns a parameter. Anything else answers 400 invalid_request
// naming the parameter, as Stripe does, so a misspelt filter is never
// silently ignored. A route missing here accepts none.
// TestRouteParamsDocumented keeps openapi.yaml's parameters equal to this.
var routeParams = map[string][]string{
	"/v1/events":                {"limit", "starting_after", "type", "since", "until", "after_position"},
	"/v1/events/{id}":           nil,
	"/v1/events/{id}/body":      nil,
	"/v1/accounts/{id}/events":  {"limit", "starting_after", "type", "since", "until", "order"},
	"/v1/accounts":              {"limit", "starting_after", "status", "institution", "livemode"},
	"/v1/accounts/{id}":         {"as_of", "known_at"},
	"/v1/accounts/{id}/verify":  nil,
	"/v1/replays":               {"limit", "starting_after"},
	"/v1/replays/{id}":          nil,
	"/v1/reconciliation":        nil,
	"/v1/openapi.json":          nil,
	"/v1/openapi.yaml":          nil,
	"/v1/log/checkpoint":        nil,
	"/v1/log/proof/inclusion":   {"event", "tree_size"},
	"/v1/log/proof/consistency": {"from", "to"},
}

// listParamNames are the parameters that take several values (repeated,
// or comma-separated in one value).
var listParamNames = map[string]bool{"type": true}

const (
	// MaxParamBytes bounds one query parameter value (Stripe ids are at
	// most 255 bytes; so are event types and globs).
	MaxParamBytes = 255
	// MaxListValues bounds how many values a list parameter (type) takes,
	// counting repeated and comma-separated ones: each becomes a term of a
	// store query, whose size must stay bounded.
	MaxListValues = 32
)

// checkParams refuses query parameters the matched route does not declare,
// a single-valued parameter given twice, and values beyond the bounds
// above, before the handler runs.
func (s *Server) checkParams(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var tmpl string
		if route := mux.CurrentRoute(r); route != nil {
			tmpl, _ = route.GetPathTemplate()
		}
		if err := checkQuery(r.URL.Query(), routeParams[tmpl]); err != nil {
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func checkQuery(q map[string][]string, accepted []string) error {
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		if len(name) > MaxParamBytes {
			name = name[:32] + "…"
		}
		known := false
		for _, a := range accepted {
			known = known || a == name
		}
		if !known {
			if len(accepted) == 0 {
				return badParam(name, "unknown parameter: this route takes no query parameters")
			}
			return badParam(name, "unknown parameter: this route accepts %s", strings.Join(accepted, ", "))
		}
		vals := q[name]
		if !listParamNames[name] && len(vals) > 1 {
			return badParam(name, "given %d times; it takes one value", len(vals))
		}
		n := 0
		for _, v := range vals {
			if len(v) > MaxParamBytes && !listParamNames[name] {
				return badParam(name, "longer than %d bytes", MaxParamBytes)
			}
			for _, part := range strings.Split(v, ",") {
				if len(part) > MaxParamBytes {
					return badParam(name, "a value is longer than %d bytes", MaxParamBytes)
				}
				n++
			}
		}
		if listParamNames[name] && n > MaxListValues {
			return badParam(name, "%d values; at most %d are accepted", n, MaxListValues)
		}
	}
	return nil
}
