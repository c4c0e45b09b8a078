package backfill_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/backfill"
	"github.com/fcaudit/fcaudit/backfill/backfilltest"
	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/internal/fcevents"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

const (
	apiKey = "sk_test_backfill_4242"
	secret = "whsec_backfill_test"
	// t0 is the oldest generated event; since is the listing bound.
	t0 = 1764000000
)

var (
	since = time.Unix(t0, 0)
	now   = time.Unix(t0+10*86400, 0).UTC()
)

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), sqlite.FileName), sqlite.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// timeline makes n events spread over accounts, created one minute apart
// starting at t0 (some in the same second, to exercise ties), returned
// oldest first.
func timeline(t *testing.T, n int, accounts ...string) [][]byte {
	t.Helper()
	g := &fcevents.Generator{Rand: rand.New(rand.NewPCG(uint64(n), 7))}
	types := fc.Types()
	var out [][]byte
	for i := range n {
		created := int64(t0 + 60*(i/2)) // pairs share a second
		out = append(out, g.Event(types[i%len(types)], accounts[i%len(accounts)], created))
	}
	return out
}

func envOf(t *testing.T, body []byte) fc.Envelope {
	t.Helper()
	env, err := fc.ParseEnvelope(body)
	if err != nil {
		t.Fatalf("parse generated event: %v", err)
	}
	return env
}

func opts(srv *backfilltest.Server) backfill.Options {
	return backfill.Options{
		APIKey:  apiKey,
		APIBase: srv.URL,
		Since:   since,
		Now:     func() time.Time { return now },
	}
}

// allEvents reads the whole log.
func allEvents(t *testing.T, st store.Store) []store.RecordedEvent {
	t.Helper()
	evs, err := st.ReadAll(context.Background(), store.ReadOptions{Limit: 10000})
	if err != nil {
		t.Fatalf("read log: %v", err)
	}
	return evs
}

