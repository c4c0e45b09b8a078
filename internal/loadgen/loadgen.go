package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/fcevents"
)

// Defaults for the zero fields of Config.
const (
	DefaultRequests    = 10000
	DefaultConcurrency = 64
	DefaultAccounts    = 1000
	DefaultSize        = 3072
	DefaultTimeout     = 30 * time.Second
)

// resignAfter is how old a prepared signature may get before a sender signs
// the body again: well inside Stripe's default 5-minute tolerance, so a long
// run, or a Plan reused for several runs, never fails verification.
const resignAfter = 2 * time.Minute

// Config describes a load run.
type Config struct {
	// Secret signs every body (the target's webhook signing secret).
	Secret string
	// Requests is the number of requests (N) a run sends; 0 means
	// DefaultRequests.
	Requests int
	// Concurrency is the number of concurrent senders (C); 0 means
	// DefaultConcurrency.
	Concurrency int
	// Accounts is the number of distinct FC accounts (K) the events are
	// spread over; 0 means DefaultAccounts.
	Accounts int
	// Duplicates is the fraction (P, 0 ≤ P < 1) of requests that re-send an
	// event the target has already acknowledged; such a request must be
	// answered "duplicate": true.
	Duplicates float64
	// Size is the approximate body size in bytes; 0 means DefaultSize.
	Size int
	// Timeout bounds each request; 0 means DefaultTimeout.
	Timeout time.Duration
	// Seed, when non-zero, makes the generated events reproducible byte
	// for byte: the same Seed and Config give the same bodies in the same
	// order on every run and machine (their created times then lead up to
	// seedEpoch instead of now; only the signatures carry the real time).
	Seed uint64
}

// seedEpoch is the instant a seeded plan's created times lead up to
// (2026-01-01T00:00:00Z): a fixed one, so that the bodies do not depend on
// when they were made. Stripe's signature tolerance concerns the signing
// time, never created.
const seedEpoch = 1767225600

