package backfill

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Summary is the report's last line: "fetched N, already stored M, appended
// K", plus what a dry run would append and how many listed events were
// ignored, when there are any.
func (r *Report) Summary() string {
	s := fmt.Sprintf("fetched %d, already stored %d, appended %d", r.Fetched, r.AlreadyStored, r.Appended)
	if r.DryRun {
		s += fmt.Sprintf(" (dry run: %d missing)", len(r.Gaps))
	}
	if r.Ignored > 0 {
		s += fmt.Sprintf(", ignored %d outside the requested types", r.Ignored)
	}
	return s
}

// AccountGaps groups gaps by FC account (by stream for the rare event outside
// an account stream), accounts in id order, events oldest first.
func (r *Report) AccountGaps() []AccountGap {
	by := map[string]*AccountGap{}
	var keys []string
	for _, g := range r.Gaps {
		k := g.Account
		if k == "" {
			k = g.Stream
		}
		ag, ok := by[k]
		if !ok {
			ag = &AccountGap{Account: k}
			by[k] = ag
			keys = append(keys, k)
		}
		ag.Events = append(ag.Events, g)
	}
	slices.Sort(keys)
	out := make([]AccountGap, 0, len(keys))
	for _, k := range keys {
		out = append(out, *by[k])
	}
	return out
}

// AccountGap is the gaps of one account.
type AccountGap struct {
	Account string
	Events  []Gap
}

// WriteText writes the gap report: per account, the events Stripe has that
// the log lacked (id, type, created), then Summary. Events listed after a
// failed append, which are still missing, are marked "not appended".
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	switch {
	case len(r.Gaps) == 0:
		fmt.Fprintf(&b, "no gaps: the log has every FC account event Stripe listed since %s\n", r.Since.UTC().Format(time.RFC3339))
	case r.DryRun:
		fmt.Fprintf(&b, "events Stripe has that the log lacks (since %s; dry run, nothing appended):\n", r.Since.UTC().Format(time.RFC3339))
	default:
		fmt.Fprintf(&b, "events Stripe had that the log lacked (since %s):\n", r.Since.UTC().Format(time.RFC3339))
	}
	for _, ag := range r.AccountGaps() {
		fmt.Fprintf(&b, "%s (%d)\n", ag.Account, len(ag.Events))
		for _, g := range ag.Events {
			fmt.Fprintf(&b, "  %s  %-52s  %s", g.ID, g.Type, time.Unix(g.Created, 0).UTC().Format(time.RFC3339))
			if g.ConnectAccount != "" {
				fmt.Fprintf(&b, "  connect %s", g.ConnectAccount)
			}
			if !r.DryRun && !g.Appended {
				b.WriteString("  not appended")
			}
			b.WriteByte('\n')
		}
	}
	b.WriteString(r.Summary())
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}
