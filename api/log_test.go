package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/fcaudit/fcaudit/api"
	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/sqlite"
	"github.com/fcaudit/fcaudit/translog/checkpoint"
)

// logEnv is a server on a verifiable log with a checkpoint publisher.
type logEnv struct {
	*env
	path string
	key  checkpoint.Key
	pub  *checkpoint.Publisher
}

func newLogEnv(t *testing.T, path string, key checkpoint.Key) *logEnv {
	t.Helper()
	st, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Registered before newServer's cleanup, so it runs after the server
	// is closed.
	t.Cleanup(func() { st.Close() })
	v, _ := ingest.NewVerifier([]string{secret}, 5*time.Minute)
	srv := newServer(t, api.Config{Store: st, Ingest: ingest.NewService(v, st, ingest.ServiceOptions{}), Tokens: []string{token}, Log: st})
	id, err := st.LogID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if key.Signer == nil {
		if key, err = checkpoint.LoadOrCreateKey(filepath.Join(filepath.Dir(path), checkpoint.DefaultKeyFile), checkpoint.Origin(id), true); err != nil {
			t.Fatal(err)
		}
	}
	return &logEnv{env: &env{t: t, store: st, srv: srv}, path: path, key: key,
		pub: &checkpoint.Publisher{Log: st, Key: key, Origin: checkpoint.Origin(id)}}
}

