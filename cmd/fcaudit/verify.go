package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/fcaudit/fcaudit/audit"
	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/internal/atomicfile"
	"github.com/fcaudit/fcaudit/internal/progress"
	"github.com/fcaudit/fcaudit/translog"
	"github.com/fcaudit/fcaudit/translog/checkpoint"
)

type verifyOptions struct {
	writeCheckpoint string
	force           bool
	against         string
	skipMetadata    bool
	secrets         secretSource
	pageSize        int
	key             string
	keyFile         string
	now             func() time.Time
}

func newVerifyCommand(f *factory) *cobra.Command {
	o := &verifyOptions{now: time.Now,
		secrets: secretSource{name: "webhook-secret", env: "STRIPE_WEBHOOK_SECRET", list: true}}
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Prove the stored history is unaltered (hash chains, body hashes, checkpoints)",
		Long: `verify reads the whole event log once, in store order, and for every stream
recomputes each body's SHA-256 and the hash chain

  chain_hash[n] = SHA-256(chain_hash[n-1] || body_sha256[n] || id || 0x00 || received_at)

(seeded with SHA-256 of the stream name). It also checks that revisions have no
gaps and follow store order, and that the metadata columns the chain does not
cover (type, created, livemode, api_version, connect_account, stream, source)
agree with the body.

Exit status 0 when everything is intact; 1 when anything was altered, removed or
reordered, naming the first broken event (stream, revision, id) of each damaged
stream on stdout; 2 for a bad command line. It works while serve runs: it covers
the log up to its head when verify started.

On the embedded store verify also recomputes the log's Merkle tree from the
events and compares it with the stored tree and with every signed checkpoint
the log has published (fork detection): a rewrite of history, even one that
recomputes the stream chains, makes an earlier checkpoint's root disagree.

--write-checkpoint FILE saves every stream's last revision and chain hash plus a
digest over all of them (only when the log is intact), mode 0600; it never
replaces an existing file unless --force (the file keeps its mode), nor a
symlink or device ever; '-' writes it to stdout (the report then goes to stderr). Keep that file (or at
least its digest) outside fcaudit; later, --against FILE proves every stream
still holds exactly that prefix (events appended since are fine). --against
also accepts a signed log checkpoint (fcaudit log checkpoint, GET
/v1/log/checkpoint), checked with --key (default: the local signing key's
verifier key): the first events of the log must still have its root.

With the webhook signing secrets (--webhook-secret, --webhook-secret-file,
STRIPE_WEBHOOK_SECRET or STRIPE_WEBHOOK_SECRET_FILE, as for serve) every webhook's stored Stripe-Signature is re-checked against its
stored body, however old: the chain is unkeyed, so someone who can write the
file could rewrite a body and recompute the chain, but not Stripe's signature.
Webhooks signed with a secret not given are counted, not failed.`,
		Example: `  fcaudit verify
  fcaudit verify --write-checkpoint /mnt/worm/fcaudit-2026-11-30.checkpoint.json
  fcaudit verify --against /mnt/worm/fcaudit-2026-11-30.checkpoint.json
  fcaudit verify --against /mnt/worm/fcaudit-2026-11-30.checkpoint --key 'fcaudit/…+…+…'
  STRIPE_WEBHOOK_SECRET=whsec_new,whsec_old fcaudit verify`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runVerify(cmd.Context(), f, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.writeCheckpoint, "write-checkpoint", "", "after an intact verification, write a checkpoint of every stream to `FILE` (atomically, mode 0600; '-' for stdout); an existing FILE is refused without --force")
	fl.BoolVar(&o.force, "force", false, "let --write-checkpoint replace an existing file (it keeps its mode); never a symlink or device")
	fl.StringVar(&o.against, "against", "", "also prove that every stream still holds the prefix recorded in checkpoint `FILE`")
	fl.BoolVar(&o.skipMetadata, "skip-metadata", false, "check hashes and chains only, not the metadata columns against the bodies (faster)")
	o.secrets.register(fl, "re-check stored webhook signatures with this signing secret")
	fl.StringVar(&o.key, "key", "", "verifier key (name+hash+base64) for a signed log checkpoint given to --against and for the published checkpoints (default: the local signing key's)")
	fl.StringVar(&o.keyFile, logKeyFlag, os.Getenv("FCAUDIT_LOG_KEY_FILE"), "checkpoint signing key file whose verifier key is the default for --key (default DATA_DIR/"+checkpoint.DefaultKeyFile+")")
	fl.IntVar(&o.pageSize, "page-size", 5000, "events per read; each read is a short snapshot, so serve is not held up")
	return cmd
}

