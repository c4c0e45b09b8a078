package audit

import (
	"bytes"
	"context"
	"errors"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/fcevents"

	"github.com/fcaudit/fcaudit/store"
)

func TestVerifyIntact(t *testing.T) {
	for _, tc := range []struct {
		name               string
		accounts, per      int
		pageSize           int
		wantEvents, wantSt int
	}{
		{"one stream", 1, 7, 0, 7, 1},
		{"many streams, pages smaller than the log", 40, 9, 7, 360, 40},
		{"many streams, one page", 25, 4, 0, 100, 25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newTestLog(t, tc.accounts, tc.per, 0)
			var progress []Progress
			rep, err := Verify(context.Background(), l.st, VerifyOptions{PageSize: tc.pageSize,
				Progress: func(p Progress) { progress = append(progress, p) }})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Intact() {
				t.Fatalf("intact log reported damaged: %v", rep.Damaged)
			}
			if rep.Events != int64(tc.wantEvents) || rep.Streams != tc.wantSt || rep.Head != store.Position(tc.wantEvents) {
				t.Errorf("events %d streams %d head %d, want %d %d %d", rep.Events, rep.Streams, rep.Head, tc.wantEvents, tc.wantSt, tc.wantEvents)
			}
			if len(progress) == 0 || progress[len(progress)-1].Position != rep.Head || progress[len(progress)-1].Events != rep.Events {
				t.Errorf("last progress %+v, want position %d events %d", progress, rep.Head, rep.Events)
			}
			for stream, ids := range l.byStream {
				h, ok := rep.Heads[stream]
				if !ok || h.Revision != uint64(len(ids)-1) {
					t.Fatalf("head of %s = %+v (found %v), want revision %d", stream, h, ok, len(ids)-1)
				}
				last, err := l.st.EventByID(context.Background(), ids[len(ids)-1])
				if err != nil {
					t.Fatal(err)
				}
				if h.ChainHash != last.ChainHash {
					t.Errorf("head chain of %s differs from the stored last chain hash", stream)
				}
			}
		})
	}
}

