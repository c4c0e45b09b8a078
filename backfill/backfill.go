package backfill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/event"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/internal/logkey"
	"github.com/fcaudit/fcaudit/store"
)

// EventTypes are the Financial Connections account event types Run asks the
// Events API for (its types[] filter): fc.Types, sorted by name. Newer types
// that stripe-go v76 does not know (…upcoming_deactivation, …) are not
// requested; webhooks of those types are stored by ingest as usual.
var EventTypes = slices.Sorted(slices.Values(fc.Types()))

// Defaults of Options.
const (
	// DefaultMaxNetworkRetries is stripe-go's own default: retries of a
	// request that failed on the network, with 5xx, 409, or a 429 Stripe
	// marks as retryable, with stripe-go's exponential backoff.
	DefaultMaxNetworkRetries = 2
	// DefaultPageSize is the Events API maximum.
	DefaultPageSize = 100
	// DefaultRateLimitWait is the first wait after a 429 stripe-go does not
	// retry (a plain rate limit); it doubles on each further 429.
	DefaultRateLimitWait = time.Second
	// maxRateLimitRetries bounds the 429 waits of one page.
	maxRateLimitRetries = 6
	// RetentionPeriod is how far back Stripe's Events API lists events.
	RetentionPeriod = 30 * 24 * time.Hour
)

// Sentinel errors of Run, for errors.Is.
var (
	// ErrKeyRejected: the API answered 401 or 403 (wrong, revoked or
	// under-privileged key).
	ErrKeyRejected = errors.New("Stripe rejected the API key")
	// ErrUnreachable: no HTTP answer from the API (connection refused, DNS,
	// timeout) even after retries.
	ErrUnreachable = errors.New("cannot reach the Stripe API")
	// ErrAPI: the API answered with another error (after retries).
	ErrAPI = errors.New("Stripe API error")
	// ErrBadEvent: the API returned an event fcaudit cannot file (no id,
	// no data.object, …); nothing is appended then.
	ErrBadEvent = errors.New("unusable event from the Events API")
)

// Log is the part of the event log backfill needs; store.Store satisfies it.
// EventByID returns an error wrapping store.ErrEventNotFound for an unknown
// id; Append follows store.Store.Append's duplicate contract.
type Log interface {
	EventByID(ctx context.Context, id string) (store.RecordedEvent, error)
	Append(ctx context.Context, stream string, expected store.ExpectedRevision, events ...store.Event) ([]store.Appended, error)
}

// Options configure Run. APIKey is required; everything else has defaults.
type Options struct {
	// APIKey is the Stripe secret or restricted key (needs read access to
	// events). It is sent to APIBase only and never stored or logged; the
	// stored provenance carries ingest.Fingerprint(APIKey).
	APIKey string
	// StripeAccount, when set (acct_…), lists a Connect connected account's
	// events: it is sent as the Stripe-Account header, as a platform's key
	// needs, and named in the stored provenance.
	StripeAccount string
	// APIBase is the API's base URL (default stripe.APIURL,
	// https://api.stripe.com); tests point it at an httptest server or
	// stripe-mock.
	APIBase string
	// Since: events created at or after it are listed (created[gte]). Zero
	// means Now − RetentionPeriod.
	Since time.Time
	// DryRun lists and compares but appends nothing.
	DryRun bool
	// MaxNetworkRetries is stripe-go's retry budget per request: 0 means
	// DefaultMaxNetworkRetries, a negative value means no retries.
	MaxNetworkRetries int
	// RateLimitWait is the first wait after a plain 429 (default
	// DefaultRateLimitWait); Run then resumes the listing after the last
	// event it got.
	RateLimitWait time.Duration
	// PageSize is the Events API limit per page, 1–100 (default 100).
	PageSize int
	// HTTPClient makes the requests (default: a client with an 80 s
	// timeout, as stripe-go's).
	HTTPClient *http.Client
	// Logger receives stripe-go's retry warnings and debug records; nil
	// discards.
	Logger *slog.Logger
	// Now is the clock for received_at, verified_at and the default Since;
	// nil means time.Now.
	Now func() time.Time
	// Progress, when set, is called from Run's goroutine after every page
	// and every append.
	Progress func(Progress)
}

// Progress is a snapshot of a running backfill.
type Progress struct {
	// Phase is "listing" or "appending".
	Phase string
	// Pages and Fetched count the list pages and events received so far;
	// Missing the events the log lacks; Appended those appended so far.
	Pages, Fetched, Missing, Appended int
}