func TestRunPaginatesFiltersAndAppends(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	srv := backfilltest.New(t, apiKey)
	accts := []string{"fca_1AAAAAAAAAAAAAAAAAAAAAAA", "fca_1BBBBBBBBBBBBBBBBBBBBBBB", "fca_1CCCCCCCCCCCCCCCCCCCCCCC"}
	bodies := timeline(t, 23, accts...)
	srv.Add(bodies...)
	// Outside the filters: too old, and not an FC account type.
	g := &fcevents.Generator{Rand: rand.New(rand.NewPCG(1, 1))}
	srv.Add(g.Event(fc.TypeCreated, accts[0], t0-1))
	srv.Add([]byte(`{"id":"evt_customer1","object":"event","type":"customer.created","created":` + strconv.Itoa(t0+5) +
		`,"livemode":false,"api_version":"2023-10-16","data":{"object":{"id":"cus_1","object":"customer"}}}`))

	o := opts(srv)
	o.PageSize = 5
	var progress []backfill.Progress
	o.Progress = func(p backfill.Progress) { progress = append(progress, p) }
	rep, err := backfill.Run(ctx, st, o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.Fetched != 23 || rep.AlreadyStored != 0 || rep.Appended != 23 || rep.Ignored != 0 || len(rep.Gaps) != 23 {
		t.Fatalf("report = fetched %d, stored %d, appended %d, ignored %d, gaps %d; want 23/0/23/0/23",
			rep.Fetched, rep.AlreadyStored, rep.Appended, rep.Ignored, len(rep.Gaps))
	}

	// Requests: 5 pages of at most 5, each with the filters and the key,
	// chained by starting_after.
	reqs := srv.Requests()
	if len(reqs) != 5 {
		t.Fatalf("%d requests, want 5 pages", len(reqs))
	}
	wantTypes := slices.Clone(backfill.EventTypes)
	for i, r := range reqs {
		if r.Authorization != "Bearer "+apiKey {
			t.Errorf("request %d: Authorization %q", i, r.Authorization)
		}
		if !slices.Equal(r.Types, wantTypes) || r.Type != "" {
			t.Errorf("request %d: types %v type %q, want %v", i, r.Types, r.Type, wantTypes)
		}
		if r.CreatedGTE != strconv.Itoa(t0) || r.Limit != "5" {
			t.Errorf("request %d: created[gte]=%q limit=%q", i, r.CreatedGTE, r.Limit)
		}
		if (i == 0) != (r.StartingAfter == "") {
			t.Errorf("request %d: starting_after %q", i, r.StartingAfter)
		}
	}
	for _, typ := range wantTypes {
		if !strings.HasPrefix(typ, fc.AccountEventPrefix) {
			t.Errorf("EventTypes has %q", typ)
		}
	}

	// Stored: byte for byte as in the page, in the right streams, with
	// backfill provenance naming the key's fingerprint only, oldest first
	// in each stream.
	stored := allEvents(t, st)
	if len(stored) != 23 {
		t.Fatalf("log has %d events, want 23", len(stored))
	}
	byID := map[string]store.RecordedEvent{}
	for _, e := range stored {
		byID[e.ID] = e
	}
	wantNote := "fetched from the Events API with key fingerprint " + ingest.Fingerprint(apiKey)
	for _, b := range bodies {
		env := envOf(t, b)
		e, ok := byID[env.ID]
		if !ok {
			t.Errorf("%s not stored", env.ID)
			continue
		}
		if !bytes.Equal(e.Data, bytes.TrimSpace(b)) {
			t.Errorf("%s: stored body differs from the listed bytes", env.ID)
		}
		if e.Stream != fc.AccountStream(env.ObjectID) || e.Type != env.Type || e.Created != env.Created ||
			e.APIVersion != env.APIVersion || e.Livemode != env.Livemode {
			t.Errorf("%s: metadata %+v does not match envelope %+v", env.ID, e.Event, env)
		}
		if e.Source != store.SourceBackfill {
			t.Errorf("%s: source %q", env.ID, e.Source)
		}
		p := e.Provenance
		if p == nil || p.Note != wantNote || p.SignatureHeader != "" || !p.VerifiedAt.Equal(now) || !e.ReceivedAt.Equal(now) {
			t.Errorf("%s: provenance %+v received %v", env.ID, p, e.ReceivedAt)
		}
		if strings.Contains(fmt.Sprintf("%+v", p), apiKey) {
			t.Errorf("%s: provenance contains the API key", env.ID)
		}
	}
	for _, a := range accts {
		evs, err := st.ReadStream(ctx, fc.AccountStream(a), 0, 0)
		if err != nil {
			t.Fatalf("read %s: %v", a, err)
		}
		if !slices.IsSortedFunc(evs, func(x, y store.RecordedEvent) int { return int(x.Created - y.Created) }) {
			t.Errorf("%s: revisions are not in created order", a)
		}
	}
	// Gaps are oldest first, ties in the order Stripe created them.
	for i, g := range rep.Gaps {
		if want := envOf(t, bodies[i]).ID; g.ID != want || !g.Appended {
			t.Fatalf("gap %d = %s (appended %t), want %s appended", i, g.ID, g.Appended, want)
		}
	}
	if len(progress) == 0 || progress[len(progress)-1].Appended != 23 || progress[len(progress)-1].Phase != "appending" {
		t.Errorf("progress = %+v", progress)
	}

	// Rerun: nothing new.
	rep2, err := backfill.Run(ctx, st, opts(srv))
	if err != nil {
		t.Fatalf("second Run: %v", err)
	}
	if rep2.Fetched != 23 || rep2.AlreadyStored != 23 || rep2.Appended != 0 || len(rep2.Gaps) != 0 {
		t.Errorf("second run: %s, gaps %d", rep2.Summary(), len(rep2.Gaps))
	}
	if n := len(allEvents(t, st)); n != 23 {
		t.Errorf("log has %d events after the rerun, want 23", n)
	}
}

// TestIdempotentWithWebhooks: the same Stripe event id is one stored event
// whichever path stores it first.
func TestIdempotentWithWebhooks(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	srv := backfilltest.New(t, apiKey)
	bodies := timeline(t, 10, "fca_1WWWWWWWWWWWWWWWWWWWWWWW", "fca_1XXXXXXXXXXXXXXXXXXXXXXX")
	srv.Add(bodies...)

	verifier, err := ingest.NewVerifier([]string{secret}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	svc := ingest.NewService(verifier, st, ingest.ServiceOptions{})
	deliver := func(body []byte) store.Appended {
		t.Helper()
		res, err := svc.Ingest(ctx, body, fcevents.Sign(body, secret, time.Now()))
		if err != nil {
			t.Fatalf("webhook: %v", err)
		}
		return res
	}
	// Webhooks first for four events.
	webhookIDs := map[string]bool{}
	for _, i := range []int{0, 3, 4, 9} {
		deliver(bodies[i])
		webhookIDs[envOf(t, bodies[i]).ID] = true
	}

	rep, err := backfill.Run(ctx, st, opts(srv))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got, want := rep.Summary(), "fetched 10, already stored 4, appended 6"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	for _, g := range rep.Gaps {
		if webhookIDs[g.ID] {
			t.Errorf("gap report lists %s, which came by webhook", g.ID)
		}
	}
	stored := allEvents(t, st)
	if len(stored) != 10 {
		t.Fatalf("log has %d events, want 10", len(stored))
	}
	for _, e := range stored {
		want := store.SourceBackfill
		if webhookIDs[e.ID] {
			want = store.SourceWebhook
		}
		if e.Source != want {
			t.Errorf("%s: source %q, want %q", e.ID, e.Source, want)
		}
	}

	// A webhook arriving after the backfill is a duplicate of it.
	late := bodies[5]
	res := deliver(late)
	orig, err := st.EventByID(ctx, envOf(t, late).ID)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Duplicate || res.Position != orig.Position || orig.Source != store.SourceBackfill {
		t.Errorf("late webhook = %+v, original %s at %d", res, orig.Source, orig.Position)
	}

	// And a second backfill appends nothing.
	rep, err = backfill.Run(ctx, st, opts(srv))
	if err != nil {
		t.Fatalf("second Run: %v", err)
	}
	if got, want := rep.Summary(), "fetched 10, already stored 10, appended 0"; got != want {
		t.Errorf("second summary %q, want %q", got, want)
	}
}

// raceLog claims every event is missing, so Run relies on Append's own
// duplicate detection (a webhook landing between the check and the append).
type raceLog struct{ *sqlite.Store }

func (raceLog) EventByID(context.Context, string) (store.RecordedEvent, error) {
	return store.RecordedEvent{}, fmt.Errorf("look up: %w", store.ErrEventNotFound)
}

func TestAppendDuplicateIsAlreadyStored(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	srv := backfilltest.New(t, apiKey)
	bodies := timeline(t, 4, "fca_1RRRRRRRRRRRRRRRRRRRRRRR")
	srv.Add(bodies...)
	if _, err := backfill.Run(ctx, st, opts(srv)); err != nil {
		t.Fatal(err)
	}
	rep, err := backfill.Run(ctx, raceLog{st}, opts(srv))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got, want := rep.Summary(), "fetched 4, already stored 4, appended 0"; got != want || len(rep.Gaps) != 0 {
		t.Errorf("summary %q (gaps %d), want %q and no gaps", got, len(rep.Gaps), want)
	}
	if n := len(allEvents(t, st)); n != 4 {
		t.Errorf("log has %d events, want 4", n)
	}
}

func TestConnectAccountAndOtherAPIVersions(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	srv := backfilltest.New(t, apiKey)
	var bodies [][]byte
	for _, name := range []string{"connect_account.created.json", "api_version_2024-06-20.account.created.json", "newer_fields.account.refreshed_balance.json"} {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "stripe", "variants", name))
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, b)
	}
	srv.Add(bodies...)
	o := opts(srv)
	o.Since = time.Unix(1705312800, 0) // the fixtures' T0
	rep, err := backfill.Run(ctx, st, o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.Appended != 3 {
		t.Fatalf("appended %d, want 3", rep.Appended)
	}
	for _, b := range bodies {
		env := envOf(t, b)
		e, err := st.EventByID(ctx, env.ID)
		if err != nil {
			t.Fatalf("%s: %v", env.ID, err)
		}
		if e.APIVersion != env.APIVersion || e.ConnectAccount != env.ConnectAccount || !bytes.Equal(e.Data, bytes.TrimSpace(b)) {
			t.Errorf("%s: api_version %q connect %q (want %q %q), body equal %t",
				env.ID, e.APIVersion, e.ConnectAccount, env.APIVersion, env.ConnectAccount, bytes.Equal(e.Data, bytes.TrimSpace(b)))
		}
	}
	var connect, versions int
	for _, g := range rep.Gaps {
		if g.ConnectAccount == "acct_1OeWz12eZvKYlo2C" {
			connect++
		}
	}
	for _, e := range allEvents(t, st) {
		if e.APIVersion == "2024-06-20" {
			versions++
		}
	}
	if connect != 1 || versions != 1 {
		t.Errorf("connect gaps %d, 2024-06-20 events %d; want 1 and 1", connect, versions)
	}
}

