package api

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/fcaudit/fcaudit/internal/timearg"
)

// List is Stripe's list envelope, the answer of every list route.
type List[T any] struct {
	Object  string `json:"object"`
	Data    []T    `json:"data"`
	HasMore bool   `json:"has_more"`
	URL     string `json:"url"`
}

// listPage is the paging every list route takes: limit (1–100, default 10)
// and starting_after, the id of the item the page starts after (what the
// id names is the route's business).
type listPage struct {
	Limit         int
	StartingAfter string
}

// parsePage reads limit and starting_after.
func parsePage(q url.Values) (listPage, error) {
	p := listPage{Limit: 10, StartingAfter: q.Get("starting_after")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			return p, badParam("limit", "must be an integer from 1 to 100, got %q", s)
		}
		p.Limit = n
	}
	return p, nil
}

// cutPage trims items read with one to spare (p.Limit+1) to the page, and
// reports whether more follow.
func cutPage[T any](items []T, p listPage) ([]T, bool) {
	if len(items) > p.Limit {
		return items[:p.Limit], true
	}
	return items, false
}

// writeList answers 200 with the list envelope; data is never encoded as
// null.
func writeList[T any](w http.ResponseWriter, r *http.Request, data []T, hasMore bool) {
	if data == nil {
		data = []T{}
	}
	writeJSON(w, http.StatusOK, List[T]{Object: "list", Data: data, HasMore: hasMore, URL: r.URL.Path})
}

// parseTimeParam parses an optional time parameter (RFC 3339 or Unix
// seconds) into Unix seconds; 0 when absent.
func parseTimeParam(q url.Values, name string) (int64, error) {
	s := q.Get(name)
	if s == "" {
		return 0, nil
	}
	t, err := timearg.Parse(s)
	if err != nil {
		return 0, badParam(name, "%v", err)
	}
	return t.Unix(), nil
}