// Gap is one event Stripe has that the log lacked.
type Gap struct {
	ID      string
	Type    string
	Created int64
	// Account is the FC account id (data.object.id); Stream where it goes.
	Account string
	Stream  string
	// ConnectAccount is the event's Connect account ("" when none).
	ConnectAccount string
	// Appended is true once it is in the log (false in a dry run, or when
	// the run failed before reaching it).
	Appended bool
}

// Report is the outcome of Run. After an error it describes what happened
// before the error: events in Gaps with Appended set are stored.
type Report struct {
	// Since is the lower bound of the listing; APIBase the URL used.
	Since   time.Time
	APIBase string
	DryRun  bool
	// Fetched counts the distinct events listed; AlreadyStored those the
	// log had (including any a webhook stored while Run was appending);
	// Appended those Run appended.
	Fetched, AlreadyStored, Appended int
	// Ignored counts listed events that are not financial_connections.
	// account.* (the real API never returns them under the types filter;
	// stripe-mock may).
	Ignored int
	// Gaps are the events the log lacked, oldest first (by created).
	Gaps []Gap
}

// pending is a missing event with the bytes to append.
type pending struct {
	gap Gap
	ev  store.Event
}

// Run lists the FC account events created since opts.Since from the Events
// API, compares them with the log, and (unless opts.DryRun) appends the
// missing ones. It returns the report together with any error; see the
// package documentation for the order of appends and idempotence.
//
// Errors wrap ErrKeyRejected, ErrUnreachable, ErrAPI or ErrBadEvent for
// listing failures (nothing is appended then), the Log's error for a failed
// lookup or append (events appended before it stay and are counted in the
// report), or ctx.Err().
func Run(ctx context.Context, lg Log, opts Options) (Report, error) {
	r, err := newRunner(lg, opts)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Since: r.since, APIBase: r.base, DryRun: opts.DryRun}
	missing, err := r.list(ctx, &rep)
	if err != nil {
		return rep, err
	}
	// Oldest first; the listing was newest first, so ties keep Stripe's
	// order reversed (the earlier-listed of two same-second events is the
	// newer one).
	slices.Reverse(missing)
	slices.SortStableFunc(missing, func(a, b pending) int { return cmpInt64(a.gap.Created, b.gap.Created) })
	for _, p := range missing {
		rep.Gaps = append(rep.Gaps, p.gap)
	}
	if opts.DryRun {
		return rep, nil
	}
	return rep, r.appendAll(ctx, &rep, missing)
}

type runner struct {
	log      Log
	opts     Options
	base     string
	since    time.Time
	now      func() time.Time
	logger   *slog.Logger
	client   event.Client
	note     string
	progress Progress
}

func newRunner(lg Log, opts Options) (*runner, error) {
	if strings.TrimSpace(opts.APIKey) == "" {
		return nil, errors.New("backfill: no Stripe API key")
	}
	r := &runner{log: lg, opts: opts, now: opts.Now, logger: opts.Logger, base: opts.APIBase}
	if r.now == nil {
		r.now = time.Now
	}
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
	}
	if r.base == "" {
		r.base = stripe.APIURL
	}
	r.base = strings.TrimRight(r.base, "/")
	if u, err := url.Parse(r.base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("backfill: API base %q is not an http(s) URL", opts.APIBase)
	}
	r.since = opts.Since
	if r.since.IsZero() {
		r.since = r.now().Add(-RetentionPeriod)
	}
	if r.opts.PageSize <= 0 || r.opts.PageSize > DefaultPageSize {
		r.opts.PageSize = DefaultPageSize
	}
	if r.opts.RateLimitWait <= 0 {
		r.opts.RateLimitWait = DefaultRateLimitWait
	}
	retries := int64(opts.MaxNetworkRetries)
	switch {
	case retries == 0:
		retries = DefaultMaxNetworkRetries
	case retries < 0:
		retries = 0
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 80 * time.Second}
	}
	// A backend of our own rather than the package-global one (and no
	// stripe.Key): concurrent runs with different keys or URLs never mix.
	backend := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL:               stripe.String(r.base),
		HTTPClient:        hc,
		MaxNetworkRetries: stripe.Int64(retries),
		LeveledLogger:     leveledLogger{r.logger},
	})
	r.client = event.Client{B: backend, Key: opts.APIKey}
	r.note = "fetched from the Events API with key fingerprint " + ingest.Fingerprint(opts.APIKey)
	if opts.StripeAccount != "" {
		r.note += " as connected account " + opts.StripeAccount
	}
	return r, nil
}

