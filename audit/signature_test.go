package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	mrand "math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/internal/fcevents"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

const (
	sigSecret    = "whsec_signature_test_current"
	sigOldSecret = "whsec_signature_test_rotated"
)

// signedLog writes webhooks as ingest stores them — Stripe-Signature header,
// signed_at and secret fingerprint in the provenance — for 3 accounts × 4
// events; the very first event is signed with a rotated-out secret.
func signedLog(t *testing.T) (path string, ids map[string][]string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), sqlite.FileName)
	st, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	both, err := ingest.NewVerifier([]string{sigSecret, sigOldSecret}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	g := &fcevents.Generator{Rand: mrand.New(mrand.NewPCG(7, 8)), Size: 1500}
	ids = map[string][]string{}
	types := fc.Types()
	n := 0
	for rev := 0; rev < 4; rev++ {
		for a := 0; a < 3; a++ {
			acct := []string{"fca_sigA", "fca_sigB", "fca_sigC"}[a]
			body := g.Event(types[rev], acct, t0.Unix()+int64(rev))
			secret := sigSecret
			if n == 0 {
				secret = sigOldSecret
			}
			signedAt := t0.Add(time.Duration(n) * time.Second)
			header := fcevents.Sign(body, secret, signedAt)
			ver, err := both.Reverify(body, header)
			if err != nil {
				t.Fatal(err)
			}
			ev := makeEvent(t, body, signedAt.Add(time.Second))
			ev.Source = store.SourceWebhook
			ev.Provenance = &store.Provenance{SignatureHeader: header, SignedAt: ver.SignedAt,
				SecretFingerprint: ver.SecretFingerprint, VerifiedAt: ev.ReceivedAt}
			stream := fc.AccountStream(acct)
			if _, err := st.Append(context.Background(), stream, store.AnyRevision, ev); err != nil {
				t.Fatal(err)
			}
			ids[stream] = append(ids[stream], ev.ID)
			n++
		}
	}
	return path, ids
}

