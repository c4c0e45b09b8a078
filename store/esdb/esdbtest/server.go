package esdbtest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/gossip"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/serverfeatures"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// Server is an in-memory EventStoreDB node. Its zero value is not usable;
// create one with Start. All methods are safe for concurrent use.
type Server struct {
	tb testing.TB

	mu      sync.Mutex
	log     []*record
	streams map[string]*stream
	nextPos uint64
	// changed is closed and replaced whenever the log grows, waking live
	// subscriptions.
	changed chan struct{}

	addr    string
	grpcMu  sync.Mutex
	grpcSrv *grpc.Server

	unavailable atomic.Bool
	delay       atomic.Int64
	failMu      sync.Mutex
	failAt      map[int64]codes.Code
	calls       atomic.Int64
	subCount    atomic.Int64
	readSent    atomic.Int64

	refuseEarly atomic.Bool
	silent      atomic.Bool
	slowLimit   atomic.Int64
	maxSize     atomic.Int64
	aclMu       sync.Mutex
	acl         *ACL
	holdMu      sync.Mutex
	holds       map[string]*holdGate
	failApplied map[string][]codes.Code

	cluster *Cluster // nil for a single node
	index   int
}

// record is one event of the global log ($all).
type record struct {
	stream      string
	revision    uint64
	pos         uint64 // commit == prepare, as on modern servers
	id          uuid.UUID
	typ         string
	contentType string
	created     int64 // .NET ticks since the Unix epoch
	data        []byte
	meta        []byte
}

type stream struct {
	events []*record
	// truncateBefore hides revisions below it after a soft delete.
	truncateBefore uint64
	tombstoned     bool
}

func (s *stream) lastRevision() int64 { return int64(len(s.events)) - 1 }

func (s *stream) visible() []*record {
	if s.truncateBefore >= uint64(len(s.events)) {
		return nil
	}
	return s.events[s.truncateBefore:]
}

// Option configures a Server.
type Option func(*config)

type config struct {
	systemEvents  bool
	maxAppendSize int
	cluster       *Cluster
	index         int
}

// DefaultMaxAppendSize is a real node's default MaxAppendSize (1 MiB).
const DefaultMaxAppendSize = 1 << 20

// WithMaxAppendSize sets the node's MaxAppendSize in bytes, counted per
// append request as data + metadata + 2 × type length of every event.
func WithMaxAppendSize(n int) Option { return func(c *config) { c.maxAppendSize = n } }

// WithoutSystemEvents starts the server with an empty $all. By default $all
// begins with a few system events ($settings, $metadata, stats) so that a
// client that forgets to filter them sees them.
func WithoutSystemEvents() Option { return func(c *config) { c.systemEvents = false } }

// Start starts a server on 127.0.0.1:0 and stops it when the test ends.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	cfg := config{systemEvents: true, maxAppendSize: DefaultMaxAppendSize}
	for _, o := range opts {
		o(&cfg)
	}
	s := &Server{
		tb:      tb,
		streams: make(map[string]*stream),
		// Start mid-file, as a real node's log never begins at 0 for user events.
		nextPos:     1024,
		changed:     make(chan struct{}),
		failAt:      make(map[int64]codes.Code),
		holds:       make(map[string]*holdGate),
		failApplied: make(map[string][]codes.Code),
	}
	s.cluster, s.index = cfg.cluster, cfg.index
	s.refuseEarly.Store(true)
	s.maxSize.Store(int64(cfg.maxAppendSize))
	if cfg.systemEvents {
		s.mu.Lock()
		s.appendLocked("$settings", "$settings", []byte(`{"$userStreamAcl":{}}`))
		s.appendLocked("$$$stats-127.0.0.1:2113", "$metadata", []byte(`{"$maxAge":86400}`))
		s.appendLocked("$stats-127.0.0.1:2113", "$statsCollected", []byte(`{}`))
		s.mu.Unlock()
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("esdbtest: listen: %v", err)
	}
	s.addr = lis.Addr().String()
	s.serve(lis)
	tb.Cleanup(s.Stop)
	return s
}

func (s *Server) serve(lis net.Listener) {
	srv := grpc.NewServer(
		// The client pings every 10 s even when idle; grpc's default policy
		// would answer too_many_pings and drop long subscriptions.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
		// A fixed HTTP/2 window (no BDP growth), as a node under load
		// effectively has: a client sending more than 64 KiB of an append
		// the node refused early blocks and then sees io.EOF, every time.
		grpc.InitialWindowSize(64<<10),
		grpc.InitialConnWindowSize(64<<10),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := s.fault(ctx); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := s.fault(ss.Context()); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	)
	api.RegisterStreamsServer(srv, &streamsServer{s: s})
	serverfeatures.RegisterServerFeaturesServer(srv, &featuresServer{})
	if s.cluster != nil {
		gossip.RegisterGossipServer(srv, &gossipServer{c: s.cluster})
	}
	s.grpcMu.Lock()
	s.grpcSrv = srv
	s.grpcMu.Unlock()
	go func() { _ = srv.Serve(lis) }()
}

