package replay

import (
	"fmt"
	"sync"
	"time"

	"github.com/fcaudit/fcaudit/internal/progress"
	"github.com/fcaudit/fcaudit/store"
)

// ProgressBar draws "count, rate, ETA" on one terminal line. The ETA comes
// from the read position between the start and the log's head (or from
// --limit), so it is an estimate when the selection is uneven.
type ProgressBar struct {
	w          *progress.Line
	from, head store.Position
	limit      int
	every      time.Duration

	mu   sync.Mutex
	last time.Duration
}

// NewProgressBar returns a bar drawn on w for a selection read from `from`
// up to `head`, at most limit events (0 = no limit). The throttle runs on the
// run's own clock (Progress.Elapsed), not w's.
func NewProgressBar(w *progress.Line, from, head store.Position, limit int) *ProgressBar {
	return &ProgressBar{w: w, from: from, head: head, limit: limit, every: 200 * time.Millisecond, last: -time.Hour}
}

// Update redraws the bar, at most every 200ms; use it as Options.Progress.
func (b *ProgressBar) Update(p Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.Elapsed-b.last < b.every {
		return
	}
	b.last = p.Elapsed
	b.w.Draw(b.line(p))
}

// Finish clears the bar so the summary starts on a clean line.
func (b *ProgressBar) Finish() {
	b.w.Finish()
}

func (b *ProgressBar) line(p Progress) string {
	secs := p.Elapsed.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(p.Done) / secs
	}
	frac := -1.0
	switch {
	case b.limit > 0:
		frac = float64(p.Done) / float64(b.limit)
	case b.head > b.from && p.Position > b.from:
		frac = float64(p.Position-b.from) / float64(b.head-b.from)
	}
	if frac < 0 || frac > 1 {
		return fmt.Sprintf("%d events  %.0f/s", p.Done, rate)
	}
	eta := "?"
	if frac > 0 {
		eta = (time.Duration(secs*(1-frac)/frac) * time.Second).Round(time.Second).String()
	}
	return fmt.Sprintf("%s %3.0f%%  %d events  %.0f/s  ETA %s", progress.Bar(frac, 24), frac*100, p.Done, rate, eta)
}