func (c *Config) defaults() error {
	if c.Requests == 0 {
		c.Requests = DefaultRequests
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Accounts == 0 {
		c.Accounts = DefaultAccounts
	}
	if c.Size == 0 {
		c.Size = DefaultSize
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	switch {
	case c.Secret == "":
		return errors.New("loadgen: no signing secret")
	case c.Requests < 0:
		return fmt.Errorf("loadgen: requests must be positive, got %d", c.Requests)
	case c.Concurrency < 0:
		return fmt.Errorf("loadgen: concurrency must be positive, got %d", c.Concurrency)
	case c.Accounts < 0:
		return fmt.Errorf("loadgen: accounts must be positive, got %d", c.Accounts)
	case c.Duplicates < 0 || c.Duplicates >= 1 || c.Duplicates != c.Duplicates:
		return fmt.Errorf("loadgen: duplicates must be a fraction in [0, 1), got %v", c.Duplicates)
	case c.Size < 0:
		return fmt.Errorf("loadgen: size must be positive, got %d", c.Size)
	case c.Timeout < 0:
		return fmt.Errorf("loadgen: timeout must be positive, got %s", c.Timeout)
	}
	return nil
}

// typeWeights is the mix of event types: refreshes dominate real FC traffic;
// lifecycle events are rarer.
var typeWeights = []struct {
	typ    string
	weight int
}{
	{fc.TypeRefreshedBalance, 35},
	{fc.TypeRefreshedTransactions, 35},
	{fc.TypeRefreshedOwnership, 10},
	{fc.TypeCreated, 8},
	{fc.TypeDeactivated, 4},
	{fc.TypeReactivated, 4},
	{fc.TypeDisconnected, 4},
}

// delivery is one prepared, signed, unique event.
type delivery struct {
	id       string
	body     []byte
	sig      string
	signedAt time.Time
}

// Plan is a prepared workload: unique signed events and the positions of
// duplicate re-sends. Build it with Prepare; a Plan may be Run any number
// of times, sequentially, against targets that have not seen its events
// (each Run sends the same events, so a second Run against the same store
// would be answered with duplicates).
type Plan struct {
	cfg Config
	// fresh holds the unique events in sending order; the first
	// Requests − len(dupSlots) are the planned ones, the rest a reserve for
	// duplicate slots that come before anything was acknowledged.
	fresh []delivery
	// dup[i] says whether request i re-sends an acknowledged event.
	dup []bool
	// bodyBytes is the mean body size.
	bodyBytes int
}

// Prepare generates and signs the events of a run. It uses every CPU and
// takes about as long as the run itself; its memory is Requests × Size.
func Prepare(ctx context.Context, cfg Config) (*Plan, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	seed := cfg.Seed
	epoch := time.Now().Unix()
	if seed == 0 {
		seed = mrand.Uint64()
	} else {
		epoch = seedEpoch
	}
	r := mrand.New(mrand.NewPCG(seed, 0x6663617564697421))
	gen := &fcevents.Generator{Size: cfg.Size, Rand: mrand.New(mrand.NewPCG(seed, 1))}

	p := &Plan{cfg: cfg, dup: make([]bool, cfg.Requests)}
	dups := 0
	for i := range p.dup {
		if cfg.Duplicates > 0 && r.Float64() < cfg.Duplicates {
			p.dup[i] = true
			dups++
		}
	}
	// A duplicate slot reached before any acknowledgement sends a fresh
	// event instead; at most one per sender can happen before the first
	// answer, so Concurrency spare events suffice unless the target fails.
	nfresh := cfg.Requests - dups + min(dups, cfg.Concurrency)

	accounts := make([]string, cfg.Accounts)
	for i := range accounts {
		accounts[i] = gen.NewAccountID()
	}
	total := 0
	for _, tw := range typeWeights {
		total += tw.weight
	}
	type spec struct {
		typ, account string
		created      int64
	}
	specs := make([]spec, nfresh)
	for i := range specs {
		w := r.IntN(total)
		typ := typeWeights[0].typ
		for _, tw := range typeWeights {
			if w < tw.weight {
				typ = tw.typ
				break
			}
			w -= tw.weight
		}
		// Stripe's created lags delivery by up to minutes and deliveries
		// arrive out of order; spread created over the last 10 minutes.
		specs[i] = spec{typ: typ, account: accounts[r.IntN(len(accounts))], created: epoch - r.Int64N(600)}
	}

	p.fresh = make([]delivery, nfresh)
	var next atomic.Int64
	var wg sync.WaitGroup
	var sizeSum atomic.Int64
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= nfresh || ctx.Err() != nil {
					return
				}
				s := specs[i]
				// One generator per event, seeded by its index: the
				// workers take events in any order, and a shared source
				// would hand each event whatever draws came next.
				eg := &fcevents.Generator{Size: cfg.Size, Rand: mrand.New(mrand.NewPCG(seed, uint64(i)+2))}
				body := eg.Event(s.typ, s.account, s.created)
				var env struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal(body, &env); err != nil || env.ID == "" {
					panic(fmt.Sprintf("loadgen: generated body has no id: %v", err)) // fcevents' contract
				}
				signedAt := time.Now()
				p.fresh[i] = delivery{id: env.ID, body: body, sig: fcevents.Sign(body, cfg.Secret, signedAt), signedAt: signedAt}
				sizeSum.Add(int64(len(body)))
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("loadgen: prepare: %w", err)
	}
	if nfresh > 0 {
		p.bodyBytes = int(sizeSum.Load()) / nfresh
	}
	return p, nil
}

// Resign signs every event again with the current time, in parallel.
// Call it between runs of a long benchmark so that no sender has to
// re-sign (and spend CPU beside the server) during a measurement.
func (p *Plan) Resign() {
	var next atomic.Int64
	var wg sync.WaitGroup
	now := time.Now()
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(p.fresh) {
					return
				}
				d := &p.fresh[i]
				d.sig, d.signedAt = fcevents.Sign(d.body, p.cfg.Secret, now), now
			}
		})
	}
	wg.Wait()
}

// Bodies returns the unique event bodies in sending order (shared, not
// copies: do not modify them).
func (p *Plan) Bodies() [][]byte {
	out := make([][]byte, len(p.fresh))
	for i := range p.fresh {
		out[i] = p.fresh[i].body
	}
	return out
}

