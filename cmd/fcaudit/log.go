package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/translog"
	"github.com/fcaudit/fcaudit/translog/checkpoint"
)

// logKeyFlag is shared by serve and the log commands.
const logKeyFlag = "log-key-file"

type logOptions struct {
	keyFile string
}

func newLogCommand(f *factory) *cobra.Command {
	o := &logOptions{}
	cmd := &cobra.Command{
		Use:   "log",
		Short: "The verifiable log: signed checkpoints, inclusion and consistency proofs",
		Long: `The event log is also a Merkle tree (RFC 6962 / RFC 9162): one leaf per stored
event, in store order. serve signs its root as a checkpoint (the transparency-dev
checkpoint format, an Ed25519-signed note, origin "fcaudit/<log id>") every
--checkpoint-interval and keeps every checkpoint in the log.

An auditor keeps a checkpoint (fcaudit log checkpoint, or GET /v1/log/checkpoint)
and the verifier key (fcaudit log key). Later, fcaudit log verify-consistency
OLD NEW proves that the newer history extends the one OLD signed, and
fcaudit log prove shows one event is in it; both check with the standard
transparency-dev/merkle verifier, which anyone can run without fcaudit
(README "Checking the log without fcaudit").

On EventStoreDB the tree trails the log by a short interval (serve extends it
about every second) instead of being written with each append; a checkpoint
covers what the tree covers. Give every serve replica the same
--log-key-file there, so that all checkpoints verify with one key.`,
	}
	cmd.PersistentFlags().StringVar(&o.keyFile, logKeyFlag, os.Getenv("FCAUDIT_LOG_KEY_FILE"), "checkpoint signing key (note signer format); default DATA_DIR/"+checkpoint.DefaultKeyFile+", generated when missing (env FCAUDIT_LOG_KEY_FILE)")
	cmd.AddCommand(newLogKeyCommand(f, o), newLogCheckpointCommand(f, o), newLogProveCommand(f, o), newLogVerifyConsistencyCommand(f, o))
	return cmd
}

// openLog opens the event log and its verifiable-log view.
func openLog(ctx context.Context, f *factory, readOnly bool) (store.Store, translog.Log, error) {
	st, err := f.OpenStore(ctx, storeOptions{readOnly: readOnly})
	if err != nil {
		return nil, nil, err
	}
	l, err := translog.Of(st)
	if err != nil {
		st.Close()
		return nil, nil, &exitError{code: exitFailure, msg: err.Error()}
	}
	return st, l, nil
}

// logKey loads the checkpoint signing key: keyFile when given (it must
// exist), else DATA_DIR/log-signing.key, generated when create is set.
func logKey(ctx context.Context, f *factory, l translog.Log, keyFile string, create bool) (checkpoint.Key, string, error) {
	id, err := l.LogID(ctx)
	if err != nil {
		return checkpoint.Key{}, "", err
	}
	origin := checkpoint.Origin(id)
	path := keyFile
	if path == "" {
		path = filepath.Join(f.dataDir, checkpoint.DefaultKeyFile)
	} else {
		create = false
	}
	k, err := checkpoint.LoadOrCreateKey(path, origin, create)
	if err != nil {
		if keyFile != "" {
			return k, "", flagError(logKeyFlag, err)
		}
		return k, "", err
	}
	return k, origin, nil
}