func TestVerifyEmptyLog(t *testing.T) {
	l := newTestLog(t, 0, 0, 0)
	rep, err := Verify(context.Background(), l.st, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Intact() || rep.Events != 0 || rep.Streams != 0 {
		t.Fatalf("empty log: %+v", rep)
	}
}

// TestVerifyTamper edits the SQLite file directly and expects Verify (and
// VerifyStream) to name the first broken event of exactly the damaged stream.
func TestVerifyTamper(t *testing.T) {
	const victim = 1 // index of the damaged account
	for _, tc := range []struct {
		name string
		// edit returns the statements and the revision and id of the event
		// that must be reported.
		edit        func(l *testLog, ids []string) ([]stmt, int, string)
		wantProblem Problem
	}{
		{"payload byte changed", func(l *testLog, ids []string) ([]stmt, int, string) {
			b := bodyOf(t, l.path, ids[2])
			i := bytes.Index(b, []byte(`"last4": "`)) + len(`"last4": "`)
			b[i] = map[bool]byte{true: '1', false: '0'}[b[i] == '0']
			return []stmt{sq(`UPDATE events SET body = ? WHERE event_id = ?`, b, ids[2])}, 2, ids[2]
		}, ProblemBodyHash},
		{"row deleted", func(_ *testLog, ids []string) ([]stmt, int, string) {
			return []stmt{sq(`DELETE FROM events WHERE event_id = ?`, ids[2])}, 3, ids[3]
		}, ProblemMissingRevision},
		{"first row deleted", func(_ *testLog, ids []string) ([]stmt, int, string) {
			return []stmt{sq(`DELETE FROM events WHERE event_id = ?`, ids[0])}, 1, ids[1]
		}, ProblemMissingRevision},
		{"two rows' bodies swapped", func(l *testLog, ids []string) ([]stmt, int, string) {
			return []stmt{
				sq(`UPDATE events SET body = ? WHERE event_id = ?`, bodyOf(t, l.path, ids[4]), ids[3]),
				sq(`UPDATE events SET body = ? WHERE event_id = ?`, bodyOf(t, l.path, ids[3]), ids[4]),
			}, 3, ids[3]
		}, ProblemBodyHash},
		{"bodies and body hashes swapped", func(l *testLog, ids []string) ([]stmt, int, string) {
			return []stmt{
				sq(`UPDATE events SET body = ?, body_sha256 = (SELECT body_sha256 FROM events WHERE event_id = ?) WHERE event_id = ?`, bodyOf(t, l.path, ids[4]), ids[4], ids[3]),
				sq(`UPDATE events SET body = ?, body_sha256 = (SELECT body_sha256 FROM events WHERE event_id = ?) WHERE event_id = ?`, bodyOf(t, l.path, ids[3]), ids[3], ids[4]),
			}, 3, ids[3]
		}, ProblemChainHash},
		{"received_at changed by 1µs", func(_ *testLog, ids []string) ([]stmt, int, string) {
			return []stmt{sq(`UPDATE events SET received_at = received_at + 1 WHERE event_id = ?`, ids[5])}, 5, ids[5]
		}, ProblemChainHash},
		{"stored chain_hash changed", func(_ *testLog, ids []string) ([]stmt, int, string) {
			return []stmt{sq(`UPDATE events SET chain_hash = zeroblob(32) WHERE event_id = ?`, ids[1])}, 1, ids[1]
		}, ProblemChainHash},
		{"event id changed", func(_ *testLog, ids []string) ([]stmt, int, string) {
			return []stmt{sq(`UPDATE events SET event_id = 'evt_forged' WHERE event_id = ?`, ids[4])}, 4, "evt_forged"
		}, ProblemChainHash},
		{"type changed (not chained, derived from the body)", func(_ *testLog, ids []string) ([]stmt, int, string) {
			return []stmt{sq(`UPDATE events SET type = 'financial_connections.account.disconnected' WHERE event_id = ?`, ids[1])}, 1, ids[1]
		}, ProblemMetadata},
		{"created changed", func(_ *testLog, ids []string) ([]stmt, int, string) {
			return []stmt{sq(`UPDATE events SET created = created - 86400 WHERE event_id = ?`, ids[6])}, 6, ids[6]
		}, ProblemMetadata},
		{"livemode changed", func(_ *testLog, ids []string) ([]stmt, int, string) {
			return []stmt{sq(`UPDATE events SET livemode = 1 WHERE event_id = ?`, ids[0])}, 0, ids[0]
		}, ProblemMetadata},
		{"source changed to fcaudit's own", func(_ *testLog, ids []string) ([]stmt, int, string) {
			return []stmt{sq(`UPDATE events SET source = 'fcaudit' WHERE event_id = ?`, ids[2])}, 2, ids[2]
		}, ProblemMetadata},
		{"two rows' revisions swapped (reordered)", func(_ *testLog, ids []string) ([]stmt, int, string) {
			return []stmt{
				sq(`UPDATE events SET revision = -1 WHERE event_id = ?`, ids[2]),
				sq(`UPDATE events SET revision = 2 WHERE event_id = ?`, ids[3]),
				sq(`UPDATE events SET revision = 3 WHERE event_id = ?`, ids[2]),
			}, 3, ids[2] // now at revision 3, read first in store order
		}, ProblemMissingRevision},
		{"rows' positions swapped (reordered)", func(l *testLog, ids []string) ([]stmt, int, string) {
			p2, p3 := l.position(t, ids[2]), l.position(t, ids[3])
			return []stmt{
				sq(`UPDATE events SET position = -1 WHERE event_id = ?`, ids[2]),
				sq(`UPDATE events SET position = ? WHERE event_id = ?`, p2, ids[3]),
				sq(`UPDATE events SET position = ? WHERE event_id = ?`, p3, ids[2]),
			}, 3, ids[3]
		}, ProblemMissingRevision},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newTestLog(t, 3, 7, 0)
			stream := l.streamOf(victim)
			ids := l.byStream[stream]
			stmts, wantRev, wantID := tc.edit(l, ids)
			l.closeWriter(t)
			tamper(t, l.path, stmts...)
			ro := openReadOnly(t, l.path)

			rep, err := Verify(context.Background(), ro, VerifyOptions{PageSize: 4})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Damaged) != 1 {
				t.Fatalf("damaged = %v, want exactly stream %s", rep.Damaged, stream)
			}
			b := rep.Damaged[0]
			if b.Stream != stream || b.Revision != uint64(wantRev) || b.ID != wantID || b.Problem != tc.wantProblem {
				t.Errorf("break = %v\nwant stream %s revision %d id %s problem %s", b, stream, wantRev, wantID, tc.wantProblem)
			}
			if b.Reason == "" || !strings.Contains(b.String(), b.ID) {
				t.Errorf("break %v does not explain itself", b)
			}

			sr, err := VerifyStream(context.Background(), ro, stream, VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// VerifyStream reads in revision order, Verify in store order:
			// for reordered rows "first" differs, but never by more.
			reordered := strings.Contains(tc.name, "reordered")
			if sr.FirstBroken == nil || sr.FirstBroken.Revision > b.Revision ||
				(!reordered && (sr.FirstBroken.ID != b.ID || sr.FirstBroken.Revision != b.Revision)) {
				t.Errorf("VerifyStream first broken = %v, want %v", sr.FirstBroken, b)
			}
			for _, other := range []int{0, 2} {
				sr, err := VerifyStream(context.Background(), ro, l.streamOf(other), VerifyOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if sr.FirstBroken != nil {
					t.Errorf("undamaged stream %s reported: %v", sr.Stream, sr.FirstBroken)
				}
			}
		})
	}
}