// Error kinds counted in Result.Errors.
const (
	ErrKindTransport           = "transport"            // connection refused/reset, …
	ErrKindTimeout             = "timeout"              // no answer within Config.Timeout
	ErrKindBadJSON             = "bad_json"             // 200 without the expected JSON answer
	ErrKindWrongID             = "wrong_id"             // 200 for another event id
	ErrKindMissedDuplicate     = "missed_duplicate"     // a re-send answered duplicate:false
	ErrKindUnexpectedDuplicate = "unexpected_duplicate" // a new event answered duplicate:true
	ErrKindNoAcknowledged      = "no_acknowledged"      // a re-send had nothing acknowledged to re-send
	// Other statuses count as "status_<code>" (e.g. status_503).
)

// Latency summarises request latencies (time from sending the request to
// reading the whole answer) over Count requests.
type Latency struct {
	Count int           `json:"count"`
	P50   time.Duration `json:"p50"`
	P90   time.Duration `json:"p90"`
	P99   time.Duration `json:"p99"`
	Max   time.Duration `json:"max"`
	Mean  time.Duration `json:"mean"`
}

// Result is the outcome of a run.
type Result struct {
	URL         string `json:"url"`
	Requests    int    `json:"requests"`
	Concurrency int    `json:"concurrency"`
	BodyBytes   int    `json:"body_bytes"`
	// Stored counts 200 answers to new events, Duplicates 200 answers with
	// duplicate:true to re-sends; both only when the answer was as expected.
	Stored     int `json:"stored"`
	Duplicates int `json:"duplicates"`
	// Errors counts failed requests by kind (see the ErrKind constants).
	Errors map[string]int `json:"errors"`
	// ErrorCount is the sum of Errors.
	ErrorCount int `json:"error_count"`
	// Elapsed is the wall time from the first request to the last answer
	// (JSON: elapsed_seconds).
	Elapsed time.Duration `json:"-"`
	// Throughput is successful requests (Stored + Duplicates) per second
	// of Elapsed, and Latency covers those only: a failure that is answered
	// fast (a 401, a refused connection) must not look like speed.
	Throughput float64 `json:"throughput"`
	Latency    Latency `json:"latency"`
	// FailedLatency covers the failed requests that were sent, apart.
	FailedLatency Latency `json:"failed_latency"`
}

// MarshalJSON renders durations as seconds (float), which every tool
// reading the JSON understands.
func (l Latency) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{
		"count":       l.Count,
		"p50_seconds": l.P50.Seconds(), "p90_seconds": l.P90.Seconds(), "p99_seconds": l.P99.Seconds(),
		"max_seconds": l.Max.Seconds(), "mean_seconds": l.Mean.Seconds(),
	})
}

// MarshalJSON renders Elapsed in seconds.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	return json.Marshal(struct {
		plain
		Elapsed float64 `json:"elapsed_seconds"`
	}{plain(r), r.Elapsed.Seconds()})
}

// NewClient returns the HTTP client a run uses: one keep-alive connection
// per sender, no compression, no HTTP/2 (Stripe delivers over HTTP/1.1).
func NewClient(concurrency int, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil, // a load test never goes through a proxy
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        concurrency,
			MaxIdleConnsPerHost: concurrency,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
		},
	}
}

