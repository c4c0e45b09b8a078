package replay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/record"
	"github.com/fcaudit/fcaudit/store"
)

// WriteNDJSON writes every selected event as one record.Record per line (the
// JSON of GET /v1/events/{id}) in store order and returns how many it wrote.
// A cancelled ctx stops it after the current line (error wraps ctx.Err()).
func WriteNDJSON(ctx context.Context, r Reader, sel Selection, w io.Writer) (int, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := record.NewEncoder(bw)
	c := newCursor(r, sel, sel.FromPosition, 0, false)
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return n, flushErr(bw, fmt.Errorf("write ndjson: %w", err))
		}
		ev, err := c.next(ctx)
		if err != nil {
			return n, flushErr(bw, err)
		}
		if ev == nil {
			break
		}
		if err := enc.Encode(record.From(ev)); err != nil {
			return n, fmt.Errorf("write ndjson: %w", err)
		}
		n++
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("write ndjson: %w", err)
	}
	return n, nil
}

func flushErr(bw *bufio.Writer, err error) error {
	_ = bw.Flush() // keep the complete lines already encoded
	return err
}

// WritePlan writes what Deliver would send, one line per event:
// position, id, type and account ("-" for events outside account streams),
// tab-separated. With opts.Checkpoint it leaves out events an earlier run
// delivered. It reads no payloads and sends nothing.
func WritePlan(ctx context.Context, r Reader, sel Selection, w io.Writer, opts Options) (int, error) {
	var cp *Checkpoint
	if opts.Checkpoint != "" {
		var err error
		if cp, err = LoadCheckpoint(opts.Checkpoint); err != nil {
			return 0, err
		}
		if cp != nil && cp.Key != sel.key()+":"+opts.TargetKey {
			return 0, fmt.Errorf("%s (written for target %s): %w", opts.Checkpoint, cp.Target, ErrCheckpointMismatch)
		}
	}
	t := newTracker(cp, sel.FromPosition)
	low, lowCount, _ := t.snapshot()
	c := newCursor(r, sel, low, lowCount, true)
	bw := bufio.NewWriterSize(w, 64<<10)
	n := 0
	var line []byte
	for {
		ev, err := c.next(ctx)
		if err != nil {
			return n, flushErr(bw, err)
		}
		if ev == nil {
			break
		}
		if _, already := t.add(ev.Position); already {
			continue
		}
		acct := fc.AccountOf(ev.Stream)
		if acct == "" {
			acct = "-"
		}
		line = strconv.AppendUint(line[:0], uint64(ev.Position), 10)
		line = append(line, '\t')
		line = append(line, ev.ID...)
		line = append(line, '\t')
		line = append(line, ev.Type...)
		line = append(line, '\t')
		line = append(line, acct...)
		line = append(line, '\n')
		if _, err := bw.Write(line); err != nil {
			return n, fmt.Errorf("write plan: %w", err)
		}
		n++
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("write plan: %w", err)
	}
	return n, nil
}

// Rebuilder rebuilds a read model (the projection target);
// projections.Runner implements it. Rebuild folds the events of the log that
// match filter, from the start of the log, into a fresh copy of read model
// name and swaps it in; progress (may be nil) gets the number applied so far.
type Rebuilder interface {
	Rebuild(ctx context.Context, name string, filter store.Filter, progress func(n int)) error
}

// RebuildProjection rebuilds read model name from the whole log and returns
// how many events it applied. A read model is a fold over all history, so
// the selection must be empty: any field set is refused with
// ErrNotForProjection before anything is touched (see
// Selection.NarrowedBy).
func RebuildProjection(ctx context.Context, rb Rebuilder, sel Selection, name string, progress func(n int)) (int, error) {
	if f := sel.NarrowedBy(); f != "" {
		return 0, fmt.Errorf("%s: %w", f, ErrNotForProjection)
	}
	n := 0
	err := rb.Rebuild(ctx, name, sel.Filter(), func(applied int) {
		n = applied
		if progress != nil {
			progress(applied)
		}
	})
	if err != nil {
		return n, fmt.Errorf("rebuild projection %s: %w", name, err)
	}
	return n, nil
}

// ErrNotForProjection: a read model is rebuilt from every event of the log.
// Rebuilt from part of it (some accounts, types, times, a position or a
// count), the new table would replace the whole live one, losing or
// miscounting every row outside the selection.
var ErrNotForProjection = errors.New("replay --projection rebuilds the whole read model from every event and takes no selection: " +
	"a read model rebuilt from part of the history would replace every other account's row (use 'fcaudit projections rebuild'; " +
	"for one account's status at a time, GET /v1/accounts/{id}?as_of=T)")
