package projections

import (
	"context"
	"testing"

	"github.com/fcaudit/fcaudit/store"
)

// BenchmarkAccountRead compares reading an account's live row alone (what
// GET /v1/accounts/{id} did) with Account, which also checks the stream for
// events the projection has not applied yet (read-your-writes), on a
// caught-up projection.
func BenchmarkAccountRead(b *testing.B) {
	dir := b.TempDir()
	st := openStore(b, dir)
	for _, e := range fixtureEvents(b) {
		if _, err := st.Append(context.Background(), e.Stream, store.AnyRevision, e.Event); err != nil {
			b.Fatal(err)
		}
	}
	r := openRunner(b, dir, st, Options{})
	stop := startRunner(b, r)
	waitCaughtUp(b, r)
	stop()
	ctx := context.Background()
	b.Run("row", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.row(ctx, fixtureAccount); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("account", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Account(ctx, fixtureAccount); err != nil {
				b.Fatal(err)
			}
		}
	})
}
