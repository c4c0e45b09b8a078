package esdbtest

import (
	"context"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/gossip"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Cluster is several nodes sharing one log, as a KurrentDB cluster does:
// one leader takes the writes; followers replicate its log (at once, or not
// at all while lagging), serve reads from their own copy, forward writes to
// the leader, and answer not-leader only to calls that send the
// requires-leader header. Every node serves the Gossip service, so the v4
// client can discover the cluster with esdb+discover://.
type Cluster struct {
	tb    testing.TB
	nodes []*Server

	mu     sync.Mutex // a leaf lock: never held while taking a node's lock
	leader int
	lag    map[int]bool
}

// StartCluster starts n nodes (n >= 1) on loopback; node 0 leads. opts
// apply to every node.
func StartCluster(tb testing.TB, n int, opts ...Option) *Cluster {
	tb.Helper()
	c := &Cluster{tb: tb, lag: make(map[int]bool)}
	for i := range n {
		o := append(append([]Option(nil), opts...), func(cfg *config) { cfg.cluster, cfg.index = c, i })
		if i > 0 {
			o = append(o, WithoutSystemEvents())
		}
		c.nodes = append(c.nodes, Start(tb, o...))
	}
	// Followers start with the leader's system events.
	l := c.nodes[0]
	l.mu.Lock()
	c.replicateLocked(l)
	l.mu.Unlock()
	return c
}

// Node returns node i.
func (c *Cluster) Node(i int) *Server { return c.nodes[i] }

// Leader returns the current leader.
func (c *Cluster) Leader() *Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[c.leader]
}

// Follower returns the k-th follower (0-based, in node order).
func (c *Cluster) Follower(k int) *Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range c.nodes {
		if i != c.leader {
			if k == 0 {
				return s
			}
			k--
		}
	}
	c.tb.Fatalf("esdbtest: no follower %d", k)
	return nil
}

// DiscoverConnString returns an esdb+discover:// connection string with
// the first node as the one seed, as a DNS name would be: the client reads
// the gossip there and picks the leader.
//
// The v4.2.0 client ignores the seeds of an esdb+discover:// string with
// several hosts (it dials the empty Address); several seeds work with
// esdb:// (SeedsConnString).
func (c *Cluster) DiscoverConnString() string {
	return "esdb+discover://" + c.nodes[0].addr + "?tls=false"
}

// SeedsConnString returns an esdb:// connection string listing every node
// as a gossip seed.
func (c *Cluster) SeedsConnString() string {
	addrs := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		addrs[i] = s.addr
	}
	return "esdb://" + strings.Join(addrs, ",") + "?tls=false"
}

// SetLagging stops (on) or resumes (off) replication to node s: while it
// lags, its reads see the log as it was. Resuming catches it up at once.
func (c *Cluster) SetLagging(s *Server, on bool) {
	c.mu.Lock()
	c.lag[s.index] = on
	c.mu.Unlock()
	if !on {
		l := c.Leader()
		l.mu.Lock()
		c.replicateLocked(l)
		l.mu.Unlock()
	}
}

// SetLeader makes node i the leader, as an election would: it first gets
// every record of the old leader (an election picks an up-to-date node).
func (c *Cluster) SetLeader(i int) {
	old := c.Leader()
	next := c.nodes[i]
	if old == next {
		return
	}
	old.mu.Lock()
	next.mu.Lock()
	next.applyLocked(old.log, old.nextPos)
	next.mu.Unlock()
	c.mu.Lock()
	c.leader = i
	c.mu.Unlock()
	old.mu.Unlock()
	next.mu.Lock()
	c.replicateLocked(next)
	next.mu.Unlock()
}

func (c *Cluster) isLeader(s *Server) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[c.leader] == s
}

// replicateLocked copies the leader's new records to every follower that
// does not lag. The leader's lock is held; follower locks are taken after
// it (never the other way round).
func (c *Cluster) replicateLocked(l *Server) {
	c.mu.Lock()
	var to []*Server
	for i, s := range c.nodes {
		if s != l && !c.lag[i] {
			to = append(to, s)
		}
	}
	c.mu.Unlock()
	for _, f := range to {
		f.mu.Lock()
		f.applyLocked(l.log, l.nextPos)
		f.mu.Unlock()
	}
}

// applyLocked appends the records of log that s does not have yet, as a
// follower replaying its leader's log: soft deletes and tombstones are
// rebuilt from their $metadata and $streamDeleted records.
func (s *Server) applyLocked(log []*record, nextPos uint64) {
	if len(log) <= len(s.log) {
		return
	}
	for _, r := range log[len(s.log):] {
		st := s.stream(r.stream)
		st.events = append(st.events, r)
		s.log = append(s.log, r)
		switch {
		case r.typ == "$streamDeleted":
			st.tombstoned = true
		case r.typ == "$metadata" && strings.HasPrefix(r.stream, "$$"):
			var m struct {
				TB *uint64 `json:"$tb"`
			}
			if json.Unmarshal(r.data, &m) == nil && m.TB != nil {
				s.stream(strings.TrimPrefix(r.stream, "$$")).truncateBefore = *m.TB
			}
		}
	}
	s.nextPos = nextPos
	close(s.changed)
	s.changed = make(chan struct{})
}

// requiresLeader reports whether the call sent requires-leader: true.
func requiresLeader(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get("requires-leader")
	return len(v) > 0 && v[0] == "true"
}

// route decides where a call to s runs: on s itself, or (for a write that
// reaches a follower) on the leader. A follower answers not-leader, with
// the leader's endpoint in the trailers, to calls that require the leader.
func (s *Server) route(ctx context.Context, write bool) (*Server, error) {
	if s.cluster == nil || s.cluster.isLeader(s) {
		return s, nil
	}
	l := s.cluster.Leader()
	if requiresLeader(ctx) {
		host, port, _ := net.SplitHostPort(l.addr)
		_ = grpc.SetTrailer(ctx, metadata.Pairs("exception", "not-leader",
			"leader-endpoint-host", host, "leader-endpoint-port", port))
		return nil, status.Error(codes.NotFound, "Leader info available")
	}
	if write {
		return l, nil // forwarded, not redirected
	}
	return s, nil
}

type gossipServer struct {
	gossip.UnimplementedGossipServer
	c *Cluster
}

// Read lists the members, their states and their client endpoints.
func (g *gossipServer) Read(context.Context, *shared.Empty) (*gossip.ClusterInfo, error) {
	g.c.mu.Lock()
	leader := g.c.leader
	g.c.mu.Unlock()
	out := &gossip.ClusterInfo{}
	for i, s := range g.c.nodes {
		host, port, _ := net.SplitHostPort(s.addr)
		p, _ := strconv.Atoi(port)
		state := gossip.MemberInfo_Follower
		if i == leader {
			state = gossip.MemberInfo_Leader
		}
		out.Members = append(out.Members, &gossip.MemberInfo{
			InstanceId:   toProtoUUID(uuid.NewSHA1(uuid.NameSpaceURL, []byte(s.addr))),
			State:        state,
			IsAlive:      s.serving(),
			HttpEndPoint: &gossip.EndPoint{Address: host, Port: uint32(p)},
		})
	}
	return out, nil
}
