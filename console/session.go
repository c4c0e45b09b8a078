package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fcaudit/fcaudit/internal/atomicfile"
	"github.com/fcaudit/fcaudit/internal/tokenset"
)

// CookieName is the session cookie.
const CookieName = "fcaudit_session"

const keyBytes = 32

// loadOrCreateKey reads the session key, creating the file with a fresh
// random key (mode 0600, never replacing a file, so two processes starting
// together agree on one key) when it does not exist. A file readable by
// others is refused: whoever reads it can mint sessions.
func loadOrCreateKey(path string) ([]byte, error) {
	for range 2 {
		b, err := os.ReadFile(path)
		if err == nil {
			fi, err := os.Stat(path)
			if err != nil {
				return nil, fmt.Errorf("session key %s: %w", path, err)
			}
			if fi.Mode().Perm()&0o077 != 0 {
				return nil, fmt.Errorf("session key %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
			}
			key, err := hex.DecodeString(strings.TrimSpace(string(b)))
			if err != nil || len(key) != keyBytes {
				return nil, fmt.Errorf("session key %s: want %d hex-encoded bytes", path, keyBytes)
			}
			return key, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("session key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("session key: %w", err)
		}
		key := make([]byte, keyBytes)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("session key: %w", err)
		}
		// Linked into place whole (NoClobber): a process that loses the
		// race reads the winner's complete key, never an empty file.
		err = atomicfile.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), atomicfile.FileMode, atomicfile.NoClobber)
		if errors.Is(err, fs.ErrExist) {
			continue // another process won the race: read its key
		}
		if err != nil {
			return nil, fmt.Errorf("session key: %w", err)
		}
		return key, nil
	}
	return nil, fmt.Errorf("session key %s: created and removed by another process meanwhile", path)
}

// session is what the cookie carries: an id, the token's fingerprint (so a
// token removed from serve's configuration ends its sessions), when it was
// issued and when it was last used.
type session struct {
	ID       [16]byte
	TokenFP  [8]byte
	Issued   time.Time
	LastSeen time.Time
}

const payloadLen = 16 + 8 + 8 + 8

// sessions signs and checks session cookies. Sign-out revokes a session id
// in memory until the session could have expired anyway.
type sessions struct {
	key       []byte
	tokens    *tokenset.TokenSet
	idle, max time.Duration

	mu      sync.Mutex
	revoked map[[16]byte]time.Time // id → absolute expiry
}

func newSessions(key []byte, tokens *tokenset.TokenSet, idle, max time.Duration) *sessions {
	return &sessions{key: key, tokens: tokens, idle: idle, max: max, revoked: map[[16]byte]time.Time{}}
}

// tokenOK compares tok with every configured token in constant time (over
// SHA-256 digests, so the length does not leak either) and returns its
// fingerprint.
func (s *sessions) tokenOK(tok string) ([8]byte, bool) {
	return tokenset.FingerprintOf(tok), tok != "" && s.tokens.Match(tok)
}

func (s *sessions) tokenKnown(fp [8]byte) bool { return s.tokens.Known(fp) }

func (s *sessions) sign(payload []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("fcaudit console session v1\x00"))
	m.Write(payload)
	return m.Sum(nil)
}

func (s *sessions) encode(se *session) string {
	p := make([]byte, 0, payloadLen)
	p = append(p, se.ID[:]...)
	p = append(p, se.TokenFP[:]...)
	p = binary.BigEndian.AppendUint64(p, uint64(se.Issued.Unix()))
	p = binary.BigEndian.AppendUint64(p, uint64(se.LastSeen.Unix()))
	enc := base64.RawURLEncoding
	return enc.EncodeToString(p) + "." + enc.EncodeToString(s.sign(p))
}