func (l *testLog) streamOf(i int) string { return fc.AccountStream(l.accounts[i]) }

func (l *testLog) position(tb testing.TB, id string) int64 {
	tb.Helper()
	e, err := l.st.EventByID(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	return int64(e.Position)
}

func TestVerifyStreamNotFound(t *testing.T) {
	l := newTestLog(t, 1, 1, 0)
	_, err := VerifyStream(context.Background(), l.st, fc.AccountStream("fca_nope"), VerifyOptions{})
	if !errors.Is(err, store.ErrStreamNotFound) {
		t.Fatalf("err = %v, want ErrStreamNotFound", err)
	}
}

// TestVerifyWhileAppending runs Verify on a read-only handle while another
// handle keeps appending: every run must see an intact log of at least the
// events committed before it started.
func TestVerifyWhileAppending(t *testing.T) {
	l := newTestLog(t, 10, 3, 0)
	ro := openReadOnly(t, l.path)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var committed atomic.Int64
	committed.Store(int64(l.n))
	g := &fcevents.Generator{Rand: mrand.New(mrand.NewPCG(3, 4))}
	var wg sync.WaitGroup
	wg.Add(1)
	errc := make(chan error, 1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			acct := l.accounts[i%len(l.accounts)]
			ev := makeEvent(t, g.Event(fc.TypeRefreshedBalance, acct, t0.Unix()+3600+int64(i)), t0.Add(time.Hour+time.Duration(i)*time.Microsecond))
			if _, err := l.st.Append(ctx, fc.AccountStream(acct), store.AnyRevision, ev); err != nil {
				if ctx.Err() == nil {
					errc <- err
				}
				return
			}
			committed.Add(1)
		}
	}()
	for run := 0; run < 5; run++ {
		before := committed.Load()
		rep, err := Verify(ctx, ro, VerifyOptions{PageSize: 16})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Intact() {
			t.Fatalf("run %d: intact log reported damaged while appending: %v", run, rep.Damaged)
		}
		if rep.Events < before {
			t.Fatalf("run %d: verified %d events, %d were committed before it started", run, rep.Events, before)
		}
	}
	cancel()
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
}

// Events stored before the identifier shapes and the new
// stream naming verify as intact: a dotted object type in its legacy
// stream (dots as '_'), and an id outside today's shape. A dotted object
// type in a stream that is neither name is still caught.
func TestVerifyLegacyStreamsAndShapes(t *testing.T) {
	l := newTestLog(t, 1, 1, 0)
	ctx := context.Background()
	mk := func(id, objType, objID string) store.Event {
		body := []byte(`{"id":"` + id + `","object":"event","type":"x.updated","created":1705312800,"livemode":false,` +
			`"data":{"object":{"id":"` + objID + `","object":"` + objType + `"}}}`)
		return store.Event{ID: id, Type: "x.updated", Data: body, ReceivedAt: t0, Created: 1705312800,
			Source: store.SourceWebhook, Provenance: &store.Provenance{VerifiedAt: t0}}
	}
	for stream, ev := range map[string]store.Event{
		"stripe-checkout_session-cs_1": mk("evt_legacy1", "checkout.session", "cs_1"),
		"stripe-checkout.session-cs_2": mk("evt_new2", "checkout.session", "cs_2"),
		"stripe-customer-cus/odd":      mk("evt/odd", "customer", "cus/odd"),
	} {
		if _, err := l.st.Append(ctx, stream, store.AnyRevision, ev); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Verify(ctx, l.st, VerifyOptions{})
	if err != nil || !rep.Intact() {
		t.Fatalf("legacy names and shapes reported damaged: %v %v", rep.Damaged, err)
	}
	if _, err := l.st.Append(ctx, "stripe-checkout-session-cs_3", store.AnyRevision, mk("evt_wrong3", "checkout.session", "cs_3")); err != nil {
		t.Fatal(err)
	}
	if rep, err := Verify(ctx, l.st, VerifyOptions{}); err != nil || rep.Intact() {
		t.Fatalf("an event in a stream that is neither name passed: %v", err)
	}
}