func (e *logEnv) raw(path string, auth bool) (int, string, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	if auth {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// checkpointNow publishes and fetches the latest checkpoint, as a witness
// would: no token.
func (e *logEnv) checkpointNow() []byte {
	e.t.Helper()
	if _, _, err := e.pub.PublishOnce(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	code, ct, b := e.raw("/v1/log/checkpoint", false)
	if code != 200 || !strings.HasPrefix(ct, "text/plain") {
		e.t.Fatalf("GET /v1/log/checkpoint: %d %s %s", code, ct, b)
	}
	return b
}

func (e *logEnv) consistency(t *testing.T, from, to uint64) []byte {
	code, _, b := e.raw("/v1/log/proof/consistency?from="+strconv.FormatUint(from, 10)+"&to="+strconv.FormatUint(to, 10), true)
	if code != 200 {
		t.Fatalf("consistency %d→%d: %d %s", from, to, code, b)
	}
	return b
}

// TestLogProofsCheckIndependently: an auditor keeps a checkpoint, the log
// grows, and the auditor's own verifier (verifier_test.go) proves with
// fcaudit's HTTP answers that the new checkpoint extends the old and that
// every event is in it.
func TestLogProofsCheckIndependently(t *testing.T) {
	e := newLogEnv(t, filepath.Join(t.TempDir(), sqlite.FileName), checkpoint.Key{})
	fx := fixtures(t)
	e.ingestAll(t, fx[:4])
	oldNote := e.checkpointNow()
	older, err := indepOpen(oldNote, e.key.VerifierKey)
	if err != nil || older.size != 4 {
		t.Fatalf("old checkpoint: %+v, %v", older, err)
	}
	e.ingestAll(t, fx[4:])
	newer, err := indepOpen(e.checkpointNow(), e.key.VerifierKey)
	if err != nil || newer.size != uint64(len(fx)) {
		t.Fatalf("new checkpoint: %+v, %v", newer, err)
	}
	if err := indepConsistency(older, newer, e.consistency(t, older.size, newer.size)); err != nil {
		t.Fatalf("independent consistency check: %v", err)
	}
	evs, err := e.store.ReadAll(context.Background(), store.ReadOptions{})
	if err != nil || len(evs) != len(fx) {
		t.Fatalf("read: %d, %v", len(evs), err)
	}
	for i, ev := range evs {
		code, m := e.get("/v1/events/" + ev.ID)
		if code != 200 || m["leaf_index"] != float64(i) {
			t.Fatalf("GET /v1/events/%s: leaf_index %v", ev.ID, m["leaf_index"])
		}
		_, _, body := e.raw("/v1/events/"+ev.ID+"/body", true)
		code, _, ans := e.raw("/v1/log/proof/inclusion?event="+ev.ID+"&tree_size="+strconv.FormatUint(newer.size, 10), true)
		if code != 200 {
			t.Fatalf("inclusion %s: %d %s", ev.ID, code, ans)
		}
		if err := indepInclusion(newer, ev.ID, body, ans); err != nil {
			t.Fatalf("independent inclusion check of %s: %v", ev.ID, err)
		}
		if err := indepInclusion(newer, ev.ID, append(body, ' '), ans); err == nil {
			t.Fatalf("inclusion of %s checked out for another body", ev.ID)
		}
	}
	// Bad questions get clear answers.
	for path, want := range map[string]int{
		"/v1/log/proof/inclusion?event=evt_nope&tree_size=3":           404,
		"/v1/log/proof/inclusion?event=nope":                           400,
		"/v1/log/proof/inclusion?event=" + evs[5].ID + "&tree_size=3":  400,
		"/v1/log/proof/inclusion?event=" + evs[0].ID + "&tree_size=99": 400,
		"/v1/log/proof/consistency?from=5&to=3":                        400,
		"/v1/log/proof/consistency?from=1&to=99":                       400,
		"/v1/log/proof/consistency?to=3":                               400,
	} {
		if code, _, b := e.raw(path, true); code != want {
			t.Errorf("GET %s: %d %s, want %d", path, code, b, want)
		}
	}
	// An empty value is the parameter left out (openapi.yaml's rule).
	for withEmpty, without := range map[string]string{
		"/v1/log/proof/inclusion?event=" + evs[1].ID + "&tree_size=": "/v1/log/proof/inclusion?event=" + evs[1].ID,
		"/v1/log/proof/inclusion?event=&tree_size=3":                 "/v1/log/proof/inclusion?tree_size=3",
		"/v1/log/proof/consistency?from=4&to=":                       "/v1/log/proof/consistency?from=4",
		"/v1/log/proof/consistency?from=&to=3":                       "/v1/log/proof/consistency?to=3",
	} {
		code, _, got := e.raw(withEmpty, true)
		wantCode, _, want := e.raw(without, true)
		if code != wantCode || !bytes.Equal(got, want) {
			t.Errorf("GET %s: %d %s; without the parameter: %d %s", withEmpty, code, got, wantCode, want)
		}
	}
	if code, _, _ := e.raw("/v1/log/proof/consistency?from=1&to=2", false); code != 401 {
		t.Errorf("proof without a token: %d, want 401", code)
	}
}

// TestLogWithoutTree: a backend that is not a verifiable log answers 501.
func TestLogWithoutTree(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/v1/log/checkpoint", "/v1/log/proof/consistency?from=1&to=2", "/v1/log/proof/inclusion?event=evt_1&tree_size=1"} {
		code, m := e.get(p)
		if code != 501 || errType(m) != api.TypeNotSupported {
			t.Errorf("GET %s: %d %v, want 501 not_supported", p, code, m)
		}
	}
}

// TestRewrittenHistoryFailsConsistency: an attacker with write access
// rewrites history so that every per-stream check passes — edits a body and
// re-chains its stream; switches an event's source; truncates the log — and
// lets fcaudit rebuild its tree from the rewritten log and sign new
// checkpoints. The auditor's earlier checkpoint exposes each rewrite.
func TestRewrittenHistoryFailsConsistency(t *testing.T) {
	cases := map[string]func(t *testing.T, db *sql.DB){
		"edit body and re-chain": func(t *testing.T, db *sql.DB) {
			var stream, id string
			if err := db.QueryRow(`SELECT stream, event_id FROM events WHERE position = 2`).Scan(&stream, &id); err != nil {
				t.Fatal(err)
			}
			body := []byte(`{"id":"` + id + `","object":"event","type":"financial_connections.account.created","rewritten":true}`)
			sum := sha256.Sum256(body)
			mustExec(t, db, `UPDATE events SET body = ?, body_sha256 = ? WHERE position = 2`, body, sum[:])
			rechain(t, db, stream)
		},
		"switch source": func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE events SET source = 'backfill' WHERE position = 3`)
		},
		"truncate": func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `DELETE FROM events WHERE position > 2`)
		},
	}
	for name, rewrite := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, sqlite.FileName)
			fx := fixtures(t)
			e := newLogEnv(t, path, checkpoint.Key{})
			e.ingestAll(t, fx[:4])
			older, err := indepOpen(e.checkpointNow(), e.key.VerifierKey)
			if err != nil {
				t.Fatal(err)
			}
			key := e.key
			e.srv.Close()
			e.store.Close()

			db, err := sql.Open("sqlite", "file:"+path)
			if err != nil {
				t.Fatal(err)
			}
			rewrite(t, db)
			// Cover the tracks: drop the tree and the checkpoints, so
			// fcaudit rebuilds the tree from the rewritten log.
			mustExec(t, db, `DELETE FROM merkle_tree`)
			mustExec(t, db, `DELETE FROM log_checkpoints`)
			db.Close()

			e = newLogEnv(t, path, key)
			e.ingestAll(t, fx[4:])
			newer, err := indepOpen(e.checkpointNow(), key.VerifierKey)
			if err != nil {
				t.Fatal(err)
			}
			code, _, ans := e.raw("/v1/log/proof/consistency?from="+strconv.FormatUint(older.size, 10)+"&to="+strconv.FormatUint(newer.size, 10), true)
			if code == 200 {
				if err := indepConsistency(older, newer, ans); err == nil {
					t.Fatalf("the rewritten history (%d leaves) passed the consistency check against the old checkpoint (%d)", newer.size, older.size)
				}
			} else if newer.size >= older.size {
				t.Fatalf("consistency %d→%d: %d %s", older.size, newer.size, code, ans)
			}
		})
	}
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// rechain recomputes a stream's hash chain, as an attacker who edited a
// body would so that the chain check passes.
func rechain(t *testing.T, db *sql.DB, stream string) {
	rows, err := db.Query(`SELECT position, event_id, body_sha256, received_at FROM events WHERE stream = ? ORDER BY revision`, stream)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		pos  int64
		id   string
		sum  []byte
		recv int64
	}
	var rs []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.pos, &r.id, &r.sum, &r.recv); err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	rows.Close()
	prev := store.ChainSeed(stream)
	for _, r := range rs {
		var sum [32]byte
		copy(sum[:], r.sum)
		prev = store.ChainHash(prev, sum, r.id, time.UnixMicro(r.recv).UTC())
		mustExec(t, db, `UPDATE events SET chain_hash = ? WHERE position = ?`, prev[:], r.pos)
	}
}

// TestLogCheckpointBeforeAndHead: before the first checkpoint the public
// route and the proofs that default to it answer 404; after it, HEAD
// answers the note's length without a body, without a token either.
func TestLogCheckpointBeforeAndHead(t *testing.T) {
	e := newLogEnv(t, filepath.Join(t.TempDir(), sqlite.FileName), checkpoint.Key{})
	e.ingestAll(t, fixtures(t)[:2])
	for path, auth := range map[string]bool{"/v1/log/checkpoint": false, "/v1/log/proof/consistency?from=1": true,
		"/v1/log/proof/inclusion?event=evt_1OeXkR2eZvKYlo2C4nS0pGxA": true} {
		if code, _, b := e.raw(path, auth); code != 404 || !strings.Contains(string(b), api.TypeNotFound) {
			t.Errorf("GET %s before any checkpoint: %d %s, want 404", path, code, b)
		}
	}
	head := func() *http.Response {
		req, _ := http.NewRequest(http.MethodHead, e.srv.URL+"/v1/log/checkpoint", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := head(); resp.StatusCode != 404 {
		t.Errorf("HEAD /v1/log/checkpoint before any checkpoint: %d, want 404", resp.StatusCode)
	}
	note := e.checkpointNow()
	if resp := head(); resp.StatusCode != 200 || resp.ContentLength != int64(len(note)) {
		t.Errorf("HEAD /v1/log/checkpoint: %d, Content-Length %d, want 200 and %d", resp.StatusCode, resp.ContentLength, len(note))
	}
	if code, _, b := e.raw("/v1/log/checkpoint?size=1", false); code != 400 || !strings.Contains(string(b), `"param":"size"`) {
		t.Errorf("GET /v1/log/checkpoint?size=1: %d %s, want 400 naming size", code, b)
	}
}

// TestOpenAPILogExamplesAreReal: the document's checkpoint and proof
// examples are a real log's (TestLogProofsCheckIndependently's, fixtures
// 01–04 then 05–07): the independent verifier accepts the checkpoints with
// the verifier key their description names, fixture 01's inclusion in the
// latest, and the consistency of the two.
func TestOpenAPILogExamplesAreReal(t *testing.T) {
	doc, err := loadDocument()
	if err != nil {
		t.Fatal(err)
	}
	example := func(path, ct, name string) *openapi3.Example {
		t.Helper()
		mt := doc.Paths.Value(path).Get.Responses.Status(200).Value.Content.Get(ct)
		if mt == nil || mt.Examples[name] == nil {
			t.Fatalf("%s: no %s example %q", path, ct, name)
		}
		return mt.Examples[name].Value
	}
	answer := func(ex *openapi3.Example) []byte {
		b, err := json.Marshal(ex.Value)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cps := map[string]indepCheckpoint{}
	for _, name := range []string{"size_4", "latest"} {
		ex := example("/v1/log/checkpoint", "text/plain", name)
		_, vkey, _ := strings.Cut(ex.Description, "`")
		vkey, _, _ = strings.Cut(vkey, "`")
		note, _ := ex.Value.(string)
		cp, err := indepOpen([]byte(note), vkey)
		if err != nil {
			t.Fatalf("checkpoint example %s (key %q): %v", name, vkey, err)
		}
		cps[name] = cp
	}
	if cps["size_4"].size != 4 || cps["latest"].size != 7 {
		t.Fatalf("checkpoint examples of sizes %d and %d, want 4 and 7", cps["size_4"].size, cps["latest"].size)
	}
	body, err := os.ReadFile("../testdata/stripe/01_account.created.json")
	if err != nil {
		t.Fatal(err)
	}
	incl := example("/v1/log/proof/inclusion", "application/json", "account_created")
	if err := indepInclusion(cps["latest"], "evt_1OeXkR2eZvKYlo2C4nS0pGxA", body, answer(incl)); err != nil {
		t.Errorf("inclusion example: %v", err)
	}
	cons := example("/v1/log/proof/consistency", "application/json", "size_4_to_latest")
	if err := indepConsistency(cps["size_4"], cps["latest"], answer(cons)); err != nil {
		t.Errorf("consistency example: %v", err)
	}
}

// TestLogUnavailable: a tree that does not cover the log (a file no
// read-write open has brought up to date: the tree was dropped) answers 503
// log_not_ready, and a closed event log 503 store_unavailable, both with
// Retry-After, on the public route as on the proofs.
func TestLogUnavailable(t *testing.T) {
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	e := newLogEnv(t, path, checkpoint.Key{})
	e.ingestAll(t, fixtures(t)[:3])
	e.checkpointNow()
	e.srv.Close()
	e.store.Close()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, `DELETE FROM merkle_tree`)
	db.Close()

	st, err := sqlite.Open(path, sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := newServer(t, api.Config{Store: st, Tokens: []string{token}, Log: st})
	check := func(path string, auth bool, wantType string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if auth {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), `"type":"`+wantType+`"`) {
			t.Errorf("GET %s: %d (Retry-After %q) %s, want 503 %s", path, resp.StatusCode, resp.Header.Get("Retry-After"), b, wantType)
		}
	}
	evs, err := st.ReadAll(context.Background(), store.ReadOptions{})
	if err != nil || len(evs) != 3 {
		t.Fatalf("read: %d, %v", len(evs), err)
	}
	check("/v1/log/proof/consistency?from=1&to=2", true, api.TypeLogNotReady)
	check("/v1/log/proof/inclusion?event="+evs[0].ID+"&tree_size=2", true, api.TypeLogNotReady)
	st.Close()
	check("/v1/log/checkpoint", false, api.TypeStoreUnavailable)
	check("/v1/log/proof/consistency?from=1&to=2", true, api.TypeStoreUnavailable)
	check("/v1/log/proof/inclusion?event="+evs[0].ID+"&tree_size=2", true, api.TypeStoreUnavailable)
}
