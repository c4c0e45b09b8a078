package checkpoint_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/sqlite"
	"github.com/fcaudit/fcaudit/translog"
	"github.com/fcaudit/fcaudit/translog/checkpoint"
)

// TestParseKeyAnyKey: keys whose base64 holds '+' parse too (generated keys
// are random, so try many).
func TestParseKeyAnyKey(t *testing.T) {
	for i := range 200 {
		skey, vkey, err := note.GenerateKey(nil, "fcaudit/x")
		if err != nil {
			t.Fatal(err)
		}
		k, err := checkpoint.ParseKey(skey)
		if err != nil || k.VerifierKey != vkey {
			t.Fatalf("key %d: %v (verifier %q, want %q)", i, err, k.VerifierKey, vkey)
		}
	}
}

func TestKeyFileAndSignature(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "k", checkpoint.DefaultKeyFile)
	k, err := checkpoint.LoadOrCreateKey(path, "fcaudit/abc", true)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v, %v", fi.Mode(), err)
	}
	again, err := checkpoint.LoadOrCreateKey(path, "ignored", true)
	if err != nil || again.VerifierKey != k.VerifierKey {
		t.Fatalf("reloaded key differs: %v", err)
	}
	if _, err := note.NewVerifier(k.VerifierKey); err != nil {
		t.Fatalf("verifier key %q: %v", k.VerifierKey, err)
	}
	h := translog.Head{Size: 3, Root: make([]byte, 32)}
	msg, err := checkpoint.Sign(k.Signer, "fcaudit/abc", h)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := checkpoint.Open(msg, k.VerifierKey)
	if err != nil || cp.Size != 3 || cp.Origin != "fcaudit/abc" {
		t.Fatalf("open: %+v, %v", cp, err)
	}
	_, other, _ := note.GenerateKey(nil, "fcaudit/abc")
	if _, err := checkpoint.Open(msg, other); !errors.Is(err, checkpoint.ErrInvalid) {
		t.Fatalf("open with another key: %v", err)
	}
	forged := append([]byte(nil), msg...)
	forged[len("fcaudit/abc\n")] = '4' // tree size 3 → 4
	if _, err := checkpoint.Open(forged, k.VerifierKey); !errors.Is(err, checkpoint.ErrInvalid) {
		t.Fatalf("open of an edited checkpoint: %v", err)
	}
	if _, err := checkpoint.LoadOrCreateKey(filepath.Join(dir, "missing"), "x", false); err == nil {
		t.Fatal("missing key file accepted without create")
	}
}

// TestPublisherAndConsistency: checkpoints published as the log grows are
// consistent with each other; a checkpoint of a rewritten history is not.
func TestPublisherAndConsistency(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(filepath.Join(t.TempDir(), sqlite.FileName), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id, err := s.LogID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	k, err := checkpoint.LoadOrCreateKey(filepath.Join(t.TempDir(), "key"), checkpoint.Origin(id), true)
	if err != nil {
		t.Fatal(err)
	}
	p := &checkpoint.Publisher{Log: s, Key: k, Origin: checkpoint.Origin(id), Interval: time.Hour}
	var cps []checkpoint.Checkpoint
	for i := range 5 {
		for j := range 3 + i {
			e := store.Event{ID: fmt.Sprintf("evt_%d_%d", i, j), Type: "t", Data: []byte("{}"), ReceivedAt: time.Now(), Source: store.SourceWebhook}
			if _, err := s.Append(ctx, "fcaccount-a", store.AnyRevision, e); err != nil {
				t.Fatal(err)
			}
		}
		tc, fresh, err := p.PublishOnce(ctx)
		if err != nil || !fresh {
			t.Fatalf("publish: %v, fresh %v", err, fresh)
		}
		if _, fresh, _ := p.PublishOnce(ctx); fresh {
			t.Fatal("published again for an unchanged tree")
		}
		cp, err := checkpoint.Open(tc.Note, k.VerifierKey)
		if err != nil {
			t.Fatal(err)
		}
		cps = append(cps, cp)
	}
	for i := range cps {
		for j := i; j < len(cps); j++ {
			pr, err := s.ConsistencyProof(ctx, cps[i].Size, cps[j].Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkpoint.VerifyConsistency(cps[i], cps[j], pr); err != nil {
				t.Fatalf("%d→%d: %v", cps[i].Size, cps[j].Size, err)
			}
		}
	}
	// A checkpoint signed over another history of the same size.
	forked := translog.Head{Size: cps[4].Size, Root: make([]byte, 32)}
	msg, _ := checkpoint.Sign(k.Signer, checkpoint.Origin(id), forked)
	fork, _ := checkpoint.Open(msg, k.VerifierKey)
	pr, _ := s.ConsistencyProof(ctx, cps[1].Size, cps[4].Size)
	if err := checkpoint.VerifyConsistency(cps[1], fork, pr); !errors.Is(err, checkpoint.ErrInconsistent) {
		t.Fatalf("forked checkpoint: %v", err)
	}
}
