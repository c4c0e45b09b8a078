package api_test

import (
	"fmt"
	"testing"
)

// since/until at the zero time, the Unix epoch and the
// largest time. until=0 (or the epoch) was read as "no bound" and listed
// everything.
func TestListTimeEdges(t *testing.T) {
	e := newEnv(t)
	e.ingestAll(t, fixtures(t))
	for _, base := range []string{"/v1/events?limit=100", "/v1/accounts/" + account + "/events?limit=100"} {
		for _, tt := range []struct {
			q    string
			want int
		}{
			{"&until=0", 0},
			{"&until=1970-01-01T00:00:00Z", 0},
			{"&until=0001-01-01T00:00:00Z", 0},
			{"&until=9999-12-31T23:59:59Z", 7},
			{"&since=0", 7},
			{"&since=0001-01-01T00:00:00Z", 7},
			{"&since=9999-12-31T23:59:59Z", 0},
		} {
			code, m := e.get(base + tt.q)
			if code != 200 || len(ids(m)) != tt.want {
				t.Errorf("%s%s: %d, %d events; want %d", base, tt.q, code, len(ids(m)), tt.want)
			}
		}
	}
	// since after until is still a contradiction, whatever the values.
	if code, m := e.get("/v1/events?since=1&until=0"); code != 400 || fmt.Sprint(m["error"].(map[string]any)["param"]) != "since" {
		t.Errorf("since=1&until=0: %d %v", code, m)
	}
}
