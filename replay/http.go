package replay

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/fcaudit/fcaudit/internal/redact"
	"github.com/fcaudit/fcaudit/store"
)

// Headers every re-delivery carries besides Stripe-Signature.
const (
	// HeaderReplay is "true" on every replayed request, so a receiver can
	// tell a replay from Stripe's own delivery.
	HeaderReplay = "Fcaudit-Replay"
	// HeaderReplayID names the run (RunRecord.ID).
	HeaderReplayID = "Fcaudit-Replay-Id"
)

// Sender delivers one event to a target. Implementations are safe for
// concurrent use. A *SendError says whether a failure may be retried; any
// other error is permanent.
type Sender interface {
	Send(ctx context.Context, ev *store.RecordedEvent) error
}

// SendError is a failed delivery attempt.
type SendError struct {
	// Status is the HTTP status (0 for a network error or timeout).
	Status int
	// Retryable: 5xx, 429, network errors and timeouts.
	Retryable bool
	// RetryAfter is the receiver's Retry-After as a delay (0 = none).
	RetryAfter time.Duration
	// Unreachable: no connection could be made at all (connection
	// refused, DNS failure, no route to the host), as opposed to a
	// receiver that answered badly or timed out.
	Unreachable bool
	Err         error
}

func (e *SendError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("HTTP %d: %v", e.Status, e.Err)
	}
	return e.Err.Error()
}

func (e *SendError) Unwrap() error { return e.Err }

// HTTPSender POSTs each event's stored body, byte for byte, with a fresh
// Stripe-Signature (t = now, v1 = HMAC-SHA256 of "t.body" with Secret, as
// Stripe signs: stripe-go's webhook.ConstructEvent accepts it).
type HTTPSender struct {
	URL    string
	Secret string
	// RunID goes into the Fcaudit-Replay-Id header.
	RunID string
	// Client sends the requests; it must not follow redirects (a POST
	// turned into a GET would be reported as delivered). NewHTTPClient
	// builds a suitable one.
	Client *http.Client
	// Timeout bounds one attempt, response body included (0 = none).
	Timeout time.Duration
	// Now is the signing clock (default time.Now): signatures carry real
	// time even when the run's scheduling clock is fake.
	Now func() time.Time
}

// NewHTTPClient returns a client for HTTPSender: connection reuse sized for
// concurrency parallel requests, redirects not followed.
func NewHTTPClient(concurrency int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = max(100, concurrency*2)
	tr.MaxIdleConnsPerHost = max(concurrency, 2)
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Signature returns the Stripe-Signature header value for body signed at t.
func Signature(t time.Time, body []byte, secret string) string {
	return "t=" + strconv.FormatInt(t.Unix(), 10) + ",v1=" + hex.EncodeToString(webhook.ComputeSignature(t, body, secret))
}

// Send implements Sender.
func (s *HTTPSender) Send(ctx context.Context, ev *store.RecordedEvent) error {
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.Timeout)
		defer cancel()
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(ev.Data))
	if err != nil {
		return fmt.Errorf("build request: %w", redact.URLError(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", Signature(now(), ev.Data, s.Secret))
	req.Header.Set(HeaderReplay, "true")
	req.Header.Set(HeaderReplayID, s.RunID)
	client := s.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		// The *url.Error quotes the whole URL; failure lines and the
		// audit record show this error.
		return &SendError{Retryable: retryableNetErr(err), Unreachable: unreachableNetErr(err), Err: redact.URLError(err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// Drain (a bounded part of) the body so the connection is reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	e := &SendError{Status: resp.StatusCode, Err: fmt.Errorf("%s", responseSummary(resp, snippet))}
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		e.Retryable = true
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now())
	}
	return e
}

func responseSummary(resp *http.Response, body []byte) string {
	msg := strings.Join(strings.Fields(string(body)), " ")
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return "redirect to " + redact.URL(resp.Header.Get("Location")) + " not followed"
	}
	if msg == "" {
		return http.StatusText(resp.StatusCode)
	}
	return msg
}

// retryableNetErr: every transport failure (refused, reset, timeout, EOF)
// is worth retrying; only a cancelled run is not.
func retryableNetErr(err error) bool {
	return !errors.Is(err, context.Canceled)
}

// unreachableNetErr: the target cannot be connected to: refused, a name
// that does not resolve, or no route. A timeout is not in this class: a
// slow receiver may still be processing.
func unreachableNetErr(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}

// parseRetryAfter reads Retry-After: delay-seconds or an HTTP date. 0 when
// absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// RedactURL returns u without credentials: userinfo removed, every query
// value replaced by REDACTED (tokens often travel there), fragment dropped.
// It is what the audit log and messages show; it is redact.URL, fcaudit's
// one URL redaction.
func RedactURL(u string) string { return redact.URL(u) }
