package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// GET /v1/accounts/{id}/events?order=created: Stripe's created
// order, ties in store order, stable across pages; the default stays store
// order; any other value is a 400 naming order.
func TestAccountHistoryOrderCreated(t *testing.T) {
	e := newEnv(t)
	bodies := fixtures(t)
	ids := make([]string, len(bodies))
	for i, b := range bodies {
		var ev struct{ ID string }
		json.Unmarshal(b, &ev)
		ids[i] = ev.ID
	}
	// Stored out of order: 01, 03, 02, 05, 04, 06, 07, then a copy of 02
	// under another id (same created as 02: a tie, broken by store order).
	twin := bytes.ReplaceAll(bodies[1], []byte(ids[1]), []byte("evt_twin_of_02"))
	order := []int{0, 2, 1, 4, 3, 5, 6}
	var stored []string
	for _, i := range order {
		e.ingestAll(t, [][]byte{bodies[i]})
		stored = append(stored, ids[i])
	}
	if code, m := e.post(twin, sign(twin, time.Now())); code != 200 {
		t.Fatalf("twin: %d %v", code, m)
	}
	stored = append(stored, "evt_twin_of_02")
	byCreated := []string{ids[0], ids[1], "evt_twin_of_02", ids[2], ids[3], ids[4], ids[5], ids[6]}

	base := "/v1/accounts/" + account + "/events"
	for _, tt := range []struct {
		q    string
		want []string
	}{
		{"?limit=100", stored},
		{"?limit=100&order=store", stored},
		{"?limit=100&order=created", byCreated},
		{"?limit=100&order=created&type=refreshed_*", []string{ids[1], "evt_twin_of_02", ids[2], ids[3]}},
		{"?limit=100&order=created&starting_after=" + ids[1], byCreated[2:]},
		{"?limit=100&order=created&until=" + fmt.Sprint(1705312915), byCreated[:3]},
	} {
		code, m := e.get(base + tt.q)
		if code != 200 || !slices.Equal(idsOf(m), tt.want) {
			t.Errorf("%s: %d %v, want %v", tt.q, code, idsOf(m), tt.want)
		}
	}
	// Pages of 3 walk the same order, has_more until the last.
	var walked []string
	after := ""
	for range 10 {
		q := base + "?order=created&limit=3"
		if after != "" {
			q += "&starting_after=" + after
		}
		code, m := e.get(q)
		if code != 200 {
			t.Fatalf("%s: %d %v", q, code, m)
		}
		got := idsOf(m)
		walked = append(walked, got...)
		if m["has_more"] != (len(walked) < len(byCreated)) {
			t.Fatalf("%s: has_more %v after %d", q, m["has_more"], len(walked))
		}
		if m["has_more"] == false {
			break
		}
		after = got[len(got)-1]
	}
	if !slices.Equal(walked, byCreated) {
		t.Errorf("paged %v, want %v", walked, byCreated)
	}
	for _, q := range []string{"?order=newest", "?order=Created", "?order="} {
		code, m := e.get(base + q)
		detail, _ := m["error"].(map[string]any)
		if q == "?order=" {
			if code != 200 {
				t.Errorf("%s: %d, want the default", q, code)
			}
			continue
		}
		if code != 400 || detail["param"] != "order" || !strings.HasPrefix(fmt.Sprint(detail["message"]), "order:") {
			t.Errorf("%s: %d %v, want 400 naming order", q, code, m)
		}
	}
	if code, _ := e.get("/v1/accounts/fca_missing/events?order=created"); code != 404 {
		t.Errorf("unknown account, order=created: %d, want 404", code)
	}
}

func idsOf(m map[string]any) []string {
	var out []string
	data, _ := m["data"].([]any)
	for _, d := range data {
		out = append(out, fmt.Sprint(d.(map[string]any)["id"]))
	}
	return out
}