// TestStripeAccountHeader: with StripeAccount every listing request carries
// the Stripe-Account header (a platform reading a connected account's
// events) and the stored provenance names the account; without it no
// request does.
func TestStripeAccountHeader(t *testing.T) {
	ctx := context.Background()
	const acct = "acct_1OeWz12eZvKYlo2C"
	for _, account := range []string{acct, ""} {
		st := openStore(t)
		srv := backfilltest.New(t, apiKey)
		srv.Add(timeline(t, 3, "fca_1AAAAAAAAAAAAAAAAAAAAAAA")...)
		o := opts(srv)
		o.StripeAccount = account
		o.PageSize = 1 // several requests
		rep, err := backfill.Run(ctx, st, o)
		if err != nil || rep.Appended != 3 {
			t.Fatalf("account %q: Run appended %d, %v", account, rep.Appended, err)
		}
		reqs := srv.Requests()
		if len(reqs) < 3 {
			t.Fatalf("account %q: %d requests, want one per page", account, len(reqs))
		}
		for i, r := range reqs {
			if r.StripeAccount != account {
				t.Errorf("account %q: request %d had Stripe-Account %q", account, i, r.StripeAccount)
			}
		}
		for _, e := range allEvents(t, st) {
			named := e.Provenance != nil && strings.Contains(e.Provenance.Note, "as connected account "+acct)
			if named != (account != "") {
				t.Errorf("account %q: event %s provenance %+v", account, e.ID, e.Provenance)
			}
		}
	}
}