func newLogKeyCommand(f *factory, o *logOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "key",
		Short: "Print the checkpoint verifier key (note verifier format name+hash+base64)",
		Long: `key prints the verifier key of the checkpoint signing key, generating the
signing key in DATA_DIR (0600) when there is none yet. Hand it to auditors: it
is public, and every checkpoint verifies against it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, l, err := openLog(ctx, f, true)
			if err != nil {
				return err
			}
			defer st.Close()
			k, _, err := logKey(ctx, f, l, o.keyFile, true)
			if err != nil {
				return err
			}
			fmt.Fprintln(f.out, k.VerifierKey)
			return nil
		},
	}
}

func newLogCheckpointCommand(f *factory, o *logOptions) *cobra.Command {
	var publish bool
	cmd := &cobra.Command{
		Use:   "checkpoint",
		Short: "Print the latest signed checkpoint (with --publish, sign a new one first)",
		Long: `checkpoint prints the latest checkpoint serve published: a signed note of the
form

  fcaudit/<log id>
  <tree size>
  <base64 root hash>

  — <key name> <base64 signature>

Keep it outside fcaudit (it is the evidence); it is also served without a
token at GET /v1/log/checkpoint. --publish signs and keeps a checkpoint of the
current tree first (needs the signing key; works while serve runs).`,
		Example: `  fcaudit log checkpoint > /mnt/worm/fcaudit-$(date +%F).checkpoint
  fcaudit log checkpoint --publish`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, l, err := openLog(ctx, f, !publish)
			if err != nil {
				return err
			}
			defer st.Close()
			var cp translog.Checkpoint
			if publish {
				k, origin, err := logKey(ctx, f, l, o.keyFile, true)
				if err != nil {
					return err
				}
				p := &checkpoint.Publisher{Log: l, Key: k, Origin: origin}
				if cp, _, err = p.PublishOnce(ctx); err != nil {
					return err
				}
			} else if cp, err = l.LatestCheckpoint(ctx); errors.Is(err, translog.ErrNoCheckpoint) {
				return &exitError{code: exitFailure, msg: "no checkpoint published yet: serve publishes one every --checkpoint-interval, or run 'fcaudit log checkpoint --publish'"}
			} else if err != nil {
				return err
			}
			_, err = f.out.Write(cp.Note)
			return err
		},
	}
	cmd.Flags().BoolVar(&publish, "publish", false, "sign and keep a checkpoint of the current tree first")
	return cmd
}

// readCheckpoint reads a signed checkpoint file and checks it with the
// verifier key given, else with the local signing key's.
func readCheckpoint(ctx context.Context, f *factory, l translog.Log, path, vkey, keyFile string) (checkpoint.Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return checkpoint.Checkpoint{}, &usageError{fmt.Errorf("checkpoint: %w", err)}
	}
	if vkey == "" {
		k, _, err := logKey(ctx, f, l, keyFile, false)
		if err != nil {
			return checkpoint.Checkpoint{}, &usageError{fmt.Errorf("no --key given and no local signing key to check %s with: %w", path, err)}
		}
		vkey = k.VerifierKey
	}
	cp, err := checkpoint.Open(b, vkey)
	if err != nil {
		return cp, &exitError{code: exitFailure, msg: fmt.Sprintf("%s: %v", path, err)}
	}
	return cp, nil
}

// inclusionProof is the JSON fcaudit log prove prints (the shape of GET
// /v1/log/proof/inclusion plus the event and the checkpoint).
type inclusionProof struct {
	Event      string   `json:"event"`
	LeafIndex  uint64   `json:"leaf_index"`
	TreeSize   uint64   `json:"tree_size"`
	LeafData   []byte   `json:"leaf_data"`
	Hashes     [][]byte `json:"hashes"`
	Checkpoint string   `json:"checkpoint"`
}

func newLogProveCommand(f *factory, o *logOptions) *cobra.Command {
	var event, cpFile, vkey string
	cmd := &cobra.Command{
		Use:   "prove --event evt_… [--checkpoint FILE]",
		Short: "Prove that an event is in the log signed by a checkpoint",
		Long: `prove prints (JSON) the inclusion proof of an event in the tree of a signed
checkpoint — FILE, checked with --key or the local signing key, or else the
latest published checkpoint — after checking it: the leaf data (base64; it
names the event id and its body SHA-256), the leaf index, the tree size, the
proof hashes (base64) and the checkpoint note. Exit status 1 when the event is
not covered by the checkpoint yet or the proof does not check.`,
		Example: `  fcaudit log prove --event evt_1NAbc --checkpoint /mnt/worm/fcaudit-2026-11-30.checkpoint --key 'fcaudit/…+…+…'`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if event == "" {
				return flagError("event", errors.New("required"))
			}
			st, l, err := openLog(ctx, f, true)
			if err != nil {
				return err
			}
			defer st.Close()
			var cp checkpoint.Checkpoint
			if cpFile != "" {
				if cp, err = readCheckpoint(ctx, f, l, cpFile, vkey, o.keyFile); err != nil {
					return err
				}
			} else {
				latest, err := l.LatestCheckpoint(ctx)
				if err != nil {
					return err
				}
				key := vkey
				if key == "" {
					if k, _, err := logKey(ctx, f, l, o.keyFile, false); err == nil {
						key = k.VerifierKey
					}
				}
				if key != "" {
					cp, err = checkpoint.Open(latest.Note, key)
				} else {
					// No key to check it with: the kept note is used as is.
					cp, err = checkpoint.Parse(noteText(latest.Note))
					cp.Note = latest.Note
				}
				if err != nil {
					return &exitError{code: exitFailure, msg: fmt.Sprintf("latest checkpoint: %v", err)}
				}
			}
			ev, err := st.EventByID(ctx, event)
			if err != nil {
				return &exitError{code: exitFailure, msg: err.Error()}
			}
			idx, err := l.LeafIndex(&ev)
			if err != nil {
				return err
			}
			if idx >= cp.Size {
				return &exitError{code: exitFailure, msg: fmt.Sprintf("event %s is leaf %d, not covered by the checkpoint of tree size %d yet", event, idx, cp.Size)}
			}
			p, err := l.InclusionProof(ctx, idx, cp.Size)
			if err != nil {
				return err
			}
			leaf := translog.LeafData(&ev)
			if err := checkpoint.VerifyInclusion(cp, idx, leaf, p); err != nil {
				return &exitError{code: exitFailure, msg: fmt.Sprintf("event %s: the proof does not match the checkpoint: %v", event, err)}
			}
			enc := json.NewEncoder(f.out)
			enc.SetIndent("", "  ")
			if err := enc.Encode(inclusionProof{Event: event, LeafIndex: idx, TreeSize: cp.Size, LeafData: leaf, Hashes: p, Checkpoint: string(cp.Note)}); err != nil {
				return err
			}
			fmt.Fprintf(f.errOut, "OK event %s is leaf %d of the tree of size %d (root %s)\n", event, idx, cp.Size, base64.StdEncoding.EncodeToString(cp.Root))
			return nil
		},
	}
	cmd.Flags().StringVar(&event, "event", "", "the Stripe event id (evt_…)")
	cmd.Flags().StringVar(&cpFile, "checkpoint", "", "a signed checkpoint `FILE` (default: the latest published)")
	cmd.Flags().StringVar(&vkey, "key", "", "verifier key to check --checkpoint with (default: the local signing key's)")
	return cmd
}

// noteText returns a signed note's text (up to the blank line before the
// signatures).
func noteText(msg []byte) string {
	s := string(msg)
	if i := strings.LastIndex(s, "\n\n"); i >= 0 {
		return s[:i+1]
	}
	return s
}

func newLogVerifyConsistencyCommand(f *factory, o *logOptions) *cobra.Command {
	var vkey string
	cmd := &cobra.Command{
		Use:   "verify-consistency OLD_CHECKPOINT NEW_CHECKPOINT --key VERIFIER_KEY",
		Short: "Prove that the history signed by NEW extends the one signed by OLD",
		Long: `verify-consistency checks both checkpoint signatures with the verifier key, asks
the log for the RFC 6962 consistency proof between their tree sizes and checks
it with the transparency-dev/merkle verifier. Exit status 0 when NEW's history
extends OLD's; 1 when it does not (history was rewritten, truncated or forked)
or a signature is wrong; 2 for a bad command line.`,
		Example: `  fcaudit log checkpoint > new.checkpoint
  fcaudit log verify-consistency /mnt/worm/old.checkpoint new.checkpoint --key "$(cat fcaudit.vkey)"`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if vkey == "" {
				return flagError("key", errors.New("required: the verifier key the auditor holds (fcaudit log key)"))
			}
			st, l, err := openLog(ctx, f, true)
			if err != nil {
				return err
			}
			defer st.Close()
			older, err := readCheckpoint(ctx, f, l, args[0], vkey, o.keyFile)
			if err != nil {
				return err
			}
			newer, err := readCheckpoint(ctx, f, l, args[1], vkey, o.keyFile)
			if err != nil {
				return err
			}
			if older.Size > newer.Size {
				return &usageError{fmt.Errorf("%s has the larger tree (%d > %d): give the older checkpoint first", args[0], older.Size, newer.Size)}
			}
			p, err := l.ConsistencyProof(ctx, older.Size, newer.Size)
			if err != nil {
				return &exitError{code: exitFailure, msg: fmt.Sprintf("consistency proof %d → %d: %v", older.Size, newer.Size, err)}
			}
			if err := checkpoint.VerifyConsistency(older, newer, p); err != nil {
				return &exitError{code: exitFailure, msg: err.Error()}
			}
			fmt.Fprintf(f.out, "OK the tree of size %d extends the tree of size %d (%d proof hashes)\n", newer.Size, older.Size, len(p))
			return nil
		},
	}
	cmd.Flags().StringVar(&vkey, "key", "", "the log's checkpoint verifier key (name+hash+base64, from fcaudit log key)")
	return cmd
}

// startCheckpoints starts serve's checkpoint publisher when the backend is
// a verifiable log; stop publishes a last checkpoint and waits (idempotent).
// On other backends it returns a nil Log and a no-op stop.
func startCheckpoints(ctx context.Context, f *factory, st store.Store, o *serveOptions, log *slog.Logger) (translog.Log, func(), error) {
	l, err := translog.Of(st)
	if err != nil {
		log.Info("no signed checkpoints: " + err.Error())
		return nil, func() {}, nil
	}
	k, origin, err := logKey(ctx, f, l, o.logKeyFile, true)
	if err != nil {
		return nil, nil, err
	}
	p := &checkpoint.Publisher{Log: l, Key: k, Origin: origin, Interval: o.checkpointInterval, Logger: log}
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(pctx)
	}()
	log.Info("publishing signed checkpoints", "origin", origin, "every", o.checkpointInterval, "verifier_key", k.VerifierKey)
	var once sync.Once
	return l, func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}, nil
}

// logBuildInterval is how often serve extends a trailing Merkle tree
// (EventStoreDB).
const logBuildInterval = time.Second

// startLogBuilder starts the Merkle tree builder of a backend whose tree
// trails the log (EventStoreDB); the embedded store extends its tree in
// every append and has none. stop ends it and waits.
func startLogBuilder(ctx context.Context, st store.Store, log *slog.Logger) (stop func()) {
	b, ok := st.(interface {
		RunLogBuilder(ctx context.Context, interval time.Duration) error
	})
	if !ok {
		return func() {}
	}
	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.RunLogBuilder(bctx, logBuildInterval)
	}()
	log.Info("extending the log's Merkle tree in the background", "every", logBuildInterval)
	return func() {
		cancel()
		<-done
	}
}
