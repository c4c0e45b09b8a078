package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/translog"
	"github.com/fcaudit/fcaudit/translog/checkpoint"
)

// TreeReport is the outcome of Verify's Merkle tree checks.
type TreeReport struct {
	// Checked is set when the tree was recomputed.
	Checked bool
	// Size and Root are the recomputed tree's.
	Size uint64
	Root []byte
	// Published is the number of checkpoints the log has published that
	// the recomputed tree confirms; Held the number of auditor-held
	// checkpoints (VerifyOptions.TreeCheckpoints) it confirms.
	Published, Held int
	// Problems describes every disagreement: with the stored tree, with a
	// published or a held checkpoint. Any problem means the history was
	// rewritten, truncated or forked since that checkpoint was signed.
	Problems []string
}

// treeCheck recomputes the tree during Verify's scan and remembers the
// roots at the sizes some checkpoint names.
type treeCheck struct {
	opts   VerifyOptions
	on     bool
	tree   *translog.Tree
	want   map[uint64][]wantRoot
	roots  map[uint64][]byte
	report TreeReport
}

type wantRoot struct {
	root      []byte
	published bool
	what      string
}

func newTreeCheck(ctx context.Context, opts VerifyOptions) (*treeCheck, error) {
	t := &treeCheck{opts: opts, want: map[uint64][]wantRoot{}, roots: map[uint64][]byte{}}
	if opts.Tree == nil && len(opts.TreeCheckpoints) == 0 {
		return t, nil
	}
	t.on, t.tree = true, translog.NewTree()
	if opts.Tree != nil {
		cps, err := opts.Tree.Checkpoints(ctx)
		if err != nil && !errors.Is(err, translog.ErrNotBuilt) {
			return nil, fmt.Errorf("published checkpoints: %w", err)
		}
		for _, cp := range cps {
			what := fmt.Sprintf("published checkpoint of tree size %d", cp.Size)
			if opts.CheckpointKey != "" {
				if _, err := checkpoint.Open(cp.Note, opts.CheckpointKey); err != nil {
					t.report.Problems = append(t.report.Problems, fmt.Sprintf("%s: signature: %v", what, err))
					continue
				}
			}
			// The note is what was handed out; its root is what counts.
			body, err := checkpoint.Parse(noteText(cp.Note))
			if err != nil || body.Size != cp.Size || !bytes.Equal(body.Root, cp.Root) {
				t.report.Problems = append(t.report.Problems, fmt.Sprintf("%s: the kept note does not match its tree head", what))
				continue
			}
			t.want[cp.Size] = append(t.want[cp.Size], wantRoot{root: cp.Root, published: true, what: what})
		}
	}
	for _, cp := range opts.TreeCheckpoints {
		what := fmt.Sprintf("held checkpoint %s of tree size %d", cp.Origin, cp.Size)
		t.want[cp.Size] = append(t.want[cp.Size], wantRoot{root: cp.Root, what: what})
	}
	if rs := t.want[0]; len(rs) > 0 {
		t.roots[0] = translog.EmptyRoot()
	}
	return t, nil
}

func (t *treeCheck) add(e *store.RecordedEvent) {
	if !t.on {
		return
	}
	h := translog.LeafHashOf(e)
	t.tree.Append(h[:])
	if _, ok := t.want[t.tree.Size()]; ok {
		t.roots[t.tree.Size()] = t.tree.Root()
	}
}

func (t *treeCheck) finish(ctx context.Context) (TreeReport, error) {
	if !t.on {
		return t.report, nil
	}
	rep := t.report
	rep.Checked, rep.Size, rep.Root = true, t.tree.Size(), t.tree.Root()
	if t.opts.Tree != nil {
		stored, err := t.opts.Tree.RootAt(ctx, rep.Size)
		switch {
		case errors.Is(err, translog.ErrNotBuilt):
			// An upgraded log no read-write open has indexed yet.
		case err != nil:
			rep.Problems = append(rep.Problems, fmt.Sprintf("stored Merkle tree: %v", err))
		case !bytes.Equal(stored, rep.Root):
			rep.Problems = append(rep.Problems, fmt.Sprintf("stored Merkle tree: its root for %d leaves differs from the root recomputed from the events", rep.Size))
		}
	}
	for size, ws := range t.want {
		got, ok := t.roots[size]
		for _, w := range ws {
			switch {
			case !ok:
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s: the log now holds only %d events (truncated)", w.what, rep.Size))
			case !bytes.Equal(got, w.root):
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s: its root differs from the root of the first %d events (history rewritten)", w.what, size))
			case w.published:
				rep.Published++
			default:
				rep.Held++
			}
		}
	}
	sort.Strings(rep.Problems)
	return rep, nil
}

// noteText returns a signed note's text: everything before the blank line
// that precedes the signatures.
func noteText(msg []byte) string {
	s := string(msg)
	if i := bytes.LastIndex(msg, []byte("\n\n")); i >= 0 {
		return s[:i+1]
	}
	return s
}