func TestDryRunAppendsNothing(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	srv := backfilltest.New(t, apiKey)
	bodies := timeline(t, 6, "fca_1DDDDDDDDDDDDDDDDDDDDDDD", "fca_1EEEEEEEEEEEEEEEEEEEEEEE")
	srv.Add(bodies...)
	verifier, _ := ingest.NewVerifier([]string{secret}, 5*time.Minute)
	svc := ingest.NewService(verifier, st, ingest.ServiceOptions{})
	if _, err := svc.Ingest(ctx, bodies[2], fcevents.Sign(bodies[2], secret, time.Now())); err != nil {
		t.Fatal(err)
	}
	o := opts(srv)
	o.DryRun = true
	rep, err := backfill.Run(ctx, st, o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got, want := rep.Summary(), "fetched 6, already stored 1, appended 0 (dry run: 5 missing)"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	if n := len(allEvents(t, st)); n != 1 {
		t.Errorf("dry run left %d events in the log, want the 1 webhook", n)
	}
	var out strings.Builder
	if err := rep.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for i, b := range bodies {
		env := envOf(t, b)
		line := env.ID + "  " + env.Type
		if got := strings.Contains(text, line); got != (i != 2) {
			t.Errorf("report lists %s: %t, want %t\n%s", env.ID, got, i != 2, text)
		}
	}
	for _, want := range []string{"dry run, nothing appended", "fca_1DDDDDDDDDDDDDDDDDDDDDDD (2)", "fca_1EEEEEEEEEEEEEEEEEEEEEEE (3)",
		time.Unix(t0, 0).UTC().Format(time.RFC3339), "fetched 6, already stored 1, appended 0 (dry run: 5 missing)\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
}

func TestRunErrors(t *testing.T) {
	bodies := timeline(t, 8, "fca_1FFFFFFFFFFFFFFFFFFFFFFF")
	serverError := backfilltest.ErrorBody("api_error", "Something went wrong on Stripe's end.")
	tests := []struct {
		name    string
		key     string
		retries int
		fail    func(n int, r backfilltest.Request) (int, string)
		// base replaces the server URL when set.
		base     func(t *testing.T) string
		wantErr  error
		wantMsg  []string
		wantReqs int
		// ok: Run succeeds (a retried failure) and appends everything.
		ok bool
	}{
		{name: "wrong key", key: "sk_test_wrong", wantErr: backfill.ErrKeyRejected,
			wantMsg: []string{"Stripe rejected the API key", "HTTP 401", "Invalid API Key provided"}, wantReqs: 1},
		{name: "forbidden key", fail: status(1, 1, http.StatusForbidden, backfilltest.ErrorBody("invalid_request_error", "The provided key does not have the required permissions")),
			wantErr: backfill.ErrKeyRejected, wantMsg: []string{"HTTP 403", "required permissions"}, wantReqs: 1},
		{name: "500 then retried", retries: 2, fail: status(1, 1, 500, serverError), ok: true, wantReqs: 3},
		{name: "500 on the second page then retried", retries: 1, fail: status(2, 2, 500, serverError), ok: true, wantReqs: 3},
		{name: "500 beyond the retries", retries: 1, fail: status(1, 99, 500, serverError),
			wantErr: backfill.ErrAPI, wantMsg: []string{"HTTP 500", "Something went wrong", "req_fake"}, wantReqs: 2},
		{name: "500 on the second page, no retries", retries: -1, fail: status(2, 99, 500, serverError),
			wantErr: backfill.ErrAPI, wantReqs: 2},
		{name: "plain 429 waits and resumes", retries: -1, fail: status(2, 3, http.StatusTooManyRequests,
			backfilltest.ErrorBody("invalid_request_error", "Too many requests")), ok: true, wantReqs: 4},
		{name: "body that is not a Stripe error", retries: -1, fail: status(1, 1, http.StatusBadGateway, "<html>bad gateway</html>"),
			wantErr: backfill.ErrAPI, wantMsg: []string{"bad gateway"}, wantReqs: 1},
		{name: "unreachable", retries: 1, base: closedURL, wantErr: backfill.ErrUnreachable,
			wantMsg: []string{"cannot reach the Stripe API at http://127.0.0.1:", "connection refused"}},
		{name: "garbled page", retries: -1, fail: status(1, 1, 200, `{"object":"list","data":[{"id":"evt_x","object":"event"}],"has_more":false}`),
			wantErr: backfill.ErrBadEvent, wantReqs: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st := openStore(t)
			srv := backfilltest.New(t, apiKey)
			srv.Add(bodies...)
			if tt.fail != nil {
				srv.FailWith(tt.fail)
			}
			o := opts(srv)
			o.PageSize = 4
			o.MaxNetworkRetries = tt.retries
			o.RateLimitWait = time.Millisecond
			if tt.key != "" {
				o.APIKey = tt.key
			}
			if tt.base != nil {
				o.APIBase = tt.base(t)
			}
			rep, err := backfill.Run(ctx, st, o)
			if tt.wantReqs > 0 {
				if n := len(srv.Requests()); n != tt.wantReqs {
					t.Errorf("%d requests, want %d", n, tt.wantReqs)
				}
			}
			stored := len(allEvents(t, st))
			if tt.ok {
				if err != nil || rep.Appended != 8 || stored != 8 {
					t.Fatalf("Run = %v, appended %d, log %d; want success with 8", err, rep.Appended, stored)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q lacks %q", err, m)
				}
			}
			if strings.Contains(err.Error(), o.APIKey) {
				t.Errorf("error %q contains the API key", err)
			}
			// A listing failure appends nothing.
			if rep.Appended != 0 || stored != 0 {
				t.Errorf("appended %d, log has %d; want nothing", rep.Appended, stored)
			}
		})
	}
}

// status fails requests from..to (1-based) with code and body.
func status(from, to, code int, body string) func(int, backfilltest.Request) (int, string) {
	return func(n int, _ backfilltest.Request) (int, string) {
		if n >= from && n <= to {
			return code, body
		}
		return 0, ""
	}
}

// closedURL returns the URL of a loopback port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func TestKeyInErrorIsRedacted(t *testing.T) {
	srv := backfilltest.New(t, apiKey)
	// A mock that echoes the key, as stripe-mock does.
	srv.FailWith(func(_ int, r backfilltest.Request) (int, string) {
		return 401, backfilltest.ErrorBody("invalid_request_error", "Authorization was '"+r.Authorization+"'")
	})
	_, err := backfill.Run(context.Background(), openStore(t), opts(srv))
	if !errors.Is(err, backfill.ErrKeyRejected) || strings.Contains(err.Error(), apiKey) ||
		!strings.Contains(err.Error(), ingest.Fingerprint(apiKey)) {
		t.Errorf("err = %v: want ErrKeyRejected naming the fingerprint, not the key", err)
	}
}

