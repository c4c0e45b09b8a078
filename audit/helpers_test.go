package audit

import (
	"context"
	"database/sql"
	"fmt"
	mrand "math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver, for tampering with the file directly

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/fcevents"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

// t0 is the tests' fixed clock: 2024-01-15T10:00:00Z.
var t0 = time.Unix(1705312800, 0).UTC()

// testLog is a real SQLite event log in a temporary directory.
type testLog struct {
	path     string
	st       *sqlite.Store
	accounts []string
	// byStream lists every stream's event ids in revision order.
	byStream map[string][]string
	n        int
}

// newTestLog writes an event log of accounts × perAccount FC events,
// interleaved across accounts so that streams mix in store order. Bodies,
// ids and receipt times are deterministic (seeded generator, fixed clock).
func newTestLog(tb testing.TB, accounts, perAccount, size int) *testLog {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), sqlite.FileName)
	st, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	l := &testLog{path: path, st: st, byStream: map[string][]string{}}
	g := &fcevents.Generator{Rand: mrand.New(mrand.NewPCG(1, 2)), Size: size, Customer: "cus_PTm4yEw2xZ8r1K"}
	for a := 0; a < accounts; a++ {
		l.accounts = append(l.accounts, g.NewAccountID())
	}
	l.appendRound(tb, g, perAccount)
	return l
}

// appendRound appends perAccount more events to every account, interleaved.
func (l *testLog) appendRound(tb testing.TB, g *fcevents.Generator, perAccount int) {
	tb.Helper()
	types := fc.Types()
	ctx := context.Background()
	const batch = 256
	pending := map[string][]store.Event{}
	flush := func(stream string) {
		if len(pending[stream]) == 0 {
			return
		}
		if _, err := l.st.Append(ctx, stream, store.AnyRevision, pending[stream]...); err != nil {
			tb.Fatal(err)
		}
		delete(pending, stream)
	}
	for i := 0; i < perAccount; i++ {
		for _, acct := range l.accounts {
			rev := len(l.byStream[fc.AccountStream(acct)])
			ev := makeEvent(tb, g.Event(types[rev%len(types)], acct, t0.Unix()+int64(rev)*60), t0.Add(time.Duration(l.n)*time.Millisecond+123*time.Microsecond))
			stream := fc.AccountStream(acct)
			l.byStream[stream] = append(l.byStream[stream], ev.ID)
			l.n++
			// Append one at a time for small logs (true interleaving); in
			// batches per stream for large benchmark logs.
			pending[stream] = append(pending[stream], ev)
			if perAccount*len(l.accounts) < 5000 || len(pending[stream]) >= batch {
				flush(stream)
			}
		}
	}
	for s := range pending {
		flush(s)
	}
}

// makeEvent builds the store.Event ingest would build for body.
func makeEvent(tb testing.TB, body []byte, received time.Time) store.Event {
	tb.Helper()
	env, err := fc.ParseEnvelope(body)
	if err != nil {
		tb.Fatal(err)
	}
	return store.Event{ID: env.ID, Type: env.Type, Data: body, ReceivedAt: received, Created: env.Created,
		Livemode: env.Livemode, APIVersion: env.APIVersion, ConnectAccount: env.ConnectAccount,
		Source: store.SourceBackfill, Provenance: &store.Provenance{VerifiedAt: received, Note: "test fixture"}}
}

// closeWriter closes the writable handle (before tampering with the file).
func (l *testLog) closeWriter(tb testing.TB) {
	tb.Helper()
	if err := l.st.Close(); err != nil {
		tb.Fatal(err)
	}
}

// openReadOnly opens the file read-only, as verify does.
func openReadOnly(tb testing.TB, path string) *sqlite.Store {
	tb.Helper()
	ro, err := sqlite.Open(path, sqlite.Options{ReadOnly: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ro.Close() })
	return ro
}

// tamper runs SQL statements directly on the SQLite file, as an attacker
// with file access would; every statement must change at least one row.
func tamper(tb testing.TB, path string, stmts ...stmt) {
	tb.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		res, err := db.Exec(s.q, s.args...)
		if err != nil {
			tb.Fatalf("tamper %q: %v", s.q, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			tb.Fatalf("tamper %q changed no row", s.q)
		}
	}
}

type stmt struct {
	q    string
	args []any
}

func sq(q string, args ...any) stmt { return stmt{q: q, args: args} }

// bodyOf reads a stored body directly from the file.
func bodyOf(tb testing.TB, path, id string) []byte {
	tb.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	var b []byte
	if err := db.QueryRow(`SELECT body FROM events WHERE event_id = ?`, id).Scan(&b); err != nil {
		tb.Fatal(err)
	}
	return b
}

var _ = fmt.Sprintf
