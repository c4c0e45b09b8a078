package audit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fcaudit/fcaudit/internal/atomicfile"
	"github.com/fcaudit/fcaudit/translog"
)

// ExportFormats are the formats Export writes.
var ExportFormats = []string{"ndjson", "csv"}

// ExportRequest is one `fcaudit export`: which history, in which format,
// where to.
type ExportRequest struct {
	ExportOptions
	// Format is "ndjson" or "csv".
	Format string
	// Out is the file to write (atomically, mode 0600); "-" writes to
	// Stdout. An existing file is refused unless Force (which keeps its
	// mode); a target that is not a regular file always is.
	Out    string
	Force  bool
	Stdout io.Writer
	// Bundle, when set, is a new or empty directory that also receives an
	// evidence bundle generated at Now.
	Bundle string
	Now    time.Time
	// Log, when set, adds each bundled event's Merkle inclusion proof
	// against the log's latest signed checkpoint (log_proof.json).
	Log translog.Log
}

// ExportResult says what Export wrote.
type ExportResult struct {
	// Written is true once the export itself (Out) is complete; Selected
	// of Total events were written.
	Written         bool
	Selected, Total int
	// Bundle describes the evidence bundle, when one was asked for and
	// written.
	Bundle *BundleResult
	// Broken is the stream's first broken event, nil when the chain is
	// intact. The export is written all the same (it is evidence too), but
	// the run has failed.
	Broken *Break
	// NoProofs says why the bundle holds no inclusion proofs ("" when it
	// does, or when there is no bundle); NotCovered counts the bundled
	// events that arrived after the checkpoint the proofs are against.
	NoProofs   string
	NotCovered int
	TreeSize   uint64
}

// ErrExportFormat is returned for a format Export does not know.
var ErrExportFormat = errors.New("unknown export format: want ndjson or csv")

// Export loads req's history (ErrUnknownAccount when the account has no
// stream), writes it in req.Format to req.Out, then writes the bundle if
// asked. A broken chain is not an error: it is reported in
// ExportResult.Broken after everything was written.
func Export(ctx context.Context, r StreamReader, req ExportRequest) (ExportResult, error) {
	var res ExportResult
	policy := atomicfile.NoClobber
	if req.Force {
		policy = atomicfile.Force
	}
	// Refuse a target before the work, not after.
	if req.Out != "-" {
		if err := atomicfile.Check(req.Out, policy); err != nil {
			return res, fmt.Errorf("export to %s: %w", req.Out, err)
		}
	}
	if req.Bundle != "" {
		if err := prepareDir(req.Bundle); err != nil {
			return res, fmt.Errorf("write bundle: %w", err)
		}
	}
	h, err := LoadHistory(ctx, r, req.ExportOptions)
	if err != nil {
		return res, err
	}
	var write func(io.Writer) error
	switch req.Format {
	case "ndjson":
		write = h.WriteNDJSON
	case "csv":
		write = h.WriteCSV
	default:
		return res, fmt.Errorf("%q: %w", req.Format, ErrExportFormat)
	}
	if err := writeOutput(req.Stdout, req.Out, policy, write); err != nil {
		return res, err
	}
	res.Written, res.Selected, res.Total = true, len(h.Selected), len(h.Events)
	if req.Bundle != "" {
		switch err := addLogProofs(ctx, h, req.Log); {
		case errors.Is(err, translog.ErrNoCheckpoint):
			res.NoProofs = "no checkpoint published yet (fcaudit log checkpoint --publish)"
		case errors.Is(err, translog.ErrNotSupported):
			res.NoProofs = err.Error()
		case err != nil:
			return res, err
		default:
			res.NotCovered, res.TreeSize = len(h.LogProofs.NotCovered), h.LogProofs.TreeSize
		}
		if res.Bundle, err = WriteBundle(h, req.Bundle, req.Now); err != nil {
			return res, err
		}
	}
	res.Broken = h.Check.FirstBroken
	return res, nil
}

// addLogProofs adds the inclusion proofs when the event store keeps a tree.
func addLogProofs(ctx context.Context, h *History, l translog.Log) error {
	if l == nil {
		return translog.ErrNotSupported
	}
	return AddLogProofs(ctx, h, l)
}

// writeOutput runs write into stdout ("-") or into path atomically, so a
// failed export never leaves a partial file.
func writeOutput(stdout io.Writer, path string, policy atomicfile.Policy, write func(io.Writer) error) error {
	if path == "-" {
		bw := bufio.NewWriter(stdout)
		if err := write(bw); err != nil {
			return err
		}
		return bw.Flush()
	}
	if err := atomicfile.Write(path, atomicfile.FileMode, policy, write); err != nil {
		return fmt.Errorf("export to %s: %w", path, err)
	}
	return nil
}