// failingLog fails the nth Append.
type failingLog struct {
	*sqlite.Store
	n, calls int
}

func (f *failingLog) Append(ctx context.Context, stream string, exp store.ExpectedRevision, evs ...store.Event) ([]store.Appended, error) {
	f.calls++
	if f.calls == f.n {
		return nil, fmt.Errorf("disk on fire: %w", store.ErrUnavailable)
	}
	return f.Store.Append(ctx, stream, exp, evs...)
}

func TestAppendFailureKeepsWhatWasAppended(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	srv := backfilltest.New(t, apiKey)
	bodies := timeline(t, 6, "fca_1GGGGGGGGGGGGGGGGGGGGGGG")
	srv.Add(bodies...)
	rep, err := backfill.Run(ctx, &failingLog{Store: st, n: 4}, opts(srv))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if rep.Appended != 3 || len(allEvents(t, st)) != 3 {
		t.Fatalf("appended %d (log %d), want 3", rep.Appended, len(allEvents(t, st)))
	}
	var appended, not int
	for _, g := range rep.Gaps {
		if g.Appended {
			appended++
		} else {
			not++
		}
	}
	if appended != 3 || not != 3 {
		t.Errorf("gaps: %d appended, %d not; want 3 and 3", appended, not)
	}
	var out strings.Builder
	rep.WriteText(&out)
	if strings.Count(out.String(), "not appended") != 3 {
		t.Errorf("report:\n%s", out.String())
	}
	// The next run completes the job.
	rep, err = backfill.Run(ctx, st, opts(srv))
	if err != nil || rep.Summary() != "fetched 6, already stored 3, appended 3" {
		t.Errorf("rerun: %v, %s", err, rep.Summary())
	}
}