func runVerify(ctx context.Context, f *factory, o *verifyOptions) error {
	if o.pageSize <= 0 || o.pageSize > 10000 {
		return flagError("page-size", fmt.Errorf("must be from 1 to 10000, got %d", o.pageSize))
	}
	if o.writeCheckpoint != "" && o.writeCheckpoint == o.against {
		return flagError("write-checkpoint", errors.New("must differ from --against (the old checkpoint is the evidence)"))
	}
	policy := atomicfile.NoClobber
	if o.force {
		policy = atomicfile.Force
	}
	if o.writeCheckpoint != "" && o.writeCheckpoint != "-" {
		// Refuse the target now rather than after reading the whole log.
		if err := atomicfile.Check(o.writeCheckpoint, policy); err != nil {
			return flagError("write-checkpoint", checkpointTargetError(err))
		}
	} else if o.force {
		return flagError("force", errors.New("only applies to --write-checkpoint FILE"))
	}
	opts := audit.VerifyOptions{PageSize: o.pageSize, SkipMetadata: o.skipMetadata}
	secrets, _, err := o.secrets.resolve()
	if err != nil {
		return err
	}
	if len(secrets) > 0 {
		v, err := ingest.NewVerifier(secrets, ingest.DefaultTolerance)
		if err != nil {
			return flagError("webhook-secret", err)
		}
		opts.Signatures = v
	}
	st, err := f.OpenStore(ctx, storeOptions{readOnly: true})
	if err != nil {
		return err
	}
	defer st.Close()
	var signedAgainst bool
	if tl, err := translog.Of(st); err == nil {
		opts.Tree = tl
		vkey := o.key
		if vkey == "" {
			if k, _, err := logKey(ctx, f, tl, o.keyFile, false); err == nil {
				vkey = k.VerifierKey
			}
		}
		opts.CheckpointKey = vkey
		if o.against != "" {
			b, err := os.ReadFile(o.against)
			if err != nil {
				return flagError("against", err)
			}
			if bytes.HasPrefix(b, []byte(checkpoint.OriginPrefix)) {
				signedAgainst = true
				if vkey == "" {
					return flagError("key", errors.New("required to check a signed checkpoint (no local signing key either)"))
				}
				cp, err := checkpoint.Open(b, vkey)
				if err != nil {
					return &exitError{code: exitFailure, msg: fmt.Sprintf("verify: %s: %v", o.against, err)}
				}
				opts.TreeCheckpoints = append(opts.TreeCheckpoints, cp)
				fmt.Fprintf(f.errOut, "signed checkpoint %s: %s, tree size %d\n", o.against, cp.Origin, cp.Size)
			}
		}
	}
	if o.against != "" && !signedAgainst && opts.Tree == nil {
		if b, err := os.ReadFile(o.against); err == nil && bytes.HasPrefix(b, []byte(checkpoint.OriginPrefix)) {
			return &exitError{code: exitFailure, msg: fmt.Sprintf("verify --against %s: a signed log checkpoint: %v", o.against, translog.ErrNotSupported)}
		}
	}
	if o.against != "" && !signedAgainst {
		cp, err := audit.ReadCheckpoint(o.against)
		if errors.Is(err, audit.ErrCheckpointTampered) {
			return &exitError{code: exitFailure, msg: fmt.Sprintf("verify: %v", err)}
		}
		if err != nil {
			return flagError("against", err)
		}
		opts.Against = cp
		fmt.Fprintf(f.errOut, "checkpoint %s: %d streams, head position %d, taken %s, digest %s\n",
			o.against, len(cp.Streams), cp.HeadPosition, cp.CreatedAt, cp.Digest)
	}

	start := time.Now()
	line := progress.New(f.errOut, isTerminal(f.errOut))
	if line.TTY() {
		opts.Progress = func(p audit.Progress) { drawVerifyProgress(line, p) }
	}
	rep, err := audit.Verify(ctx, st, opts)
	line.Finish()
	if err != nil {
		return err
	}
	for _, b := range rep.Damaged {
		fmt.Fprintf(f.out, "DAMAGED %s\n", b)
	}
	for _, p := range rep.Tree.Problems {
		fmt.Fprintf(f.out, "DAMAGED log: %s\n", p)
	}
	summary := fmt.Sprintf("verified %d events in %d streams up to position %d in %s",
		rep.Events, rep.Streams, rep.Head, time.Since(start).Round(time.Millisecond))
	if rep.Tree.Checked {
		summary += fmt.Sprintf("; Merkle tree of %d leaves, %d published and %d held checkpoints confirmed", rep.Tree.Size, rep.Tree.Published, rep.Tree.Held)
	}
	if opts.Against != nil {
		summary += fmt.Sprintf("; %d of %d checkpoint streams hold their checkpointed prefix", rep.CheckpointStreams, len(opts.Against.Streams))
	}
	if opts.Signatures != nil {
		summary += fmt.Sprintf("; %d webhook signatures re-checked, %d signed with a secret not given", rep.Signatures.Checked, rep.Signatures.Unchecked)
	}
	if !rep.Intact() {
		fmt.Fprintln(f.out, summary)
		if len(rep.Damaged) == 0 {
			return &exitError{code: exitFailure, msg: fmt.Sprintf("verify: the log's Merkle tree disagrees with %d checkpoint(s) or the stored tree (above): history was rewritten", len(rep.Tree.Problems))}
		}
		return &exitError{code: exitFailure, msg: fmt.Sprintf("verify: %d of %d streams damaged (first broken event of each above)", len(rep.Damaged), max(rep.Streams, len(rep.Damaged)))}
	}
	// With the checkpoint on stdout, the report goes to stderr.
	report := f.out
	if o.writeCheckpoint == "-" {
		report = f.errOut
	}
	fmt.Fprintln(report, "OK "+summary)
	if o.writeCheckpoint != "" {
		cp := audit.NewCheckpoint(rep, o.now())
		if o.writeCheckpoint == "-" {
			b, err := audit.MarshalCheckpoint(cp)
			if err != nil {
				return err
			}
			if _, err := f.out.Write(b); err != nil {
				return fmt.Errorf("write checkpoint to stdout: %w", err)
			}
		} else if err := audit.WriteCheckpoint(o.writeCheckpoint, cp, policy); err != nil {
			return checkpointTargetError(err)
		}
		fmt.Fprintf(report, "checkpoint written to %s: %d streams, head position %d, digest %s\n",
			o.writeCheckpoint, len(cp.Streams), cp.HeadPosition, cp.Digest)
	}
	return nil
}

// checkpointTargetError explains a refused --write-checkpoint target.
func checkpointTargetError(err error) error {
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: pass --force to replace it", err)
	}
	return err
}

// drawVerifyProgress draws "verify [====  ] 42% N events", throttled but
// always drawing the last page so the bar ends full.
func drawVerifyProgress(line *progress.Line, p audit.Progress) {
	text := func() string {
		frac := 1.0
		if p.Head > 0 {
			frac = float64(p.Position) / float64(p.Head)
		}
		return fmt.Sprintf("verify %s %3.0f%% %d events", progress.Bar(frac, 30), frac*100, p.Events)
	}
	if p.Position >= p.Head {
		line.Draw(text())
		return
	}
	line.Tick(text)
}
