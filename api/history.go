package api

import (
	"cmp"
	"context"
	"slices"

	"github.com/fcaudit/fcaudit/store"
)

// History orders of GET /v1/accounts/{id}/events (the order parameter).
const (
	// orderStore is the default: the order fcaudit stored the events in.
	orderStore = "store"
	// orderCreated is Stripe's created time, ties in store order.
	orderCreated = "created"
)

// byCreated orders events by Stripe's created time, ties broken by store
// order (revision within one stream), so the order is total and stable
// across pages.
func byCreated(a, b *store.RecordedEvent) int {
	if c := cmp.Compare(a.Created, b.Created); c != 0 {
		return c
	}
	return cmp.Compare(a.Revision, b.Revision)
}

// readByCreated returns up to n events of stream matching f, in created
// order, after the event after (nil: from the first). The stream is not
// sorted by created, so all of it is read, a page at a time, keeping only
// the n best: memory stays at one page plus n events however long the
// history is.
func readByCreated(ctx context.Context, r Reader, stream string, f *store.Filter, after *store.RecordedEvent, n int) ([]store.RecordedEvent, error) {
	best := make([]store.RecordedEvent, 0, n)
	var from uint64
	for {
		evs, err := r.ReadStream(ctx, stream, from, readBatch)
		if err != nil {
			return nil, err
		}
		for i := range evs {
			ev := &evs[i]
			if !f.Match(ev) || (after != nil && byCreated(ev, after) <= 0) {
				continue
			}
			if len(best) == n && byCreated(ev, &best[n-1]) >= 0 {
				continue
			}
			at, _ := slices.BinarySearchFunc(best, ev, func(a store.RecordedEvent, b *store.RecordedEvent) int { return byCreated(&a, b) })
			if len(best) == n {
				best = best[:n-1]
			}
			best = slices.Insert(best, at, *ev)
		}
		if len(evs) < readBatch {
			return best, nil
		}
		from = evs[len(evs)-1].Revision + 1
	}
}