// list pages through the Events API and returns the events the log lacks,
// in listing order (newest first).
func (r *runner) list(ctx context.Context, rep *Report) ([]pending, error) {
	var (
		missing       []pending
		seen          = map[string]bool{}
		startingAfter string
		waits         int
	)
	for {
		params := &stripe.EventListParams{
			CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: r.since.Unix()},
		}
		for _, t := range EventTypes {
			params.Types = append(params.Types, stripe.String(t))
		}
		params.Limit = stripe.Int64(int64(r.opts.PageSize))
		params.Context = ctx
		if r.opts.StripeAccount != "" {
			params.SetStripeAccount(r.opts.StripeAccount)
		}
		if startingAfter != "" {
			params.StartingAfter = stripe.String(startingAfter)
		}
		it := r.client.List(params)
		var (
			page     *stripe.EventList
			raws     []json.RawMessage
			idx      int
			received time.Time
		)
		for it.Next() {
			if l := it.EventList(); l != page {
				page, idx, received = l, 0, r.now()
				var err error
				if raws, err = pageEvents(l); err != nil {
					return nil, err
				}
				r.progress.Pages++
				waits = 0
			}
			ev := it.Event()
			if idx >= len(raws) {
				return nil, fmt.Errorf("%w: event %s is not in the page body", ErrBadEvent, ev.ID)
			}
			raw := raws[idx]
			idx++
			startingAfter = ev.ID
			p, err := r.consider(ctx, rep, seen, raw, ev.ID, received)
			if err != nil {
				return nil, err
			}
			if p != nil {
				missing = append(missing, *p)
				r.progress.Missing++
			}
			r.progress.Fetched = rep.Fetched
			if idx == len(raws) {
				r.report()
			}
		}
		err := it.Err()
		if err == nil {
			r.report()
			return missing, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("list events: %w", ctx.Err())
		}
		if rateLimited(err) && waits < maxRateLimitRetries {
			// stripe-go retries only the 429s Stripe marks as retryable;
			// a plain rate limit ends the iterator. Wait, then resume
			// after the last event received.
			wait := r.opts.RateLimitWait << waits
			waits++
			r.logger.Warn("Stripe rate limit: waiting before resuming the listing", "wait", wait, "after", startingAfter)
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, fmt.Errorf("list events: %w", ctx.Err())
			case <-t.C:
			}
			continue
		}
		return nil, r.listError(err)
	}
}

// consider files one listed event: counts it and returns it when the log
// lacks it.
func (r *runner) consider(ctx context.Context, rep *Report, seen map[string]bool, raw []byte, id string, received time.Time) (*pending, error) {
	env, err := fc.ParseEnvelope(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: event %s: %v", ErrBadEvent, id, err)
	}
	if env.ID != id {
		return nil, fmt.Errorf("%w: page body has event %s where stripe-go decoded %s", ErrBadEvent, env.ID, id)
	}
	if seen[env.ID] {
		return nil, nil
	}
	seen[env.ID] = true
	rep.Fetched++
	if !strings.HasPrefix(env.Type, fc.AccountEventPrefix) {
		rep.Ignored++
		r.logger.Warn("ignoring listed event outside the requested types", logkey.EventID, env.ID, logkey.EventType, env.Type)
		return nil, nil
	}
	if _, err := r.log.EventByID(ctx, env.ID); err == nil {
		rep.AlreadyStored++
		return nil, nil
	} else if !errors.Is(err, store.ErrEventNotFound) {
		return nil, fmt.Errorf("look up %s in the event log: %w", env.ID, err)
	}
	stream := fc.StreamFor(env)
	at := received.UTC().Truncate(time.Microsecond)
	return &pending{
		gap: Gap{
			ID: env.ID, Type: env.Type, Created: env.Created,
			Account: fc.AccountOf(stream), Stream: stream, ConnectAccount: env.ConnectAccount,
		},
		ev: store.Event{
			ID:             env.ID,
			Type:           env.Type,
			Data:           raw,
			ReceivedAt:     at,
			Created:        env.Created,
			Livemode:       env.Livemode,
			APIVersion:     env.APIVersion,
			ConnectAccount: env.ConnectAccount,
			Source:         store.SourceBackfill,
			Provenance:     &store.Provenance{Note: r.note, VerifiedAt: at},
		},
	}, nil
}

