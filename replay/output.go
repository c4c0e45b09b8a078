package replay

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/fcaudit/fcaudit/record"
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
		acct := ev.Account()
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

// Rebuilder rebuilds a read model from events (the projection target). The
// projections package provides it; replay only feeds it.
type Rebuilder interface {
	// Rebuild replaces the read model name with one built from the events
	// that next returns in store order (nil at the end) and returns how
	// many it applied. Errors name the model; ctx cancels it.
	Rebuild(ctx context.Context, name string, next func(context.Context) (*store.RecordedEvent, error)) (int, error)
}

// RebuildProjection feeds the selection to rb as the source of read model
// name.
func RebuildProjection(ctx context.Context, r Reader, sel Selection, rb Rebuilder, name string) (int, error) {
	c := newCursor(r, sel, sel.FromPosition, 0, false)
	n, err := rb.Rebuild(ctx, name, c.next)
	if err != nil {
		return n, fmt.Errorf("rebuild projection %s: %w", name, err)
	}
	return n, nil
}
