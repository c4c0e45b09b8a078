package esdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/fcaudit/fcaudit/internal/logkey"
	"github.com/fcaudit/fcaudit/internal/redact"
	"github.com/fcaudit/fcaudit/store"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// EventIDNamespace is the namespace of the name-based (v5) UUIDs that become
// EventStoreDB event ids: uuid.NewSHA1(EventIDNamespace, []byte(stripeID)).
// It must never change: EventStoreDB's own idempotency and fcaudit's
// deduplication agree only while it stays the same.
var EventIDNamespace = uuid.MustParse("48f5acd9-371d-54a1-99a7-d54ce54ecc87")

// ClaimStreamPrefix starts the per-Stripe-id claim streams (see the package
// documentation). It differs from store.SystemStreamPrefix ("fcaudit-") so
// that the $all filter excludes claims.
const ClaimStreamPrefix = "fcaudit_id-"

// ClaimEventType is the EventStoreDB type of claim events.
const ClaimEventType = "fcaudit.claim"

// Errors for conditions fcaudit never creates itself but must report
// clearly. They wrap nothing in store: callers see them as failures.
var (
	// ErrStreamDeleted: a stream was deleted or tombstoned behind fcaudit's
	// back (see the ACL recommendation in docs/eventstoredb.md).
	ErrStreamDeleted = errors.New("eventstoredb: stream deleted")
	// ErrAccessDenied: the connection's user lacks the ACL for the call.
	ErrAccessDenied = errors.New("eventstoredb: access denied")
	// ErrInvalidPosition: a $all position that is not where an event
	// starts in this log, typically one from another backend.
	ErrInvalidPosition = errors.New("eventstoredb: not an event position in this log")
)

// EventID returns the EventStoreDB event id of a Stripe event id.
func EventID(stripeID string) uuid.UUID {
	return uuid.NewSHA1(EventIDNamespace, []byte(stripeID))
}

// ClaimStream returns the claim stream of a Stripe event id.
func ClaimStream(stripeID string) string { return ClaimStreamPrefix + stripeID }

// Options configure a Store. The zero value is usable.
type Options struct {
	// Logger receives warnings (reconnects, retries); nil discards.
	Logger *slog.Logger
	// Timeout bounds each client call and the start of each subscription
	// (default 10 s). A call that hits it fails with store.ErrUnavailable
	// and replaces the client (see docs/eventstoredb.md, outages).
	Timeout time.Duration
	// MaxAppendAttempts bounds the re-read-and-retry loop of an
	// AnyRevision append under contention from other replicas (default 50).
	MaxAppendAttempts int
	// ReadBatch is the default ReadAll limit and the maximum batch handed
	// to a Subscribe handler (default 500).
	ReadBatch int
	// MaxAppendSize is the node's MaxAppendSize setting (default 1 MiB,
	// the server's default). The adapter refuses larger appends itself,
	// counted as the server does: data + metadata + 2 × type per event.
	MaxAppendSize int
	// TreeSyncLeaves bounds how many leaves a read of the Merkle tree
	// (TreeHead, proofs, LeafIndex) adds itself when the tree trails the
	// log (default 10000; negative: none, only RunLogBuilder extends it).
	TreeSyncLeaves int
}

// appendOverhead is the room MaxBodySize leaves for one event's metadata
// (fcaudit's JSON with provenance) and twice its type.
const appendOverhead = 8 << 10

// Store is a store.Store on EventStoreDB. It is safe for concurrent use.
type Store struct {
	cfg  *esdb.Configuration
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	client *clientRef
	closed bool
	done   chan struct{}

	warnOnce sync.Once
	locks    streamLocks
	foreign  atomic.Uint64

	tl treeState // the Merkle tree (translog.go)
}

var _ store.Store = (*Store)(nil)

// Open parses connString (esdb://…, esdb+discover://…) and creates the
// client. It does not contact the server: the v4 client connects on first
// use, and Ping tells whether the node is reachable.
func Open(ctx context.Context, connString string, opts Options) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open eventstoredb: %w", err)
	}
	cfg, err := esdb.ParseConnectionString(connString)
	if err != nil {
		// url.Parse's errors quote the connection string, credentials
		// and all.
		return nil, fmt.Errorf("open eventstoredb: %w", redact.URLError(err))
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.MaxAppendAttempts <= 0 {
		opts.MaxAppendAttempts = 50
	}
	if opts.ReadBatch <= 0 {
		opts.ReadBatch = 500
	}
	if opts.MaxAppendSize <= 0 {
		opts.MaxAppendSize = 1 << 20
	}
	if opts.MaxAppendSize <= 2*appendOverhead {
		return nil, fmt.Errorf("open eventstoredb: MaxAppendSize %d is too small (want > %d)", opts.MaxAppendSize, 2*appendOverhead)
	}
	// The client logs every retry through the standard logger by default;
	// route it to the caller's logger at debug level instead.
	logger := opts.Logger
	cfg.Logger = func(level esdb.LogLevel, format string, args ...any) {
		lv := slog.LevelDebug
		if level == esdb.LogError {
			lv = slog.LevelInfo
		}
		logger.Log(context.Background(), lv, "eventstoredb client: "+fmt.Sprintf(format, args...))
	}
	client, err := esdb.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("open eventstoredb: %w", err)
	}
	return &Store{cfg: cfg, opts: opts, log: opts.Logger, client: &clientRef{c: client}, done: make(chan struct{})}, nil
}