// fromRequest returns the request's valid session, or nil: a missing,
// malformed, forged, expired or revoked cookie, or one whose token is no
// longer configured.
func (s *sessions) fromRequest(r *http.Request, now time.Time) *session {
	ck, err := r.Cookie(CookieName)
	if err != nil {
		return nil
	}
	p64, m64, ok := strings.Cut(ck.Value, ".")
	if !ok {
		return nil
	}
	enc := base64.RawURLEncoding
	p, err1 := enc.DecodeString(p64)
	mac, err2 := enc.DecodeString(m64)
	if err1 != nil || err2 != nil || len(p) != payloadLen || !hmac.Equal(mac, s.sign(p)) {
		return nil
	}
	se := &session{}
	copy(se.ID[:], p[:16])
	copy(se.TokenFP[:], p[16:24])
	se.Issued = time.Unix(int64(binary.BigEndian.Uint64(p[24:32])), 0)
	se.LastSeen = time.Unix(int64(binary.BigEndian.Uint64(p[32:40])), 0)
	if now.Sub(se.Issued) > s.max || now.Sub(se.LastSeen) > s.idle || se.Issued.After(now.Add(time.Minute)) {
		return nil
	}
	if !s.tokenKnown(se.TokenFP) {
		return nil
	}
	s.mu.Lock()
	_, revoked := s.revoked[se.ID]
	s.mu.Unlock()
	if revoked {
		return nil
	}
	return se
}

// start issues a new session cookie.
func (s *sessions) start(w http.ResponseWriter, fp [8]byte, now time.Time, secure bool) {
	se := &session{TokenFP: fp, Issued: now, LastSeen: now}
	_, _ = rand.Read(se.ID[:])
	s.setCookie(w, se, secure)
}

// refresh moves the idle expiry forward (re-signing the cookie).
func (s *sessions) refresh(w http.ResponseWriter, se *session, now time.Time, secure bool) {
	if now.Sub(se.LastSeen) < time.Minute {
		return // keeps most answers free of Set-Cookie
	}
	se.LastSeen = now
	s.setCookie(w, se, secure)
}

func (s *sessions) setCookie(w http.ResponseWriter, se *session, secure bool) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: s.encode(se), Path: Prefix,
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode,
		// The browser forgets it at the absolute expiry; the server checks
		// both expiries itself.
		Expires: se.Issued.Add(s.max)})
}

// end revokes the session and clears the cookie.
func (s *sessions) end(w http.ResponseWriter, se *session, now time.Time, secure bool) {
	if se != nil {
		s.mu.Lock()
		for id, exp := range s.revoked {
			if now.After(exp) {
				delete(s.revoked, id)
			}
		}
		s.revoked[se.ID] = se.Issued.Add(s.max)
		s.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: Prefix, MaxAge: -1,
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode})
}

// limiter bounds failed sign-ins: perClient failures per client in a
// window, and a global bound so that many addresses cannot guess freely.
type limiter struct {
	now func() time.Time

	mu      sync.Mutex
	window  time.Time
	clients map[string]int
	total   int
}

const (
	failWindow     = time.Minute
	failsPerClient = 5
	failsTotal     = 100
)

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, clients: map[string]int{}}
}

func (l *limiter) roll() {
	if now := l.now(); now.Sub(l.window) >= failWindow {
		l.window, l.total = now, 0
		clear(l.clients)
	}
}

// blocked reports whether client may not try now, and for how long.
func (l *limiter) blocked(client string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.roll()
	if l.clients[client] >= failsPerClient || l.total >= failsTotal {
		return true, max(time.Second, failWindow-l.now().Sub(l.window)).Round(time.Second)
	}
	return false, 0
}

func (l *limiter) fail(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.roll()
	l.clients[client]++
	l.total++
}

// clientAddr is the client's IP: the connection's, or with TrustProxy the
// last address the proxy appended to X-Forwarded-For.
func (c *Console) clientAddr(r *http.Request) string {
	if c.cfg.TrustProxy {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			parts := strings.Split(xff[len(xff)-1], ",")
			if ip := net.ParseIP(strings.TrimSpace(parts[len(parts)-1])); ip != nil {
				return ip.String()
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
