package replay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fcaudit/fcaudit/internal/logkey"
	"github.com/fcaudit/fcaudit/store"
)

// Defaults of Options.
const (
	DefaultConcurrency        = 4
	DefaultMaxRetries         = 5
	DefaultBaseBackoff        = 500 * time.Millisecond
	DefaultMaxBackoff         = 30 * time.Second
	DefaultMaxRetryAfter      = 5 * time.Minute
	DefaultCheckpointInterval = time.Second
	// DefaultUnreachableProbes is how many attempts an event gets while
	// the target has never been reached and cannot be connected to,
	// before the whole run stops with ErrTargetUnreachable.
	DefaultUnreachableProbes = 3
	// unreachableProbeBackoff caps the wait between those attempts.
	unreachableProbeBackoff = time.Second
)

// countRestTimeout bounds counting the unread rest of an interrupted run's
// selection: the user pressed Ctrl-C and is waiting.
const countRestTimeout = 30 * time.Second

// ErrTargetUnreachable stops a run whose target could not be connected to
// (refused, DNS, no route) before it had answered anything: a wrong --to or
// a receiver that is down, where retrying every account would only take
// long and report every event failed. Nothing is recorded as failed: the
// events stay pending in the checkpoint.
var ErrTargetUnreachable = errors.New("replay target unreachable")