// Close closes the client; later calls fail with store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.done)
	s.retireLocked(s.client)
	return nil
}

// clientRef counts the calls running on a client, so that a replaced
// client is closed only once none runs: closing a v4.2.0 client makes
// calls still sending on its request channel panic.
type clientRef struct {
	c       *esdb.Client
	calls   int
	retired bool
}

// conn returns the current client for one call; release it when the call
// (and anything reading from it, such as a subscription) is done.
func (s *Store) conn() (*clientRef, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	s.client.calls++
	return s.client, nil
}

// checkOpen reports store.ErrClosed after Close.
func (s *Store) checkOpen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	return nil
}

// release ends one call on r.
func (s *Store) release(r *clientRef) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.calls--
	if r.retired && r.calls == 0 {
		_ = r.c.Close()
	}
}

func (s *Store) retireLocked(r *clientRef) {
	r.retired = true
	if r.calls == 0 {
		_ = r.c.Close()
	}
}

// noteError replaces r when err says it is closed for good: the v4 client
// closes itself after a failed discovery (node unreachable for ~1 s) and
// never reconnects.
func (s *Store) noteError(r *clientRef, err error) bool {
	var e *esdb.Error
	if !errors.As(err, &e) || e.Code() != esdb.ErrorCodeConnectionClosed {
		return false
	}
	return s.replace(r, "client closed after failed discovery", err)
}

// replace swaps r for a new client (unless another call did already). A
// v4.2.0 client whose rediscovery failed ends its connection loop without
// draining its request channel: every call then waiting for a connection,
// or reporting an error, blocks forever on that channel. Those calls are
// abandoned (each was bounded by the operation timeout); the old client is
// closed once no call runs on it, which a client stuck that way never
// reaches: it holds no connection, only the stuck goroutines.
func (s *Store) replace(r *clientRef, why string, err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.client != r {
		return true // another call replaced it already
	}
	nc, nerr := esdb.NewClient(s.cfg)
	if nerr != nil {
		s.log.Error("eventstoredb: recreate client", logkey.Err(nerr))
		return false
	}
	s.log.Warn("eventstoredb: replacing the client: "+why, logkey.Err(err))
	s.client = &clientRef{c: nc}
	s.retireLocked(r)
	return true
}

// errClientGone is the error of a client call cut short because its client
// was closed under it (replaced, or the Store closed).
var errClientGone = errors.New("eventstoredb: client closed during the call")

// guard runs fn and turns a panic into errClientGone: a v4.2.0 client
// panics ("send on closed channel") in a call running while it is closed.
// The reference counting in conn/release avoids that; guard is the
// backstop that keeps such a panic from ending the process.
func guard(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w (%v)", errClientGone, r)
		}
	}()
	return fn()
}

// call runs fn with the current client under the operation timeout. fn runs
// in its own goroutine because the v4 client can block without honouring
// ctx while it (re)discovers a node, or forever after a failed one; the
// caller gets ctx's error instead, and a call that hit the timeout replaces
// the client (see replace).
//
// A call that finds the client closed for good (the first one after a failed
// rediscovery) replaces it and runs once more on the new client, so the
// first call after the node returns already succeeds.
func (s *Store) call(ctx context.Context, op string, fn func(ctx context.Context, c *esdb.Client) error) error {
	cctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	var err error
	for try := 0; try < 3; try++ {
		var r *clientRef
		if r, err = s.conn(); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		errc := make(chan error, 1)
		go func() {
			defer s.release(r)
			errc <- guard(func() error { return fn(cctx, r.c) })
		}()
		select {
		case err = <-errc:
		case <-cctx.Done():
			err = cctx.Err()
			if ctx.Err() == nil {
				s.replace(r, "a call did not return within the operation timeout", err)
			}
		}
		if err == nil {
			break
		}
		// A follower answers not-leader to a leader-only read; the client
		// has then reconnected to the leader it named: ask again there.
		// Calls that were running on the connection it dropped for that
		// end with Canceled ("the client connection is closing").
		if !isCode(err, esdb.ErrorCodeNotLeader) && !connClosing(cctx, err) && !s.noteError(r, err) {
			break
		}
	}
	if err != nil {
		return s.translate(ctx, op, err)
	}
	return nil
}

