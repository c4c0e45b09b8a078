package api

import (
	"container/list"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fcaudit/fcaudit/internal/logkey"
)

// ConnStats counts the server's connections (for /metrics).
type ConnStats struct {
	// Open is the number of connections accepted and not yet closed.
	Open int64
	// Idle is how many of them are between requests (or have not sent
	// one yet): the ones the limit may shed.
	Idle int64
	// Shed is how many idle connections were closed to make room for new
	// ones since the server started.
	Shed int64
	// AcceptErrors is how many times accepting a connection failed (e.g.
	// the process ran out of file descriptors).
	AcceptErrors int64
	// InflightBodyBytes is the webhook body bytes reserved now
	// (Config.MaxInflightBytes bounds it).
	InflightBodyBytes int64
	// Busy is how many webhooks were answered 503 unread because the body
	// budget was spent.
	Busy int64
}

// fdHeadroom is how many file descriptors DefaultMaxConnections leaves for
// everything but client connections: the event log and read models with
// their WAL and shared-memory files, EventStoreDB's gRPC connections, the
// pprof listener, log files, DNS lookups.
const fdHeadroom = 128

// DefaultMaxConnections derives serve's connection limit from the process's
// file descriptor limit (RLIMIT_NOFILE, which the Go runtime raises to the
// hard limit at start-up), keeping fdHeadroom descriptors for the rest.
func DefaultMaxConnections() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == 0 {
		return 1024 - fdHeadroom
	}
	n := lim.Cur
	if n > 1<<20 {
		n = 1 << 20
	}
	if n <= 2*fdHeadroom {
		return max(int(n)/2, 1)
	}
	return int(n) - fdHeadroom
}

// connLimiter wraps the server's listener: it counts open connections and,
// from http.Server.ConnState, which of them are idle. At the limit a new
// connection makes the oldest idle one close (a keep-alive connection
// between requests, or one whose request headers have not all arrived:
// http.Server reports a connection active only once it has a request), so
// whoever holds many idle connections cannot keep a new client, such as
// Stripe with a signed webhook, out. When every connection is busy, Accept
// waits until one becomes idle or closes: the kernel's backlog holds the
// rest.
type connLimiter struct {
	net.Listener
	limit int
	log   *slog.Logger

	mu     sync.Mutex
	cond   *sync.Cond
	open   int
	idle   list.List // *limitedConn, oldest idle first
	closed bool

	shed         atomic.Int64
	acceptErrors atomic.Int64
	warnAccept   rateLimitedWarn
	warnShed     rateLimitedWarn
}

func newConnLimiter(ln net.Listener, limit int, log *slog.Logger) *connLimiter {
	l := &connLimiter{Listener: ln, limit: limit, log: log}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// limitedConn is a connection the limiter accounts for.
type limitedConn struct {
	net.Conn
	l *connLimiter
	// elem is the conn's place in l.idle while it is idle (nil otherwise);
	// guarded by l.mu.
	elem *list.Element
	// counted: the conn holds one of l.open's slots (guarded by l.mu).
	counted bool
}

// Accept returns the next connection, first closing the oldest idle one
// when the limit is reached (or waiting while every connection is busy).
func (l *connLimiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		if !errors.Is(err, net.ErrClosed) {
			l.acceptErrors.Add(1)
			if n, ok := l.warnAccept.allow(1); ok {
				l.log.Warn("accepting a connection failed; new clients wait in the kernel's backlog",
					logkey.Err(err), slog.Int64("open", l.stats().Open), slog.Int64("suppressed", n))
			}
			// Out of descriptors below the limit (a limit set above what
			// RLIMIT_NOFILE allows): free one the same way, so the server
			// retries its accept with a descriptor to spare.
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				l.mu.Lock()
				victims := l.shedOldestIdle()
				l.mu.Unlock()
				l.closeShed(victims)
			}
		}
		return nil, err
	}
	lc := &limitedConn{Conn: c, l: l}
	var victims []*limitedConn
	l.mu.Lock()
	for l.open >= l.limit && !l.closed {
		if v := l.shedOldestIdle(); v != nil {
			victims = append(victims, v...)
			continue
		}
		l.cond.Wait()
	}
	if l.closed {
		l.mu.Unlock()
		_ = c.Close()
		l.closeShed(victims)
		return nil, net.ErrClosed
	}
	l.open++
	lc.counted = true
	// A new connection counts as idle until its first request arrives: a
	// client that connects and sends nothing holds a descriptor as much as
	// an idle keep-alive one.
	lc.elem = l.idle.PushBack(lc)
	l.mu.Unlock()
	l.closeShed(victims)
	return lc, nil
}

