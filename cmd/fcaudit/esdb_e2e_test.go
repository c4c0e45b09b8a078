package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/fcevents"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/esdb"
	"github.com/fcaudit/fcaudit/store/esdb/esdbtest"
	"github.com/fcaudit/fcaudit/translog/checkpoint"
)

// TestServeOnEventStoreDB wires two serve replicas (ingest → EventStoreDB
// adapter → API) to one in-memory EventStoreDB over real gRPC and has them
// ingest the same accounts concurrently — including the same event delivered
// to both at once, as Stripe's retries can do behind a load balancer. Every
// event must be stored exactly once, exactly one of the two deliveries of
// an event may answer duplicate: false, and no chain may fork.
func TestServeOnEventStoreDB(t *testing.T) {
	srv := esdbtest.Start(t)
	serveOnEventStoreDB(t, [2]string{srv.ConnString(), srv.ConnString()}, nil, srv.SetUnavailable)
}

// TestServeOnEventStoreDBCluster is the same over a 3-node cluster: one
// replica discovers the leader with esdb+discover://, the other is
// connected to a follower (which forwards its writes), and the leader
// changes while the deliveries run.
func TestServeOnEventStoreDBCluster(t *testing.T) {
	c := esdbtest.StartCluster(t, 3)
	var once sync.Once
	serveOnEventStoreDB(t, [2]string{c.DiscoverConnString(), c.Follower(0).ConnString()},
		func() { once.Do(func() { c.SetLeader(2) }) },
		func(on bool) {
			for i := range 3 {
				c.Node(i).SetUnavailable(on)
			}
		})
}

// serveOnEventStoreDB runs two serve replicas on conns; midway, when not
// nil, runs about halfway through the deliveries; down makes the log
// unavailable (true) and available again (false).
func serveOnEventStoreDB(t *testing.T, conns [2]string, midway func(), down func(bool)) {
	const secret, token = "whsec_e2e_esdb", "tok_e2e"
	// Both replicas sign checkpoints with one key (docs/eventstoredb.md).
	keyDir := t.TempDir()
	code, vkey, errOut := runCmd(t, context.Background(), "log", "key", "--eventstore", conns[0], "--data-dir", keyDir)
	if code != 0 {
		t.Fatalf("log key: %d %s", code, errOut)
	}
	vkey = strings.TrimSpace(vkey)
	keyFile := filepath.Join(keyDir, checkpoint.DefaultKeyFile)
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
			code := run(ctx, []string{"serve", "--eventstore", conns[i], "--data-dir", t.TempDir(),
				"--listen", addr, "--webhook-secret", secret, "--api-token", token,
				"--log-key-file", keyFile, "--checkpoint-interval", "10ms"}, nil, io.Discard, &errOut)
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
	var storedMu sync.Mutex
	stored := map[string]int{} // answers with duplicate: false per id
	for k, d := range deliveries {
		if k == len(deliveries)/2 && midway != nil {
			midway()
		}
		for _, addr := range addrs {
			sendWG.Add(1)
			sem <- struct{}{}
			go func() {
				defer sendWG.Done()
				defer func() { <-sem }()
				code, m := post(addr, d.body)
				if code != 200 {
					t.Errorf("deliver %s to %s: %d %v", d.id, addr, code, m)
					return
				}
				if m["duplicate"] == false {
					storedMu.Lock()
					stored[d.id]++
					storedMu.Unlock()
				}
			}()
		}
	}
	sendWG.Wait()
	for _, d := range deliveries {
		if stored[d.id] != 1 {
			t.Errorf("%s: %d of its 2 deliveries answered duplicate: false, want exactly 1", d.id, stored[d.id])
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	st, err := esdb.Open(context.Background(), conns[0], esdb.Options{})
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
	// Either replica serves what the other ingested, with its leaf index.
	req, _ := http.NewRequest(http.MethodGet, "http://"+addrs[1]+"/v1/events/"+deliveries[0].id, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		LeafIndex *uint64 `json:"leaf_index"`
	}
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if resp.StatusCode != 200 || err != nil || got.LeafIndex == nil {
		t.Fatalf("GET event from the other replica: %d, leaf index %v, %v", resp.StatusCode, got.LeafIndex, err)
	}
	// The replicas' builders and publishers agree: a checkpoint of every
	// event appears, signed with the shared key.
	deadline := time.After(2 * time.Minute)
	for {
		resp, err := http.Get("http://" + addrs[1] + "/v1/log/checkpoint")
		if err != nil {
			t.Fatal(err)
		}
		note, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			cp, err := checkpoint.Open(note, vkey)
			if err != nil {
				t.Fatalf("checkpoint from the replica: %v\n%s", err, note)
			}
			if cp.Size == uint64(len(deliveries)) {
				if root, err := st.RootAt(context.Background(), cp.Size); err != nil || !bytes.Equal(root, cp.Root) {
					t.Fatalf("checkpoint root differs from the tree's: %v", err)
				}
				break
			}
		}
		select {
		case <-deadline:
			t.Fatal("no checkpoint of every event after 2 minutes")
		case <-time.After(10 * time.Millisecond):
		}
	}

	// The cluster goes away: ingest answers 503 store_unavailable (Stripe
	// retries), /readyz fails; when it is back, the same process recovers.
	down(true)
	extra := g.Event(fc.TypeRefreshedBalance, "fca_e2e0", 1705400000)
	code, m := post(addrs[0], extra)
	if code != 503 || m["error"].(map[string]any)["type"] != "store_unavailable" {
		t.Fatalf("while unavailable: %d %v", code, m)
	}
	if msg, _ := m["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "may or may not have been stored; retrying is safe") {
		t.Errorf("503 message %q does not say the outcome is unknown", msg)
	}
	if resp, err := http.Get("http://" + addrs[0] + "/readyz"); err != nil || resp.StatusCode != 503 {
		t.Fatalf("/readyz while unavailable: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	down(false)
	waitReady(t, "http://"+addrs[0]+"/readyz")
	if code, m := post(addrs[0], extra); code != 200 || m["duplicate"] != false {
		t.Fatalf("after recovery: %d %v", code, m)
	}
}
