package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/fcevents"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/esdb"
	"github.com/fcaudit/fcaudit/store/esdb/esdbtest"
)

// TestServeOnEventStoreDB wires two serve replicas (ingest → EventStoreDB
// adapter → API) to one in-memory EventStoreDB over real gRPC and has them
// ingest the same accounts concurrently — including the same event delivered
// to both at once, as Stripe's retries can do behind a load balancer. Every
// event must be stored exactly once and no chain may fork.
func TestServeOnEventStoreDB(t *testing.T) {
	srv := esdbtest.Start(t)
	const secret, token = "whsec_e2e_esdb", "tok_e2e"
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var addrs []string
	for i := 0; i < 2; i++ {
		addr := freePort(t)
		addrs = append(addrs, addr)
		var errOut bytes.Buffer
		wg.Add(1)
		go func() {
			defer wg.Done()
			code := run(ctx, []string{"serve", "--eventstore", srv.ConnString(), "--data-dir", t.TempDir(),
				"--listen", addr, "--webhook-secret", secret, "--api-token", token}, nil, io.Discard, &errOut)
			if code != 0 {
				t.Errorf("serve %d exited %d: %s", i, code, errOut.String())
			}
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, a := range addrs {
		waitReady(t, "http://"+a+"/readyz")
	}

	const accounts, perAccount = 4, 12
	g := &fcevents.Generator{}
	type delivery struct {
		body []byte
		id   string
	}
	var deliveries []delivery
	for a := 0; a < accounts; a++ {
		acct := fmt.Sprintf("fca_e2e%d", a)
		for i := 0; i < perAccount; i++ {
			body := g.Event(fc.Types()[i%len(fc.Types())], acct, 1705312800+int64(i))
			var env struct{ ID string }
			if err := json.Unmarshal(body, &env); err != nil {
				t.Fatal(err)
			}
			deliveries = append(deliveries, delivery{body, env.ID})
		}
	}
	post := func(addr string, body []byte) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/stripe", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Stripe-Signature", fcevents.Sign(body, secret, time.Now()))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0, nil
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	// Each event goes to both replicas at the same moment.
	var sendWG sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, d := range deliveries {
		for _, addr := range addrs {
			sendWG.Add(1)
			sem <- struct{}{}
			go func() {
				defer sendWG.Done()
				defer func() { <-sem }()
				if code, m := post(addr, d.body); code != 200 {
					t.Errorf("deliver %s to %s: %d %v", d.id, addr, code, m)
				}
			}()
		}
	}
	sendWG.Wait()
	if t.Failed() {
		t.FailNow()
	}

	st, err := esdb.Open(context.Background(), srv.ConnString(), esdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seen := map[string]int{}
	for a := 0; a < accounts; a++ {
		stream := fc.AccountStream(fmt.Sprintf("fca_e2e%d", a))
		evs, err := st.ReadStream(context.Background(), stream, 0, 0)
		if err != nil {
			t.Fatalf("read %s: %v", stream, err)
		}
		if len(evs) != perAccount {
			t.Errorf("%s holds %d events, want %d", stream, len(evs), perAccount)
		}
		prev := store.ChainSeed(stream)
		for i, e := range evs {
			seen[e.ID]++
			if e.Revision != uint64(i) {
				t.Fatalf("%s: revision %d at index %d", stream, e.Revision, i)
			}
			if e.BodySHA256 != sha256.Sum256(e.Data) {
				t.Fatalf("%s@%d: body hash mismatch", stream, i)
			}
			want := store.ChainHash(prev, e.BodySHA256, e.ID, e.ReceivedAt)
			if e.ChainHash != want {
				t.Fatalf("%s@%d: chain forked", stream, i)
			}
			prev = want
		}
	}
	for _, d := range deliveries {
		if seen[d.id] != 1 {
			t.Errorf("%s stored %d times", d.id, seen[d.id])
		}
	}
	// Either replica serves what the other ingested.
	req, _ := http.NewRequest(http.MethodGet, "http://"+addrs[1]+"/v1/events/"+deliveries[0].id, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET event from the other replica: %d", resp.StatusCode)
	}

	// The cluster goes away: ingest answers 503 store_unavailable (Stripe
	// retries), /readyz fails; when it is back, the same process recovers.
	srv.SetUnavailable(true)
	extra := g.Event(fc.TypeRefreshedBalance, "fca_e2e0", 1705400000)
	if code, m := post(addrs[0], extra); code != 503 || m["error"].(map[string]any)["type"] != "store_unavailable" {
		t.Fatalf("while unavailable: %d %v", code, m)
	}
	if resp, err := http.Get("http://" + addrs[0] + "/readyz"); err != nil || resp.StatusCode != 503 {
		t.Fatalf("/readyz while unavailable: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	srv.SetUnavailable(false)
	waitReady(t, "http://"+addrs[0]+"/readyz")
	if code, m := post(addrs[0], extra); code != 200 || m["duplicate"] != false {
		t.Fatalf("after recovery: %d %v", code, m)
	}
}
