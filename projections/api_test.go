package projections

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/fcaudit/fcaudit/api"
	"github.com/fcaudit/fcaudit/store"
)

const testToken = "tok_test"

// apiFixture: the fixture timeline (received_at = created + 60 s) plus two
// generated accounts, projected and served through the real api router.
func apiFixture(t *testing.T) (*httptest.Server, []store.RecordedEvent) {
	t.Helper()
	dir := t.TempDir()
	st := openStore(t, dir)
	evs := fixtureEvents(t)
	for _, e := range evs {
		if _, err := st.Append(context.Background(), e.Stream, store.AnyRevision, e.Event); err != nil {
			t.Fatal(err)
		}
	}
	h := genHistory(t, 9, 20, 4) // 4 accounts, 5 events each: created, balance, ownership, transactions, deactivated
	appendHistory(t, st, h)
	r := openRunner(t, dir, st, Options{})
	startRunner(t, r)
	waitCaughtUp(t, r)
	srv := api.NewServer(api.Config{Store: st, Tokens: []string{testToken},
		Routes: []func(*mux.Router, api.Helpers){r.Routes}})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts, evs
}

type apiError struct {
	Error struct{ Type, Message, Param string } `json:"error"`
}

func get(t *testing.T, ts *httptest.Server, path string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("GET %s: decode: %v", path, err)
		}
	}
	return resp.StatusCode
}

func TestAPIGetAndTimeTravel(t *testing.T) {
	ts, evs := apiFixture(t)
	t0 := evs[0].Created // 2024-01-15T10:00:00Z
	acct := "/v1/accounts/" + fixtureAccount
	tests := []struct {
		name       string
		query      string
		wantCode   int
		wantStatus string
		wantCount  int64
		wantParam  string
	}{
		{"current", "", 200, "disconnected", 7, ""},
		{"as_of exact boundary of 01", "?as_of=1705312800", 200, "active", 1, ""},
		{"as_of one second before creation", "?as_of=1705312799", 404, "", 0, ""},
		{"as_of a second before 05 (deactivated at T0+3d+30s)", "?as_of=2024-01-18T10:00:29Z", 200, "active", 4, ""},
		{"as_of exactly 05, RFC 3339 with an offset", "?as_of=2024-01-18T11:00:30%2B01:00", 200, "inactive", 5, ""},
		{"as_of fractional seconds floor", "?as_of=2024-01-15T10:00:00.9Z", 200, "active", 1, ""},
		{"as_of far future", "?as_of=2100-01-01T00:00:00Z", 200, "disconnected", 7, ""},
		{"as_of zero", "?as_of=0", 404, "", 0, ""},
		{"known_at exact receipt of 01", "?known_at=2024-01-15T10:01:00Z", 200, "active", 1, ""},
		{"known_at a microsecond before receipt", "?known_at=2024-01-15T10:00:59.999999Z", 404, "", 0, ""},
		{"known_at with offset, after 07's receipt", "?known_at=2024-01-25T12:01:00%2B02:00", 200, "disconnected", 7, ""},
		{"known_at unix seconds before 07's receipt", "?known_at=" + strconv.FormatInt(evs[6].ReceivedAt.Unix()-1, 10), 200, "active", 6, ""},
		{"garbage as_of", "?as_of=yesterday", 400, "", 0, "as_of"},
		{"garbage known_at", "?known_at=2024-13-01", 400, "", 0, "known_at"},
		{"both at once", "?as_of=1705312800&known_at=1705312800", 400, "", 0, "known_at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body map[string]json.RawMessage
			code := get(t, ts, acct+tt.query, &body)
			if code != tt.wantCode {
				t.Fatalf("status %d, want %d: %s", code, tt.wantCode, body)
			}
			switch code {
			case 200:
				var s AccountStatus
				b, _ := json.Marshal(body)
				_ = json.Unmarshal(b, &s)
				if s.Status != tt.wantStatus || s.EventsCount != tt.wantCount || s.FirstSeenAt != t0 || s.Object != "account_status" {
					t.Errorf("got status %q count %d first_seen %d; want %q %d %d", s.Status, s.EventsCount, s.FirstSeenAt, tt.wantStatus, tt.wantCount, t0)
				}
				for _, k := range []string{"id", "object", "status", "livemode", "institution_name", "last4", "category", "subcategory",
					"balance_refresh", "ownership_refresh", "transaction_refresh", "first_seen_at", "last_event", "events_count"} {
					if _, ok := body[k]; !ok {
						t.Errorf("field %q missing", k)
					}
				}
			case 400:
				var e apiError
				b, _ := json.Marshal(body)
				_ = json.Unmarshal(b, &e)
				if e.Error.Type != "invalid_request" || e.Error.Param != tt.wantParam || !strings.Contains(e.Error.Message, tt.wantParam) {
					t.Errorf("error %+v; want invalid_request naming %s", e.Error, tt.wantParam)
				}
			}
		})
	}

	var e apiError
	if code := get(t, ts, "/v1/accounts/fca_unknown", &e); code != 404 || e.Error.Type != "resource_missing" {
		t.Errorf("unknown account: %d %+v", code, e)
	}
	if code := get(t, ts, "/v1/accounts/fca_unknown?as_of=2100-01-01T00:00:00Z", &e); code != 404 {
		t.Errorf("unknown account as_of: %d", code)
	}
	// The history route is not shadowed by /accounts/{id}.
	var list api.List[json.RawMessage]
	if code := get(t, ts, acct+"/events?limit=100", &list); code != 200 || len(list.Data) != 7 {
		t.Errorf("/events route: %d, %d events", code, len(list.Data))
	}
	// Authentication applies.
	resp, err := http.Get(ts.URL + acct)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("without token: %d, want 401", resp.StatusCode)
	}
}