func TestOptionsValidation(t *testing.T) {
	st := openStore(t)
	for _, o := range []backfill.Options{
		{APIKey: ""},
		{APIKey: "  "},
		{APIKey: apiKey, APIBase: "ftp://example.com"},
		{APIKey: apiKey, APIBase: "not a url"},
	} {
		if _, err := backfill.Run(context.Background(), st, o); err == nil {
			t.Errorf("Run(%+v) succeeded", o)
		}
	}
}

func TestDefaultSinceIsRetention(t *testing.T) {
	srv := backfilltest.New(t, apiKey)
	o := opts(srv)
	o.Since = time.Time{}
	rep, err := backfill.Run(context.Background(), openStore(t), o)
	if err != nil {
		t.Fatal(err)
	}
	want := now.Add(-backfill.RetentionPeriod)
	if !rep.Since.Equal(want) || srv.Requests()[0].CreatedGTE != strconv.FormatInt(want.Unix(), 10) {
		t.Errorf("since %v, created[gte]=%s; want %v", rep.Since, srv.Requests()[0].CreatedGTE, want)
	}
}

func TestCancelledContext(t *testing.T) {
	srv := backfilltest.New(t, apiKey)
	srv.Add(timeline(t, 3, "fca_1HHHHHHHHHHHHHHHHHHHHHHH")...)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	st := openStore(t)
	_, err := backfill.Run(ctx, st, opts(srv))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if n := len(allEvents(t, st)); n != 0 {
		t.Errorf("log has %d events", n)
	}
}