// shedOldestIdle takes the oldest idle connection off the books (its slot
// is free from now on) and returns it for closeShed; nil when none is idle.
// l.mu is held.
func (l *connLimiter) shedOldestIdle() []*limitedConn {
	front := l.idle.Front()
	if front == nil {
		return nil
	}
	victim := front.Value.(*limitedConn)
	l.idle.Remove(front)
	victim.elem = nil
	victim.counted = false
	l.open--
	l.cond.Broadcast()
	return []*limitedConn{victim}
}

// Close stops accepting and wakes an Accept waiting for a free slot.
func (l *connLimiter) Close() error {
	l.mu.Lock()
	l.closed = true
	l.cond.Broadcast()
	l.mu.Unlock()
	return l.Listener.Close()
}

// connState is http.Server.ConnState: it keeps the idle list in order.
func (l *connLimiter) connState(c net.Conn, st http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch st {
	case http.StateActive:
		if lc.elem != nil {
			l.idle.Remove(lc.elem)
			lc.elem = nil
		}
	case http.StateIdle:
		// A shed connection (no longer counted) may still finish a request
		// it had started; it must not be shed, and uncounted, twice.
		if lc.elem == nil && lc.counted {
			lc.elem = l.idle.PushBack(lc)
			l.cond.Broadcast() // an Accept waiting for a busy server can shed it
		}
	}
}

// closeShed closes the connections Accept chose to shed (already
// uncounted); the server's goroutine for each sees its read fail and ends.
func (l *connLimiter) closeShed(victims []*limitedConn) {
	if len(victims) == 0 {
		return
	}
	l.shed.Add(int64(len(victims)))
	if n, ok := l.warnShed.allow(int64(len(victims))); ok {
		l.log.Warn("connection limit reached: closing the oldest idle connection",
			slog.Int("max_connections", l.limit), slog.Int("closed", len(victims)),
			slog.String("remote", victims[0].RemoteAddr().String()), slog.Int64("suppressed", n))
	}
	for _, v := range victims {
		_ = v.Conn.Close()
	}
}

// Close closes the connection and frees its slot (once).
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	l := c.l
	l.mu.Lock()
	if c.elem != nil {
		l.idle.Remove(c.elem)
		c.elem = nil
	}
	if c.counted {
		c.counted = false
		l.open--
		l.cond.Broadcast()
	}
	l.mu.Unlock()
	return err
}

func (l *connLimiter) stats() ConnStats {
	l.mu.Lock()
	open, idle := l.open, l.idle.Len()
	l.mu.Unlock()
	return ConnStats{Open: int64(open), Idle: int64(idle), Shed: l.shed.Load(), AcceptErrors: l.acceptErrors.Load()}
}

// rateLimitedWarn lets one warning through per interval and counts the
// ones it held back, so an attack cannot flood the log.
type rateLimitedWarn struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int64
}

const warnInterval = 10 * time.Second

// allow reports whether to log an occurrence of k events now, and how many
// events went unlogged before it.
func (w *rateLimitedWarn) allow(k int64) (int64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	if !w.last.IsZero() && now.Sub(w.last) < warnInterval {
		w.suppressed += k
		return 0, false
	}
	n := w.suppressed
	w.last, w.suppressed = now, 0
	return n, true
}