func TestAPIList(t *testing.T) {
	ts, _ := apiFixture(t)
	ids := func(l api.List[AccountStatus]) []string {
		var out []string
		for _, a := range l.Data {
			out = append(out, a.ID)
		}
		return out
	}
	var all api.List[AccountStatus]
	if code := get(t, ts, "/v1/accounts?limit=100", &all); code != 200 || len(all.Data) != 5 || all.HasMore || all.Object != "list" || all.URL != "/v1/accounts" {
		t.Fatalf("list all: %d %+v", code, all)
	}
	for i := 1; i < len(all.Data); i++ {
		if all.Data[i-1].ID >= all.Data[i].ID {
			t.Errorf("not in id order: %v", ids(all))
		}
	}

	// Pagination: pages of 2 walk the same ids.
	var walked []string
	after := ""
	for page := 0; ; page++ {
		var l api.List[AccountStatus]
		q := "/v1/accounts?limit=2"
		if after != "" {
			q += "&starting_after=" + after
		}
		if code := get(t, ts, q, &l); code != 200 {
			t.Fatalf("page %d: %d", page, code)
		}
		walked = append(walked, ids(l)...)
		if !l.HasMore {
			break
		}
		after = l.Data[len(l.Data)-1].ID
	}
	if strings.Join(walked, ",") != strings.Join(ids(all), ",") {
		t.Errorf("paged %v, want %v", walked, ids(all))
	}

	tests := []struct {
		query string
		want  int
	}{
		{"status=disconnected", 1},
		{"status=inactive", 4},
		{"status=active", 0},
		{"institution=StripeBank", 5},
		{"institution=Nope", 0},
		{"livemode=false", 5},
		{"livemode=true", 0},
		{"status=inactive&institution=StripeBank&livemode=false", 4},
	}
	for _, tt := range tests {
		var l api.List[AccountStatus]
		if code := get(t, ts, "/v1/accounts?"+tt.query, &l); code != 200 || len(l.Data) != tt.want {
			t.Errorf("%s: %d, %d accounts; want %d", tt.query, code, len(l.Data), tt.want)
		}
	}
	for _, q := range []string{"livemode=maybe", "limit=0", "limit=101"} {
		var e apiError
		if code := get(t, ts, "/v1/accounts?"+q, &e); code != 400 || e.Error.Type != "invalid_request" {
			t.Errorf("%s: %d %+v", q, code, e)
		}
	}
}
