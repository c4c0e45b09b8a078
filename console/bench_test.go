package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/api"
	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/fcevents"
	"github.com/fcaudit/fcaudit/projections"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

// Benchmark sizes: an account with 10,000 events, a book of
// 100,000 accounts.
const (
	benchAccountEvents = 10000
	benchAccounts      = 100000
)

// BenchmarkConsole measures server time (the router's ServeHTTP, no
// network) of the account page over an account with 10,000 events and the
// accounts page over 100,000 accounts, on the embedded store, next to a
// plain GET /v1/accounts/{id}/events?limit=100 in the same run.
func BenchmarkConsole(b *testing.B) {
	dir := b.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, sqlite.FileName), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	gen := &fcevents.Generator{}
	big := "fca_bench10kEvents"
	base := time.Now().Add(-400 * 24 * time.Hour).Unix()
	types := fc.Types()[1:4] // the refreshes: the bulk of a real history
	// One account, 10,000 events (a deactivation and a reactivation in
	// the middle, one in 50 delivered late).
	for i := 0; i < benchAccountEvents; i += 500 {
		var evs []store.Event
		for j := i; j < min(i+500, benchAccountEvents); j++ {
			typ := types[j%len(types)]
			switch {
			case j == 0:
				typ = fc.TypeCreated
			case j == benchAccountEvents/2:
				typ = fc.TypeDeactivated
			case j == benchAccountEvents/2+100:
				typ = fc.TypeReactivated
			}
			created := base + int64(j)*3600
			if j%50 == 49 {
				created -= 2 * 3600
			}
			evs = append(evs, benchEvent(gen, typ, big, created))
		}
		if _, err := st.Append(ctx, fc.AccountStream(big), store.AnyRevision, evs...); err != nil {
			b.Fatal(err)
		}
	}
	// 100,000 accounts of one event each, appended concurrently (group
	// commit) as webhooks would be.
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for w := range 32 {
		wg.Go(func() {
			for i := w; i < benchAccounts; i += 32 {
				id := fmt.Sprintf("fca_bench%07d", i)
				typ := fc.TypeCreated
				if i%7 == 3 {
					typ = fc.TypeDeactivated
				}
				if _, err := st.Append(ctx, fc.AccountStream(id), store.AnyRevision, benchEvent(gen, typ, id, base+int64(i))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	r, err := projections.Open(filepath.Join(dir, projections.FileName), st, projections.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	if err := r.Rebuild(ctx, projections.AccountStatusName, store.Filter{}, nil); err != nil {
		b.Fatal(err)
	}
	c, err := New(Config{Accounts: r, Projections: r, Log: st, Tokens: []string{testToken},
		KeyFile: filepath.Join(dir, "console-session.key")})
	if err != nil {
		b.Fatal(err)
	}
	h := api.NewServer(api.Config{Store: st, Tokens: []string{testToken}, Console: c, Accounts: r}).Handler()

	// A session cookie, from a real sign-in.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/console/signin", strings.NewReader(url.Values{"token": {testToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	h.ServeHTTP(rec, req)
	cookie := rec.Result().Cookies()[0]

	serve := func(b *testing.B, path string, auth func(*http.Request), want string) {
		b.Helper()
		b.ReportAllocs()
		var bytes int
		cpu0 := cpuTime()
		for b.Loop() {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			auth(req)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
				b.Fatalf("GET %s: %d", path, rec.Code)
			}
			bytes = rec.Body.Len()
		}
		// CPU time of the whole process per request (GC included): on a
		// shared machine the wall time (ns/op) also counts waiting for a core.
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
		b.ReportMetric(float64(bytes), "page-bytes")
	}
	console := func(req *http.Request) { req.AddCookie(cookie) }
	bearer := func(req *http.Request) { req.Header.Set("Authorization", "Bearer "+testToken) }
	b.Run("account_page_10k_events", func(b *testing.B) {
		serve(b, "/console/accounts/"+big, console, `data-status="active"`)
	})
	b.Run("account_page_10k_events_as_of", func(b *testing.B) {
		serve(b, "/console/accounts/"+big+"?as_of="+fmt.Sprint(base+int64(benchAccountEvents/2+50)*3600), console, `data-status="inactive"`)
	})
	b.Run("accounts_page_100k_accounts", func(b *testing.B) {
		serve(b, "/console/accounts", console, `data-count="inactive"`)
	})
	b.Run("accounts_page_100k_accounts_filtered", func(b *testing.B) {
		serve(b, "/console/accounts?status=inactive&prefix=fca_bench00", console, `data-count="inactive"`)
	})
	b.Run("api_account_events_limit_100", func(b *testing.B) {
		serve(b, "/v1/accounts/"+big+"/events?limit=100", bearer, `"has_more":true`)
	})
}

func benchEvent(gen *fcevents.Generator, typ, account string, created int64) store.Event {
	body := gen.Event(typ, account, created)
	var ev struct{ ID string }
	_ = json.Unmarshal(body, &ev)
	return store.Event{ID: ev.ID, Type: typ, Data: body, Created: created,
		ReceivedAt: time.Unix(created+2, 0).UTC(), APIVersion: fcevents.APIVersion, Source: store.SourceWebhook}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
