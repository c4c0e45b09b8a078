package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/api"
	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/projections"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

// fixtureEvents returns the 7 fixture events as recorded events of the
// fixture account's stream, positions 1..7 in file order, received one
// minute after created.
func fixtureEvents(t *testing.T) []store.RecordedEvent {
	t.Helper()
	var out []store.RecordedEvent
	for i, b := range fixtures(t) {
		var env struct {
			ID       string `json:"id"`
			Type     string `json:"type"`
			Created  int64  `json:"created"`
			Livemode bool   `json:"livemode"`
			Version  string `json:"api_version"`
		}
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatal(err)
		}
		e := store.Event{ID: env.ID, Type: env.Type, Data: b, ReceivedAt: time.Unix(env.Created+60, 0).UTC(), Created: env.Created,
			Livemode: env.Livemode, APIVersion: env.Version, Source: store.SourceWebhook}
		out = append(out, store.RecordedEvent{Event: e, Stream: fc.AccountStream(account), Revision: uint64(i), Position: store.Position(i + 1)})
	}
	return out
}

// accountsServer: the fixture timeline (received_at = created + 60 s) plus
// four generated accounts that walk its first five events (created, three
// refreshes, deactivated), projected by a real projections.Runner and served
// through the api router.
func accountsServer(t *testing.T) (*httptest.Server, []store.RecordedEvent) {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, sqlite.FileName), sqlite.Options{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	evs := fixtureEvents(t)
	for _, e := range evs {
		if _, err := st.Append(ctx, e.Stream, store.AnyRevision, e.Event); err != nil {
			t.Fatal(err)
		}
	}
	for a := range 4 {
		id := fmt.Sprintf("fca_gen%08d", a)
		for k, e := range evs[:5] {
			g := e.Event
			g.ID = fmt.Sprintf("evt_gen%04d%04d", a, k)
			g.Data = bytes.ReplaceAll(bytes.ReplaceAll(e.Data, []byte(account), []byte(id)), []byte(e.ID), []byte(g.ID))
			if _, err := st.Append(ctx, fc.AccountStream(id), store.AnyRevision, g); err != nil {
				t.Fatal(err)
			}
		}
	}
	r, err := projections.Open(filepath.Join(dir, projections.FileName), st, projections.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitCaughtUp(t, r)
	return newServer(t, api.Config{Store: st, Tokens: []string{token}, Accounts: r}), evs
}

// waitCaughtUp polls until r has nothing left to apply (bounded).
func waitCaughtUp(t *testing.T, r *projections.Runner) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last projections.Status
	for time.Now().Before(deadline) {
		sts, err := r.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		last = sts[0]
		if last.EventsBehind == 0 && last.Error == "" {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("projection did not catch up in 30s: %+v", last)
}

type apiError struct {
	Error struct{ Type, Message, Param string } `json:"error"`
}

// getJSON GETs path with the token and decodes the answer into out.
func getJSON(t *testing.T, ts *httptest.Server, path string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
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

func TestAccountsGetAndTimeTravel(t *testing.T) {
	ts, evs := accountsServer(t)
	t0 := evs[0].Created // 2024-01-15T10:00:00Z
	acct := "/v1/accounts/" + account
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
		{"as_of the zero time", "?as_of=0001-01-01T00:00:00Z", 404, "", 0, ""},
		{"as_of the Unix epoch", "?as_of=1970-01-01T00:00:00Z", 404, "", 0, ""},
		{"as_of the max time", "?as_of=9999-12-31T23:59:59.999999999Z", 200, "disconnected", 7, ""},
		{"known_at the zero time", "?known_at=0001-01-01T00:00:00Z", 404, "", 0, ""},
		{"known_at zero", "?known_at=0", 404, "", 0, ""},
		{"known_at the max time", "?known_at=9999-12-31T23:59:59.999999999Z", 200, "disconnected", 7, ""},
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
			code := getJSON(t, ts, acct+tt.query, &body)
			if code != tt.wantCode {
				t.Fatalf("status %d, want %d: %s", code, tt.wantCode, body)
			}
			switch code {
			case 200:
				var s projections.AccountStatus
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
	if code := getJSON(t, ts, "/v1/accounts/fca_unknown", &e); code != 404 || e.Error.Type != "resource_missing" {
		t.Errorf("unknown account: %d %+v", code, e)
	}
	if code := getJSON(t, ts, "/v1/accounts/fca_unknown?as_of=2100-01-01T00:00:00Z", &e); code != 404 {
		t.Errorf("unknown account as_of: %d", code)
	}
	// The history route is not shadowed by /accounts/{id}.
	var list api.List[json.RawMessage]
	if code := getJSON(t, ts, acct+"/events?limit=100", &list); code != 200 || len(list.Data) != 7 {
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

func TestAccountsList(t *testing.T) {
	ts, _ := accountsServer(t)
	ids := func(l api.List[projections.AccountStatus]) []string {
		var out []string
		for _, a := range l.Data {
			out = append(out, a.ID)
		}
		return out
	}
	var all api.List[projections.AccountStatus]
	if code := getJSON(t, ts, "/v1/accounts?limit=100", &all); code != 200 || len(all.Data) != 5 || all.HasMore || all.Object != "list" || all.URL != "/v1/accounts" {
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
		var l api.List[projections.AccountStatus]
		q := "/v1/accounts?limit=2"
		if after != "" {
			q += "&starting_after=" + after
		}
		if code := getJSON(t, ts, q, &l); code != 200 {
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
		var l api.List[projections.AccountStatus]
		if code := getJSON(t, ts, "/v1/accounts?"+tt.query, &l); code != 200 || len(l.Data) != tt.want {
			t.Errorf("%s: %d, %d accounts; want %d", tt.query, code, len(l.Data), tt.want)
		}
	}
	for _, q := range []string{"livemode=maybe", "limit=0", "limit=101"} {
		var e apiError
		if code := getJSON(t, ts, "/v1/accounts?"+q, &e); code != 400 || e.Error.Type != "invalid_request" {
			t.Errorf("%s: %d %+v", q, code, e)
		}
	}
}

// Read-your-writes: GET /v1/accounts/{id} right after the
// account's first webhook got its 200 answered 404 until the live
// projection caught up. The projection here is not running at all (as
// behind as it gets, deterministically): the answer comes from the stream.
func TestAccountReadYourWrites(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, sqlite.FileName), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	v, err := ingest.NewVerifier([]string{secret}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	r, err := projections.Open(filepath.Join(dir, projections.FileName), st, projections.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	srv := newServer(t, api.Config{Store: st, Ingest: ingest.NewService(v, st, ingest.ServiceOptions{}),
		Tokens: []string{token}, Accounts: r})
	e := &env{t: t, store: st, srv: srv}

	bodies := fixtures(t)
	for i, b := range bodies {
		if code, m := e.post(b, sign(b, time.Now())); code != 200 {
			t.Fatalf("webhook %d: %d %v", i, code, m)
		}
		var got projections.AccountStatus
		if code := getJSON(t, srv, "/v1/accounts/"+account, &got); code != 200 || got.EventsCount != int64(i+1) {
			t.Fatalf("GET after webhook %d: %d, events_count %d; want 200 reflecting it", i, code, got.EventsCount)
		}
	}
	var before projections.AccountStatus
	getJSON(t, srv, "/v1/accounts/"+account, &before)
	if before.Status != "disconnected" {
		t.Errorf("status %q after the whole timeline, want disconnected", before.Status)
	}
	// Once the projection has caught up the answer is the same.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	waitCaughtUp(t, r)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var after projections.AccountStatus
	getJSON(t, srv, "/v1/accounts/"+account, &after)
	b1, _ := json.Marshal(before)
	b2, _ := json.Marshal(after)
	if !bytes.Equal(b1, b2) {
		t.Errorf("from the stream %s\nfrom the read model %s", b1, b2)
	}
}