// translate maps a client error to store's vocabulary. Not-found and
// wrong-expected-version are handled by the callers, which know what was
// missing.
func (s *Store) translate(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	if errors.Is(err, store.ErrClosed) || errors.Is(err, store.ErrUnavailable) ||
		errors.Is(err, store.ErrStreamNotFound) || errors.Is(err, store.ErrEventNotFound) ||
		errors.Is(err, store.ErrWrongExpectedRevision) || errors.Is(err, store.ErrInvalidEvent) ||
		errors.Is(err, store.ErrTooLarge) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if status.Code(err) == codes.InvalidArgument && strings.Contains(err.Error(), "Maximum Append Size") {
		// v4.2.0 maps the node's maximum-append-size-exceeded to "unknown";
		// the status message is all that is left of it.
		return fmt.Errorf("%s: the node refused the append as over its MaxAppendSize: %w: %w", op, store.ErrTooLarge, err)
	}
	if isTransient(err) {
		return fmt.Errorf("%s: %w: %w", op, store.ErrUnavailable, err)
	}
	var e *esdb.Error
	if errors.As(err, &e) {
		switch e.Code() {
		case esdb.ErrorCodeStreamDeleted:
			return fmt.Errorf("%s: %w: %w", op, ErrStreamDeleted, err)
		case esdb.ErrorCodeAccessDenied, esdb.ErrorCodeUnauthenticated:
			return fmt.Errorf("%s: %w: %w", op, ErrAccessDenied, err)
		}
	}
	switch status.Code(err) {
	case codes.PermissionDenied, codes.Unauthenticated:
		return fmt.Errorf("%s: %w: %w", op, ErrAccessDenied, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// connClosing reports a call cut short because the client closed the
// connection under it (it reconnects to another node), not because ctx
// ended.
func connClosing(ctx context.Context, err error) bool {
	return ctx.Err() == nil && status.Code(err) == codes.Canceled
}

// isTransient reports whether err means "the node cannot be reached or did
// not answer in time": the caller may retry later.
func isTransient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, errClientGone) {
		return true
	}
	var e *esdb.Error
	if errors.As(err, &e) {
		switch e.Code() {
		case esdb.ErrorUnavailable, esdb.ErrorCodeDeadlineExceeded, esdb.ErrorCodeConnectionClosed,
			esdb.ErrorCodeNotLeader, esdb.ErrorAborted:
			return true
		}
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted, codes.Canceled:
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne)
}

func isCode(err error, code esdb.ErrorCode) bool {
	var e *esdb.Error
	return errors.As(err, &e) && e.Code() == code
}

// Ping reads one event backwards from $all: cheap, and it needs a working
// connection to a node that serves reads.
func (s *Store) Ping(ctx context.Context) error {
	return s.call(ctx, "ping eventstoredb", func(ctx context.Context, c *esdb.Client) error {
		_, err := lastAll(ctx, c)
		return err
	})
}

// lastAll returns the last event of $all (nil when empty), system events
// included.
func lastAll(ctx context.Context, c *esdb.Client) (*esdb.RecordedEvent, error) {
	rs, err := c.ReadAll(ctx, esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	ev, err := rs.Recv()
	if errors.Is(err, io.EOF) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ev.OriginalEvent(), nil
}

// position maps an EventStoreDB position to fcaudit's: commit + 1, so that
// no event has position 0 ("before the first event").
func (s *Store) position(p esdb.Position) store.Position {
	if p.Commit != p.Prepare {
		s.warnOnce.Do(func() {
			s.log.Warn("eventstoredb: commit and prepare positions differ; fcaudit positions use the commit position",
				"commit", p.Commit, "prepare", p.Prepare)
		})
	}
	return store.Position(p.Commit + 1)
}

// allFrom is the exclusive $all start after fcaudit position p.
func allFrom(p store.Position) esdb.AllPosition {
	if p == 0 {
		return esdb.Start{}
	}
	return esdb.Position{Commit: uint64(p) - 1, Prepare: uint64(p) - 1}
}

// MaxBodySize is the largest event body (Data) the adapter accepts for a
// single event: Options.MaxAppendSize less room for fcaudit's metadata and
// the type. serve caps its webhook body limit at it, so a body that ingest
// accepts is never refused by the node.
func (s *Store) MaxBodySize() int64 {
	return int64(s.opts.MaxAppendSize - appendOverhead)
}

// leaderOnly marks a read that must see every acknowledged write: the
// read-back after an append, the head, claim and duplicate lookups. A
// follower serves reads from its own, possibly lagging, copy of the log
// unless the call carries requires-leader, which v4.2.0 never sends (it
// puts it into the incoming metadata), so the adapter adds it to the
// outgoing metadata itself. A follower then answers not-leader and the
// client reconnects to the leader (see call).
func leaderOnly(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "requires-leader", "true")
}

// ForeignEvents returns how many events ReadAll and Subscribe skipped
// because they sit under fcaudit's stream prefixes without being fcaudit
// events (another application's writes on a shared cluster).
func (s *Store) ForeignEvents() uint64 { return s.foreign.Load() }

// skipForeign counts and reports a foreign event; the warning is logged for
// the first one and then at every power of two, so a flood stays readable.
func (s *Store) skipForeign(r *esdb.RecordedEvent, err error) {
	n := s.foreign.Add(1)
	if n&(n-1) == 0 {
		s.log.Warn("eventstoredb: skipping an event that is not an fcaudit event under an fcaudit stream prefix",
			logkey.Stream, r.StreamID, "revision", r.EventNumber, logkey.EventType, r.EventType, "skipped_total", n, logkey.Err(err))
	}
}