// fault applies the fault hooks to one incoming call.
func (s *Server) fault(ctx context.Context) error {
	n := s.calls.Add(1)
	if s.silent.Load() {
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
	if d := time.Duration(s.delay.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	if s.unavailable.Load() {
		return status.Error(codes.Unavailable, "esdbtest: server unavailable")
	}
	s.failMu.Lock()
	code, ok := s.failAt[n]
	delete(s.failAt, n)
	s.failMu.Unlock()
	if ok {
		return status.Errorf(code, "esdbtest: injected failure of call %d", n)
	}
	return nil
}

// ConnString returns the connection string for the v4 client.
func (s *Server) ConnString() string { return "esdb://" + s.addr + "?tls=false" }

// Addr returns host:port.
func (s *Server) Addr() string { return s.addr }

// Stop stops serving and closes every connection; the data is kept for
// Restart. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.grpcMu.Lock()
	srv := s.grpcSrv
	s.grpcSrv = nil
	s.grpcMu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

// Restart serves again on the same address with the same data.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	var lis net.Listener
	var err error
	// The port was just released; the kernel may need a moment.
	for range 50 {
		if lis, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.tb.Fatalf("esdbtest: restart on %s: %v", s.addr, err)
	}
	s.silent.Store(false)
	s.serve(lis)
}

// SetUnavailable makes every call (including server-features discovery)
// fail with codes.Unavailable while on is true.
func (s *Server) SetUnavailable(on bool) { s.unavailable.Store(on) }

// SetDelay delays the start of every call by d (0 turns it off).
func (s *Server) SetDelay(d time.Duration) { s.delay.Store(int64(d)) }

// FailNth makes the n-th call from now (1 = the next one) fail with code.
func (s *Server) FailNth(n int, code codes.Code) {
	s.failMu.Lock()
	s.failAt[s.calls.Load()+int64(n)] = code
	s.failMu.Unlock()
}

// Calls returns how many calls the server has received.
func (s *Server) Calls() int64 { return s.calls.Load() }

// StreamEventsRead returns how many events stream reads (not $all reads
// or subscriptions) have sent.
func (s *Server) StreamEventsRead() int64 { return s.readSent.Load() }

// Subscriptions returns how many subscriptions are currently open.
func (s *Server) Subscriptions() int64 { return s.subCount.Load() }

// Event is a stored event as seen by tests.
type Event struct {
	Stream         string
	Revision       uint64
	Position       uint64
	ID             uuid.UUID
	Type           string
	ContentType    string
	Data, Metadata []byte
}

// Events returns every event of $all (system events included), in order.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Event, 0, len(s.log))
	for _, r := range s.log {
		out = append(out, Event{Stream: r.stream, Revision: r.revision, Position: r.pos, ID: r.id,
			Type: r.typ, ContentType: r.contentType, Data: r.data, Metadata: r.meta})
	}
	return out
}

// AppendRaw appends one event directly, bypassing gRPC (to plant foreign or
// system events in tests). It returns the event's position.
func (s *Server) AppendRaw(streamName, typ string, data, meta []byte) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.appendLocked(streamName, typ, data)
	r.meta = meta
	s.notifyLocked()
	return r.pos
}

// appendLocked appends a system-style event with a random id.
func (s *Server) appendLocked(streamName, typ string, data []byte) *record {
	st := s.stream(streamName)
	r := &record{stream: streamName, revision: uint64(len(st.events)), id: uuid.New(), typ: typ,
		contentType: "application/json", created: ticks(time.Now()), data: data}
	s.place(st, r)
	return r
}

func (s *Server) stream(name string) *stream {
	st := s.streams[name]
	if st == nil {
		st = &stream{}
		s.streams[name] = st
	}
	return st
}

// place gives r its position and adds it to st and $all. Positions advance
// by a record-sized amount so they look like byte offsets.
func (s *Server) place(st *stream, r *record) {
	r.pos = s.nextPos
	s.nextPos += uint64(64 + len(r.stream) + len(r.typ) + len(r.data) + len(r.meta))
	st.events = append(st.events, r)
	s.log = append(s.log, r)
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
	if s.cluster != nil && s.cluster.isLeader(s) {
		s.cluster.replicateLocked(s)
	}
}

// serving reports whether the node accepts connections.
func (s *Server) serving() bool {
	s.grpcMu.Lock()
	defer s.grpcMu.Unlock()
	return s.grpcSrv != nil
}

func ticks(t time.Time) int64 { return t.UnixNano() / 100 }

type featuresServer struct {
	serverfeatures.UnimplementedServerFeaturesServer
}

// GetSupportedMethods answers like a 24.10 node, so the client's discovery
// path (and its failure when the node is unavailable) is exercised.
func (*featuresServer) GetSupportedMethods(context.Context, *shared.Empty) (*serverfeatures.SupportedMethods, error) {
	m := &serverfeatures.SupportedMethods{EventStoreServerVersion: "24.10.0"}
	for _, name := range []string{"read", "append", "delete", "tombstone"} {
		m.Methods = append(m.Methods, &serverfeatures.SupportedMethod{ServiceName: "event_store.client.streams.streams", MethodName: name})
	}
	return m, nil
}

func (s *Server) String() string { return fmt.Sprintf("esdbtest.Server(%s)", s.addr) }

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
