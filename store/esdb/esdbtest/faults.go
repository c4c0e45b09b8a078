package esdbtest

import (
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// SetRefuseEarly chooses how the node answers an append it refuses (ACL,
// size). On (the default, as a real node does) it answers at once without
// reading the rest of the request, so the client's Send may fail with a
// bare io.EOF; off, it reads the whole request first and the client always
// gets the status.
func (s *Server) SetRefuseEarly(on bool) { s.refuseEarly.Store(on) }

func (s *Server) maxAppendSize() int { return int(s.maxSize.Load()) }

// ACL is the access the connection's user has. The v4 client sends
// credentials only over TLS, which the test server does not speak, so the
// user is a server setting instead of a per-call header.
type ACL struct {
	// User is the connection's user; Admin puts it in $admins.
	User  string
	Admin bool
	// DenyWrite and DenyRead list stream-name prefixes the user may not
	// write or read (stream ACLs).
	DenyWrite, DenyRead []string
}

type aclOp int

const (
	opRead aclOp = iota
	opWrite
)

// SetACL restricts the connection's user (nil: the default admin user with
// every right). Like a real node, $all can then be read or subscribed to
// only by $admins, unless the $$$all stream's metadata grants read to the
// user ({"$acl":{"$r":["user"]}}, written with AppendRaw or the client).
func (s *Server) SetACL(acl *ACL) {
	s.aclMu.Lock()
	s.acl = acl
	s.aclMu.Unlock()
}

// checkAccess answers PermissionDenied when the user may not do op on
// stream ("$all" for $all reads).
func (s *Server) checkAccess(stream string, op aclOp) error {
	s.aclMu.Lock()
	acl := s.acl
	s.aclMu.Unlock()
	if acl == nil || acl.Admin {
		return nil
	}
	if stream == "$all" {
		if op == opRead && s.allReadGranted(acl.User) {
			return nil
		}
		return status.Error(codes.PermissionDenied, "Access denied.")
	}
	deny := acl.DenyRead
	if op == opWrite {
		deny = acl.DenyWrite
	}
	for _, p := range deny {
		if strings.HasPrefix(stream, p) {
			return status.Error(codes.PermissionDenied, "Access denied.")
		}
	}
	return nil
}

// allReadGranted reports whether the last $metadata event of $$$all lists
// user among the readers.
func (s *Server) allReadGranted(user string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams["$$$all"]
	if st == nil || len(st.events) == 0 {
		return false
	}
	meta := string(st.events[len(st.events)-1].data)
	// A tiny matcher for {"$acl":{"$r":[...]}}: enough for tests.
	i := strings.Index(meta, `"$r"`)
	if i < 0 {
		return false
	}
	rest := meta[i:]
	if j := strings.Index(rest, "]"); j >= 0 {
		rest = rest[:j]
	}
	return strings.Contains(rest, `"`+user+`"`) || strings.Contains(rest, `"$all"`)
}

// holdGate releases the held appends of one stream together.
type holdGate struct {
	n       int
	arrived int
	release chan struct{}
}

// HoldAppends makes the next n appends to stream wait until all n have
// arrived, then let them all run.
// Tests use it to make writers meet at the same stream head.
func (s *Server) HoldAppends(stream string, n int) {
	s.holdMu.Lock()
	s.holds[stream] = &holdGate{n: n, release: make(chan struct{})}
	s.holdMu.Unlock()
}

func (s *Server) hold(stream string) {
	s.holdMu.Lock()
	g := s.holds[stream]
	if g == nil {
		s.holdMu.Unlock()
		return
	}
	g.arrived++
	if g.arrived == g.n {
		delete(s.holds, stream)
		close(g.release)
	}
	s.holdMu.Unlock()
	<-g.release
}

// FailNextAppendAfterApply makes the next successful append to stream
// commit and then answer code (codes.DeadlineExceeded or codes.Aborted, as
// a real node's prepare, commit or forward timeout does): the client cannot
// know whether it was stored. Calls add up.
func (s *Server) FailNextAppendAfterApply(stream string, code codes.Code) {
	s.holdMu.Lock()
	s.failApplied[stream] = append(s.failApplied[stream], code)
	s.holdMu.Unlock()
}

func (s *Server) takeFailAfterApply(stream string) (codes.Code, bool) {
	s.holdMu.Lock()
	defer s.holdMu.Unlock()
	q := s.failApplied[stream]
	if len(q) == 0 {
		return 0, false
	}
	s.failApplied[stream] = q[1:]
	return q[0], true
}

// SoftDelete soft-deletes a stream as the Delete call does (for tests that
// need it done behind the adapter's back).
func (s *Server) SoftDelete(stream string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.softDeleteLocked(stream)
}

// GoSilent makes the node behave like one shutting down: open
// subscriptions stop sending and new calls get no answer, until Stop (the
// process exiting) closes the connections or Restart serves again.
func (s *Server) GoSilent() { s.silent.Store(true) }

// DropSlowSubscribers makes the node drop (codes.Aborted) a live
// subscription that has more than n events to catch up on at once, as
// servers up to 23.10 do with slow consumers (0 turns it off; 24.2 and
// later switch such a subscriber back to catch-up silently).
func (s *Server) DropSlowSubscribers(n int) { s.slowLimit.Store(int64(n)) }