// Options tune Deliver. The zero value means the defaults.
type Options struct {
	// Concurrency is the number of requests in flight (default 4).
	Concurrency int
	// Rate caps requests per second, retries included (0 = unlimited).
	Rate float64
	// MaxRetries is how often a retryable failure is retried before the
	// event fails (default 5; negative = never retry).
	MaxRetries int
	// BaseBackoff and MaxBackoff bound the exponential backoff: before
	// retry n the worker sleeps a random time in
	// [0, min(MaxBackoff, BaseBackoff·2ⁿ⁻¹)], or Retry-After when the
	// receiver sent one (capped at MaxRetryAfter).
	BaseBackoff, MaxBackoff, MaxRetryAfter time.Duration
	// Checkpoint, if set, is the checkpoint file: loaded at the start
	// (resume), rewritten every CheckpointInterval and at the end.
	Checkpoint         string
	CheckpointInterval time.Duration
	// TargetKey identifies the target in the checkpoint (e.g. the URL);
	// TargetLabel is its human form (redacted).
	TargetKey, TargetLabel string
	// RunID is recorded in the checkpoint.
	RunID string
	// Progress, if set, is called after every finished event (from worker
	// goroutines, serialised).
	Progress func(Progress)
	// UnreachableProbes: attempts per event while the target has never
	// answered and cannot be connected to, before the run stops with
	// ErrTargetUnreachable (default DefaultUnreachableProbes). Once the
	// target has answered anything, such errors are retried as usual.
	UnreachableProbes int
	// Clock and Jitter are for tests (defaults: real time, full jitter).
	Clock  Clock
	Jitter func(max time.Duration) time.Duration
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = DefaultMaxRetries
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = DefaultBaseBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = DefaultCheckpointInterval
	}
	if o.UnreachableProbes <= 0 {
		o.UnreachableProbes = DefaultUnreachableProbes
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.Jitter == nil {
		o.Jitter = fullJitter
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Progress is a snapshot for progress reporting.
type Progress struct {
	// Done counts finished events (replayed, failed or skipped).
	Done int
	// Position is the store position of the last event read.
	Position store.Position
	Elapsed  time.Duration
}

// Failure is an event that could not be delivered.
type Failure struct {
	ID       string         `json:"id"`
	Position store.Position `json:"position"`
	Stream   string         `json:"stream"`
	Attempts int            `json:"attempts"`
	Error    string         `json:"error"`
}

// Result counts the outcome of a run.
type Result struct {
	// Replayed events were delivered (2xx) in this run.
	Replayed int `json:"replayed"`
	// Failed events exhausted their retries or failed permanently.
	Failed int `json:"failed"`
	// Skipped events were not sent because an earlier event of their
	// stream failed.
	Skipped int `json:"skipped"`
	// AlreadyDone events were delivered by an earlier run (checkpoint).
	AlreadyDone int `json:"already_done"`
	// NotAttempted events were selected but not sent because the run was
	// interrupted: those read ahead and never attempted, and the rest of
	// the selection, counted after the interruption (metadata only).
	NotAttempted int `json:"not_attempted"`
	// NotAttemptedAtLeast: counting the rest failed or took longer than
	// countRestTimeout; NotAttempted is a lower bound.
	NotAttemptedAtLeast bool `json:"not_attempted_at_least,omitempty"`
	// Retries counts extra attempts.
	Retries int `json:"retries"`
	// Failures lists the failed events in store order; SkippedIDs the
	// skipped ones.
	Failures   []Failure `json:"-"`
	SkippedIDs []string  `json:"-"`
	// Interrupted: the context was cancelled before the selection was
	// exhausted.
	Interrupted bool          `json:"interrupted"`
	Elapsed     time.Duration `json:"-"`
}

// Deliver sends every selected event to s and returns the counts. Events of
// one stream go one at a time in store order; see the package documentation
// for retries, skipping and checkpoints. Cancelling ctx stops the run: no
// new attempt starts, attempts in flight finish (bounded by the sender's
// timeout) and the checkpoint is written; Result.Interrupted is then set and
// the error is nil. Errors are reading the store, or the checkpoint
// (ErrCheckpointMismatch when it belongs to another run).
func Deliver(ctx context.Context, r Reader, sel Selection, s Sender, opts Options) (Result, error) {
	opts.defaults()
	start := opts.Clock.Now()
	var cp *Checkpoint
	key := sel.key() + ":" + opts.TargetKey
	if opts.Checkpoint != "" {
		var err error
		if cp, err = LoadCheckpoint(opts.Checkpoint); err != nil {
			return Result{}, err
		}
		if cp != nil && cp.Key != key {
			return Result{}, fmt.Errorf("%s (written for target %s): %w", opts.Checkpoint, cp.Target, ErrCheckpointMismatch)
		}
	}
	e := &engine{
		opts: opts, sender: s, sel: sel,
		tracker: newTracker(cp, sel.FromPosition),
		limiter: newLimiter(opts.Rate, opts.Clock),
		failed:  map[string]bool{},
		queues:  map[string]*streamQueue{},
		window:  opts.Concurrency * 64,
		start:   start,
	}
	e.work = sync.NewCond(&e.mu)
	e.space = sync.NewCond(&e.mu)
	if cp != nil {
		e.res.AlreadyDone = cp.LowCount // read past, not again
	}
	if opts.Checkpoint != "" {
		e.cpTemplate = Checkpoint{Version: checkpointVersion, Key: key, Target: opts.TargetLabel, RunID: opts.RunID}
		// Fail early on an unwritable path, before anything is sent.
		if err := e.saveCheckpoint(); err != nil {
			return Result{}, err
		}
	}
	ctx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	e.abort = abort
	err := e.run(ctx, r)
	if err == nil && ctx.Err() != nil && !e.exhausted && e.cursor != nil {
		// Interrupted: what was never read counts as not sent too.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), countRestTimeout)
		rest, cerr := e.cursor.countRest(cctx, e.tracker.deliveredBefore)
		cancel()
		e.res.NotAttempted += rest
		if cerr != nil {
			e.res.NotAttemptedAtLeast = true
			opts.Logger.Warn("replay: counting the events not sent", logkey.Err(cerr))
		}
	}
	if cause := context.Cause(ctx); errors.Is(cause, ErrTargetUnreachable) && err == nil {
		err = cause
	}
	if opts.Checkpoint != "" {
		if cerr := e.saveCheckpoint(); cerr != nil && err == nil {
			err = cerr
		}
	}
	res := e.res
	res.Elapsed = opts.Clock.Now().Sub(start)
	res.Interrupted = ctx.Err() != nil && (!e.exhausted || res.NotAttempted > 0)
	if errors.Is(err, ErrTargetUnreachable) {
		res.Interrupted = false // stopped by the error, not by the caller
	}
	return res, err
}

// engine is the state of one Deliver call. Streams with queued events sit
// in ready (FIFO) unless a worker holds them (busy); a worker takes a ready
// stream, sends its oldest event, and puts the stream back if more are
// queued. window bounds the events read ahead of delivery.
type engine struct {
	opts    Options
	sender  Sender
	sel     Selection
	tracker *tracker
	limiter *limiter
	start   time.Time

	// cursor is the producer's read position in the selection.
	cursor *cursor

	mu        sync.Mutex
	work      *sync.Cond // workers wait for a ready stream or the end
	space     *sync.Cond // the producer waits for room in the window
	queues    map[string]*streamQueue
	ready     []*streamQueue
	buffered  int
	window    int
	closed    bool // the producer is done
	stopped   bool // ctx was cancelled
	exhausted bool // the whole selection was read
	failed    map[string]bool
	res       Result
	finished  int
	lastPos   store.Position

	// reached: the target has answered at least once (any HTTP status).
	reached atomic.Bool
	abort   context.CancelCauseFunc

	cpMu       sync.Mutex
	cpTemplate Checkpoint
	cpLast     time.Time
}

type streamQueue struct {
	stream string
	items  []item
	busy   bool
}

type item struct {
	ev   *store.RecordedEvent
	slot int
}

func (e *engine) run(ctx context.Context, r Reader) error {
	stopWake := context.AfterFunc(ctx, func() {
		e.mu.Lock()
		e.stopped = true
		e.work.Broadcast()
		e.space.Broadcast()
		e.mu.Unlock()
	})
	defer stopWake()

	var wg sync.WaitGroup
	for range e.opts.Concurrency {
		wg.Go(func() { e.worker(ctx) })
	}
	err := e.produce(ctx, r)
	e.mu.Lock()
	e.closed = true
	e.work.Broadcast()
	e.mu.Unlock()
	wg.Wait()
	return err
}

// produce reads the selection in store order and queues each event on its
// stream.
func (e *engine) produce(ctx context.Context, r Reader) error {
	low, lowCount, _ := e.tracker.snapshot()
	c := newCursor(r, e.sel, low, lowCount, false)
	e.cursor = c
	for {
		if ctx.Err() != nil {
			return nil
		}
		ev, err := c.next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if ev == nil {
			e.mu.Lock()
			e.exhausted = true
			e.mu.Unlock()
			return nil
		}
		slot, already := e.tracker.add(ev.Position)
		e.mu.Lock()
		e.lastPos = ev.Position
		if already {
			e.res.AlreadyDone++
			e.mu.Unlock()
			continue
		}
		for e.buffered >= e.window && !e.stopped {
			e.space.Wait()
		}
		if e.stopped {
			e.res.NotAttempted++ // read, never queued
			e.mu.Unlock()
			return nil
		}
		q := e.queues[ev.Stream]
		if q == nil {
			q = &streamQueue{stream: ev.Stream}
			e.queues[ev.Stream] = q
		}
		q.items = append(q.items, item{ev: ev, slot: slot})
		e.buffered++
		if !q.busy && len(q.items) == 1 {
			e.ready = append(e.ready, q)
			e.work.Signal()
		}
		e.mu.Unlock()
	}
}

func (e *engine) worker(ctx context.Context) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		// A stream held by another worker keeps buffered > 0, so workers
		// wait for it: it may have more events queued behind.
		for len(e.ready) == 0 && !(e.closed && e.buffered == 0) {
			e.work.Wait()
		}
		if len(e.ready) == 0 {
			return
		}
		q := e.ready[0]
		e.ready[0] = nil
		e.ready = e.ready[1:]
		it := q.items[0]
		q.items = q.items[1:]
		q.busy = true
		skip, stopped := e.failed[q.stream], e.stopped
		e.mu.Unlock()

		var (
			outcome outcomeKind
			retries int
			fail    Failure
		)
		switch {
		case stopped:
			outcome = outcomeNotAttempted
		case skip:
			outcome = outcomeSkipped
		default:
			outcome, retries, fail = e.deliver(ctx, it.ev)
		}
		if outcome == outcomeOK {
			e.tracker.done(it.slot)
		}

		e.mu.Lock()
		q.busy = false
		e.buffered--
		switch outcome {
		case outcomeOK:
			e.res.Replayed++
		case outcomeFailed:
			e.res.Failed++
			e.res.Failures = append(e.res.Failures, fail)
			e.failed[q.stream] = true
		case outcomeSkipped:
			e.res.Skipped++
			e.res.SkippedIDs = append(e.res.SkippedIDs, it.ev.ID)
		case outcomeNotAttempted:
			e.res.NotAttempted++
		}
		e.res.Retries += retries
		e.finished++
		// Wake one sleeper per reason rather than all of them: with many
		// workers on few cores a broadcast per event costs more than the
		// event.
		if len(q.items) > 0 {
			e.ready = append(e.ready, q)
			e.work.Signal()
		} else {
			delete(e.queues, q.stream)
		}
		e.space.Signal()
		if e.closed && e.buffered == 0 {
			e.work.Broadcast() // the end: let every worker return
		}
		if e.opts.Progress != nil {
			e.opts.Progress(Progress{Done: e.finished, Position: e.lastPos, Elapsed: e.opts.Clock.Now().Sub(e.start)})
		}
		if e.opts.Checkpoint != "" && e.opts.Clock.Now().Sub(e.cpLastLocked()) >= e.opts.CheckpointInterval {
			e.mu.Unlock()
			if err := e.saveCheckpoint(); err != nil {
				e.opts.Logger.Warn("replay: checkpoint not written", logkey.Err(err))
			}
			e.mu.Lock()
		}
	}
}

