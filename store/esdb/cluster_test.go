package esdb_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/esdb"
	"github.com/fcaudit/fcaudit/store/esdb/esdbtest"
	"github.com/fcaudit/fcaudit/store/storetest"
)

// clusterBackend runs each store over a 3-node cluster discovered through
// gossip (esdb+discover://); Second opens another adapter (another serve
// replica) connected straight to a follower, which forwards its writes.
func clusterBackend(leaderChange bool) storetest.Backend {
	clusters := sync.Map{} // store.Store -> *esdbtest.Cluster
	return storetest.Backend{
		New: func(t testing.TB) store.Store {
			c := esdbtest.StartCluster(t, 3)
			var s store.Store = open(t, c.DiscoverConnString())
			if leaderChange {
				s = &electing{Store: s, c: c}
			}
			clusters.Store(s, c)
			return s
		},
		Second: func(t testing.TB, s store.Store) store.Store {
			c, _ := clusters.Load(s)
			return open(t, c.(*esdbtest.Cluster).Follower(0).ConnString())
		},
	}
}

func TestContractCluster(t *testing.T) {
	storetest.Run(t, clusterBackend(false))
}

// TestContractClusterLeaderChange: the same, with node 1 elected leader
// after the second append of each subtest.
func TestContractClusterLeaderChange(t *testing.T) {
	storetest.Run(t, clusterBackend(true))
	if elections.Load() == 0 {
		t.Error("no subtest saw a leader change")
	}
}

var elections atomic.Int64

// electing is a store whose second successful Append elects node 1: a
// leader change in the middle of every subtest that appends twice.
type electing struct {
	store.Store
	c       *esdbtest.Cluster
	appends atomic.Int64
}

func (e *electing) Append(ctx context.Context, stream string, exp store.ExpectedRevision, evs ...store.Event) ([]store.Appended, error) {
	res, err := e.Store.Append(ctx, stream, exp, evs...)
	if err == nil && e.appends.Add(1) == 2 {
		e.c.SetLeader(1)
		elections.Add(1)
	}
	return res, err
}

// TestLaggingFollower: an adapter connected to a follower
// that has stopped replicating. Writes are forwarded to the leader, but the
// follower's own reads are stale: the append's read-back, the claim and
// EventByID must be served by the leader (requires-leader sent as outgoing
// metadata), or they miss what was just stored.
func TestLaggingFollower(t *testing.T) {
	c := esdbtest.StartCluster(t, 3)
	f := c.Follower(0)
	c.SetLagging(f, true)
	onLeader := open(t, c.Leader().ConnString())
	onFollower := open(t, f.ConnString())
	stream := fc.AccountStream("fca_lag")
	res, err := onFollower.Append(ctx(t), stream, store.AnyRevision, ev("evt_lag0", 0))
	if err != nil || res[0].Revision != 0 || res[0].Duplicate {
		t.Fatalf("append through a lagging follower: %+v, %v", res, err)
	}
	if _, err := onFollower.EventByID(ctx(t), "evt_lag0"); err != nil {
		t.Fatalf("EventByID through a lagging follower: %v", err)
	}
	// Stored through the leader, redelivered to a replica on the follower:
	// the claim exists on the leader only.
	if _, err := onLeader.Append(ctx(t), stream, store.AnyRevision, ev("evt_lag1", 1)); err != nil {
		t.Fatal(err)
	}
	onFollower2 := open(t, f.ConnString())
	res, err = onFollower2.Append(ctx(t), stream, store.AnyRevision, ev("evt_lag1", 1))
	if err != nil && !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("redelivery through a lagging follower: %v, want success or ErrUnavailable (retry)", err)
	}
	if err == nil && (!res[0].Duplicate || res[0].Revision != 1) {
		t.Fatalf("redelivery through a lagging follower: %+v, want the duplicate at revision 1", res[0])
	}
	got, err := onLeader.ReadStream(ctx(t), stream, 0, 0)
	if err != nil || len(got) != 2 {
		t.Fatalf("stream holds %d events (%v), want 2", len(got), err)
	}
}

// TestACLRecipe: the ACL recipe of docs/eventstoredb.md. A non-admin user
// with stream ACLs only cannot read $all (Ping, ReadAll and Subscribe fail
// with esdb.ErrAccessDenied, clearly, not as "unavailable"); once $$$all's
// metadata grants it read, everything works.
func TestACLRecipe(t *testing.T) {
	srv := esdbtest.Start(t)
	s := open(t, srv.ConnString())
	srv.SetACL(&esdbtest.ACL{User: "fcaudit"})
	if _, err := s.Append(ctx(t), fc.AccountStream("fca_acl"), store.AnyRevision, ev("evt_acl", 0)); err != nil {
		t.Fatalf("append with stream ACLs: %v", err)
	}
	if err := s.Ping(ctx(t)); !errors.Is(err, esdb.ErrAccessDenied) {
		t.Fatalf("ping without the $$$all grant: %v, want ErrAccessDenied", err)
	}
	if _, err := s.ReadAll(ctx(t), store.ReadOptions{}); !errors.Is(err, esdb.ErrAccessDenied) {
		t.Fatalf("ReadAll without the $$$all grant: %v, want ErrAccessDenied", err)
	}
	err := s.Subscribe(ctx(t), 0, store.Filter{}, func(context.Context, []store.RecordedEvent) error { return nil })
	if !errors.Is(err, esdb.ErrAccessDenied) {
		t.Fatalf("Subscribe without the $$$all grant: %v, want ErrAccessDenied", err)
	}
	srv.AppendRaw("$$$all", "$metadata", []byte(`{"$acl":{"$r":["fcaudit"]}}`), nil)
	if err := s.Ping(ctx(t)); err != nil {
		t.Fatalf("ping with the grant: %v", err)
	}
	all, err := s.ReadAll(ctx(t), store.ReadOptions{})
	if err != nil || len(all) != 1 {
		t.Fatalf("ReadAll with the grant: %d events, %v", len(all), err)
	}
}

// TestTwoReplicasCluster: the two-replica workload over a 3-node cluster,
// one replica discovering the leader through gossip and one connected to a
// follower, with a leader change halfway through.
func TestTwoReplicasCluster(t *testing.T) {
	c := esdbtest.StartCluster(t, 3)
	a := open(t, c.DiscoverConnString())
	b := open(t, c.Follower(0).ConnString())
	twoReplicas(t, a, b, func() { c.SetLeader(2) })
}

// TestSilentLeader: the node a subscription runs on goes silent (shutting
// down, or hung) with its connection still up, and another node takes over
// as leader. The subscription must notice (an idle probe gets no answer),
// move to a live node and deliver what is written there.
func TestSilentLeader(t *testing.T) {
	c := esdbtest.StartCluster(t, 3)
	s := openWith(t, c.SeedsConnString(), esdb.Options{Timeout: time.Second})
	stream := fc.AccountStream("fca_silentleader")
	if _, err := s.Append(ctx(t), stream, store.AnyRevision, ev("evt_sl0", 0)); err != nil {
		t.Fatal(err)
	}
	got, _, _ := subscribeAll(t, s)
	wait(t, got, "evt_sl0")
	c.SetLeader(1)
	c.Node(0).GoSilent()
	w := open(t, c.Node(1).ConnString())
	if _, err := w.Append(ctx(t), stream, store.AnyRevision, ev("evt_sl1", 1)); err != nil {
		t.Fatal(err)
	}
	wait(t, got, "evt_sl1")
}