// Run sends the plan's requests to url (the webhook endpoint) with
// Concurrency senders and checks every answer. It stops after the last
// request or when ctx ends (then the result covers what was answered and
// the error is ctx's). client nil means NewClient.
func (p *Plan) Run(ctx context.Context, url string, client *http.Client) (Result, error) {
	cfg := p.cfg
	if client == nil {
		client = NewClient(cfg.Concurrency, cfg.Timeout)
		defer client.CloseIdleConnections()
	}
	n := len(p.dup)
	lat := make([]time.Duration, n)
	kinds := make([]string, n) // "" ok, "dup" ok duplicate, else an error kind

	var (
		next      atomic.Int64
		freshNext atomic.Int64
		ackMu     sync.Mutex
		acked     []int // indices into p.fresh acknowledged as stored
	)
	rngs := make([]*mrand.Rand, cfg.Concurrency)
	for i := range rngs {
		rngs[i] = mrand.New(mrand.NewPCG(uint64(i), 7))
	}
	sender := func(r *mrand.Rand) {
		for {
			i := int(next.Add(1) - 1)
			if i >= n || ctx.Err() != nil {
				return
			}
			fi, isDup := -1, false
			if p.dup[i] {
				ackMu.Lock()
				if len(acked) > 0 {
					fi, isDup = acked[r.IntN(len(acked))], true
				}
				ackMu.Unlock()
			}
			if fi < 0 {
				fi = int(freshNext.Add(1) - 1)
				if fi >= len(p.fresh) {
					kinds[i] = ErrKindNoAcknowledged
					continue
				}
			}
			d := &p.fresh[fi]
			sig := d.sig
			if time.Since(d.signedAt) > resignAfter {
				sig = fcevents.Sign(d.body, cfg.Secret, time.Now())
			}
			start := time.Now()
			kind := p.send(ctx, client, url, d, sig, isDup)
			lat[i] = time.Since(start)
			kinds[i] = kind
			if kind == "" {
				ackMu.Lock()
				acked = append(acked, fi)
				ackMu.Unlock()
			}
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i := range cfg.Concurrency {
		wg.Go(func() { sender(rngs[i]) })
	}
	wg.Wait()
	elapsed := time.Since(start)

	res := Result{URL: url, Concurrency: cfg.Concurrency, BodyBytes: p.bodyBytes, Errors: map[string]int{}, Elapsed: elapsed}
	var ok, failed []time.Duration
	for i := range n {
		switch kinds[i] {
		case "":
			if lat[i] == 0 && ctx.Err() != nil {
				continue // never sent: the run was cancelled
			}
			res.Stored++
			ok = append(ok, lat[i])
		case "dup":
			res.Duplicates++
			ok = append(ok, lat[i])
		default:
			res.Errors[kinds[i]]++
			res.ErrorCount++
			if lat[i] > 0 { // sent (ErrKindNoAcknowledged never is)
				failed = append(failed, lat[i])
			}
		}
		res.Requests++
	}
	res.Latency, res.FailedLatency = summarize(ok), summarize(failed)
	if elapsed > 0 {
		res.Throughput = float64(len(ok)) / elapsed.Seconds()
	}
	return res, ctx.Err()
}

// send posts one delivery and classifies the answer: "" for a correctly
// stored new event, "dup" for a correctly recognised re-send, else an error
// kind.
func (p *Plan) send(ctx context.Context, client *http.Client, url string, d *delivery, sig string, isDup bool) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(d.body))
	if err != nil {
		return ErrKindTransport
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Stripe-Signature", sig)
	req.Header.Set("User-Agent", "fcaudit-loadgen")
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
			return ErrKindTimeout
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return ErrKindTimeout
		}
		return ErrKindTransport
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return ErrKindTransport
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("status_%d", resp.StatusCode)
	}
	var a struct {
		ID        string `json:"id"`
		Duplicate *bool  `json:"duplicate"`
	}
	if err := json.Unmarshal(answer, &a); err != nil || a.Duplicate == nil {
		return ErrKindBadJSON
	}
	switch {
	case a.ID != d.id:
		return ErrKindWrongID
	case isDup && !*a.Duplicate:
		return ErrKindMissedDuplicate
	case !isDup && *a.Duplicate:
		return ErrKindUnexpectedDuplicate
	case isDup:
		return "dup"
	}
	return ""
}

// summarize computes percentiles (nearest rank) of ds, which it sorts.
func summarize(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	rank := func(q float64) time.Duration {
		i := int(q*float64(len(ds)) + 0.999999)
		return ds[max(0, min(i, len(ds))-1)]
	}
	return Latency{Count: len(ds), P50: rank(.50), P90: rank(.90), P99: rank(.99), Max: ds[len(ds)-1], Mean: sum / time.Duration(len(ds))}
}