type outcomeKind int

const (
	outcomeOK outcomeKind = iota
	outcomeFailed
	outcomeSkipped
	outcomeNotAttempted
)

// deliver sends one event with retries and returns the outcome and the
// number of retries. Attempts run on a context detached from ctx, so a
// cancelled run lets the attempt in flight finish (bounded by the sender's
// timeout) instead of leaving its outcome unknown; ctx still ends backoff
// sleeps and stops further attempts.
func (e *engine) deliver(ctx context.Context, ev *store.RecordedEvent) (outcomeKind, int, Failure) {
	attemptCtx := context.WithoutCancel(ctx)
	for attempt := 0; ; attempt++ {
		if err := e.limiter.wait(ctx); err != nil {
			// Not sent: stays pending in the checkpoint.
			return outcomeNotAttempted, attempt, Failure{}
		}
		err := e.sender.Send(attemptCtx, ev)
		if err == nil {
			e.reached.Store(true)
			return outcomeOK, attempt, Failure{}
		}
		var se *SendError
		isSendErr := errors.As(err, &se)
		if isSendErr && se.Status != 0 {
			e.reached.Store(true)
		}
		if isSendErr && se.Unreachable && !e.reached.Load() {
			probes := e.opts.UnreachableProbes
			if e.opts.MaxRetries < 0 {
				probes = 1
			} else {
				probes = min(probes, e.opts.MaxRetries+1)
			}
			if attempt+1 >= probes {
				e.abort(fmt.Errorf("%w: %s: %v (after %d attempts; no event was delivered by this run, nothing is marked failed)",
					ErrTargetUnreachable, e.opts.TargetLabel, se.Err, attempt+1))
				return outcomeNotAttempted, attempt, Failure{}
			}
			d := e.opts.Jitter(min(unreachableProbeBackoff, e.opts.BaseBackoff<<min(attempt, 30)))
			e.opts.Logger.Debug("replay: target unreachable, probing", logkey.EventID, ev.ID, "attempt", attempt+1, "delay", d, logkey.Err(err))
			if err := e.opts.Clock.Sleep(ctx, d); err != nil {
				return outcomeNotAttempted, attempt, Failure{}
			}
			continue
		}
		retryable := isSendErr && se.Retryable
		if !retryable || e.opts.MaxRetries < 0 || attempt >= e.opts.MaxRetries {
			e.opts.Logger.Debug("replay: event failed", logkey.EventID, ev.ID, "attempts", attempt+1, logkey.Err(err))
			return outcomeFailed, attempt, Failure{ID: ev.ID, Position: ev.Position, Stream: ev.Stream,
				Attempts: attempt + 1, Error: err.Error()}
		}
		d := e.opts.Jitter(min(e.opts.MaxBackoff, e.opts.BaseBackoff<<min(attempt, 30)))
		if se.RetryAfter > 0 {
			d = min(se.RetryAfter, e.opts.MaxRetryAfter)
		}
		e.opts.Logger.Debug("replay: retrying", logkey.EventID, ev.ID, "attempt", attempt+1, "delay", d, logkey.Err(err))
		if err := e.opts.Clock.Sleep(ctx, d); err != nil {
			return outcomeNotAttempted, attempt, Failure{}
		}
	}
}

func (e *engine) cpLastLocked() time.Time {
	e.cpMu.Lock()
	defer e.cpMu.Unlock()
	return e.cpLast
}

// saveCheckpoint writes the tracker's state; calls are serialised so an
// older snapshot never overwrites a newer one.
func (e *engine) saveCheckpoint() error {
	e.cpMu.Lock()
	defer e.cpMu.Unlock()
	cp := e.cpTemplate
	cp.Low, cp.LowCount, cp.Done = e.tracker.snapshot()
	e.cpLast = e.opts.Clock.Now()
	if err := SaveCheckpoint(e.opts.Checkpoint, &cp); err != nil {
		return fmt.Errorf("checkpoint %s: %w", e.opts.Checkpoint, err)
	}
	return nil
}