// appendAll appends missing (oldest first), one event per Append.
func (r *runner) appendAll(ctx context.Context, rep *Report, missing []pending) error {
	r.progress.Phase = "appending"
	kept := make([]Gap, 0, len(rep.Gaps))
	defer func() { rep.Gaps = kept }()
	for i, p := range missing {
		res, err := r.log.Append(ctx, p.gap.Stream, store.AnyRevision, p.ev)
		if err == nil && len(res) != 1 {
			err = fmt.Errorf("store answered %d results for 1 event", len(res))
		}
		if err != nil {
			// Keep the not-yet-appended gaps in the report: they are
			// still missing.
			kept = append(kept, rep.Gaps[i:]...)
			return fmt.Errorf("append %s to %s: %w", p.gap.ID, p.gap.Stream, err)
		}
		if res[0].Duplicate {
			// A webhook (or another backfill) stored it since the check.
			rep.AlreadyStored++
			continue
		}
		rep.Appended++
		g := rep.Gaps[i]
		g.Appended = true
		kept = append(kept, g)
		r.progress.Appended = rep.Appended
		r.report()
	}
	return nil
}

func (r *runner) report() {
	if r.opts.Progress == nil {
		return
	}
	if r.progress.Phase == "" {
		r.progress.Phase = "listing"
	}
	r.opts.Progress(r.progress)
}

// pageEvents returns the raw bytes of each event in a list page, in order,
// exactly as they appear in the response body.
func pageEvents(l *stripe.EventList) ([]json.RawMessage, error) {
	if l.LastResponse == nil {
		return nil, fmt.Errorf("%w: list page without a response body", ErrBadEvent)
	}
	var page struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(l.LastResponse.RawJSON, &page); err != nil {
		return nil, fmt.Errorf("%w: list page: %v", ErrBadEvent, err)
	}
	if len(page.Data) != len(l.Data) {
		return nil, fmt.Errorf("%w: list page has %d events, stripe-go decoded %d", ErrBadEvent, len(page.Data), len(l.Data))
	}
	return page.Data, nil
}

func rateLimited(err error) bool {
	var se *stripe.Error
	return errors.As(err, &se) && se.HTTPStatusCode == http.StatusTooManyRequests
}

// listError turns a stripe-go error into one that says what went wrong in
// the user's terms.
func (r *runner) listError(err error) error {
	var se *stripe.Error
	if errors.As(err, &se) {
		detail := se.Msg
		if detail == "" {
			detail = http.StatusText(se.HTTPStatusCode)
		}
		// Stripe redacts keys in its messages; a mock or proxy may not.
		detail = strings.ReplaceAll(detail, r.opts.APIKey, "<key "+ingest.Fingerprint(r.opts.APIKey)+">")
		if se.RequestID != "" {
			detail += "; request " + se.RequestID
		}
		switch se.HTTPStatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%w (HTTP %d: %s)", ErrKeyRejected, se.HTTPStatusCode, detail)
		default:
			return fmt.Errorf("list events at %s: %w (HTTP %d: %s)", r.base, ErrAPI, se.HTTPStatusCode, detail)
		}
	}
	var ue *url.Error
	var ne net.Error
	if errors.As(err, &ue) || errors.As(err, &ne) {
		return fmt.Errorf("%w at %s: %v", ErrUnreachable, r.base, unwrapURLError(err))
	}
	// stripe-go reports a 4xx/5xx whose body is not a Stripe error as a
	// plain error carrying the body.
	return fmt.Errorf("list events at %s: %w: %s", r.base, ErrAPI,
		strings.ReplaceAll(err.Error(), r.opts.APIKey, "<key "+ingest.Fingerprint(r.opts.APIKey)+">"))
}

// unwrapURLError drops url.Error's "Get "<url with query>": " prefix, which
// repeats the URL with every filter.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// leveledLogger bridges stripe-go's logger to slog. Requests and errors go
// to debug (Run returns the errors, so logging them again would report them
// twice); retries are warnings, because they explain a slow run.
type leveledLogger struct{ l *slog.Logger }

func (s leveledLogger) Debugf(format string, v ...any) { s.log(slog.LevelDebug, format, v) }
func (s leveledLogger) Infof(format string, v ...any)  { s.log(slog.LevelDebug, format, v) }
func (s leveledLogger) Errorf(format string, v ...any) { s.log(slog.LevelDebug, format, v) }
func (s leveledLogger) Warnf(format string, v ...any)  { s.log(slog.LevelWarn, format, v) }

func (s leveledLogger) log(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if !s.l.Enabled(ctx, level) {
		return
	}
	s.l.Log(ctx, level, fmt.Sprintf(format, v...), "component", "stripe-go")
}