func verifySignatures(t *testing.T, path string, secrets ...string) *Report {
	t.Helper()
	opts := VerifyOptions{}
	if len(secrets) > 0 {
		v, err := ingest.NewVerifier(secrets, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		opts.Signatures = v
	}
	rep, err := Verify(context.Background(), openReadOnly(t, path), opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestVerifySignatures: every webhook's stored body still carries its stored
// signature (the header verifies long after its tolerance); events whose
// secret is not given are counted, not failed.
func TestVerifySignatures(t *testing.T) {
	path, _ := signedLog(t)
	rep := verifySignatures(t, path, sigSecret)
	if !rep.Intact() || rep.Signatures != (SignatureCounts{Checked: 11, Unchecked: 1}) {
		t.Fatalf("intact %v, damaged %v, signatures %+v; want intact, 11 checked, 1 unchecked", rep.Intact(), rep.Damaged, rep.Signatures)
	}
	rep = verifySignatures(t, path, sigSecret, sigOldSecret)
	if !rep.Intact() || rep.Signatures != (SignatureCounts{Checked: 12}) {
		t.Fatalf("with both secrets: intact %v, signatures %+v; want 12 checked", rep.Intact(), rep.Signatures)
	}
	if rep := verifySignatures(t, path); rep.Signatures != (SignatureCounts{}) {
		t.Fatalf("without secrets: signatures %+v, want none", rep.Signatures)
	}
}

// TestVerifySignaturesCatchRechainedRewrite: an attacker with write access
// edits a body and recomputes body_sha256 and every later chain value of
// the stream. The chain alone cannot tell; the stored Stripe signature,
// which only the secret's holders can make, can.
func TestVerifySignaturesCatchRechainedRewrite(t *testing.T) {
	path, ids := signedLog(t)
	stream := fc.AccountStream("fca_sigB")
	rechain(t, path, stream, 1, func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"status": "active"`), []byte(`"status": "inactive"`), 1)
	})
	if rep := verifySignatures(t, path); !rep.Intact() {
		t.Fatalf("the rewrite was not self-consistent, test is wrong: %v", rep.Damaged)
	}
	rep := verifySignatures(t, path, sigSecret)
	if len(rep.Damaged) != 1 {
		t.Fatalf("damaged %v, want exactly stream %s", rep.Damaged, stream)
	}
	b := rep.Damaged[0]
	if b.Stream != stream || b.Revision != 1 || b.ID != ids[stream][1] || b.Problem != ProblemSignature {
		t.Fatalf("got %s; want %s revision 1 id %s %s", b, stream, ids[stream][1], ProblemSignature)
	}
}

// TestVerifySignaturesCatchSwappedProvenance: provenance is not chained; a
// webhook given another webhook's signature header fails its re-check.
func TestVerifySignaturesCatchSwappedProvenance(t *testing.T) {
	path, ids := signedLog(t)
	a, c := ids[fc.AccountStream("fca_sigA")][2], ids[fc.AccountStream("fca_sigC")][3]
	tamper(t, path, sq(`UPDATE events SET provenance = (SELECT provenance FROM events WHERE event_id = ?) WHERE event_id = ?`, c, a))
	rep := verifySignatures(t, path, sigSecret)
	if len(rep.Damaged) != 1 || rep.Damaged[0].ID != a || rep.Damaged[0].Problem != ProblemSignature {
		t.Fatalf("damaged %v; want only %s with %s", rep.Damaged, a, ProblemSignature)
	}
}

// rechain replaces the body of stream's event at revision rev with
// edit(body) and recomputes body_sha256 and the chain from there on, as an
// attacker who knows the (public) chain recipe would.
func rechain(t *testing.T, path, stream string, rev int, edit func([]byte) []byte) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT event_id, received_at, body, chain_hash FROM events WHERE stream = ? ORDER BY revision`, stream)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		id       string
		received int64
		body     []byte
		chain    []byte
	}
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.received, &r.body, &r.chain); err != nil {
			t.Fatal(err)
		}
		all = append(all, r)
	}
	rows.Close()
	prev := store.ChainSeed(stream)
	if rev > 0 {
		copy(prev[:], all[rev-1].chain)
	}
	for i := rev; i < len(all); i++ {
		r := all[i]
		if i == rev {
			edited := edit(r.body)
			if bytes.Equal(edited, r.body) {
				t.Fatal("edit changed nothing")
			}
			r.body = edited
		}
		sum := sha256.Sum256(r.body)
		prev = store.ChainHash(prev, sum, r.id, time.UnixMicro(r.received).UTC())
		if _, err := db.Exec(`UPDATE events SET body = ?, body_sha256 = ?, chain_hash = ? WHERE event_id = ?`, r.body, sum[:], prev[:], r.id); err != nil {
			t.Fatal(err)
		}
	}
}

// TestVerifyStreamSignatures: the one-stream check (the API's verify route)
// re-checks signatures as Verify does.
func TestVerifyStreamSignatures(t *testing.T) {
	path, ids := signedLog(t)
	stream := fc.AccountStream("fca_sigA") // its first event used the rotated-out secret
	rechain(t, path, stream, 2, func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"livemode": false`), []byte(`"livemode": true`), 1)
	})
	v, err := ingest.NewVerifier([]string{sigSecret}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyStream(context.Background(), openReadOnly(t, path), stream, VerifyOptions{Signatures: v})
	if err != nil {
		t.Fatal(err)
	}
	b := rep.FirstBroken
	if b == nil || b.ID != ids[stream][2] || b.Problem != ProblemSignature {
		t.Fatalf("first broken %v; want %s %s", b, ids[stream][2], ProblemSignature)
	}
	// Revision 0 (other secret) unchecked, 1 and 2 checked; the chain stops
	// at the first break.
	if rep.Signatures != (SignatureCounts{Checked: 2, Unchecked: 1}) {
		t.Fatalf("signatures %+v, want 2 checked, 1 unchecked", rep.Signatures)
	}
	if rep, err := VerifyStream(context.Background(), openReadOnly(t, path), stream, VerifyOptions{}); err != nil || rep.FirstBroken != nil {
		t.Fatalf("without secrets the rewrite is self-consistent (test is wrong otherwise): %v, %v", rep, err)
	}
}
