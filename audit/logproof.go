package audit

import (
	"context"
	"fmt"
	"strings"

	"github.com/fcaudit/fcaudit/translog"
	"github.com/fcaudit/fcaudit/translog/checkpoint"
)

// BundleLogProof is the evidence bundle's file of Merkle inclusion proofs.
const BundleLogProof = "log_proof.json"

// LogProofs are inclusion proofs of an account's events in the tree of one
// signed checkpoint (log_proof.json).
type LogProofs struct {
	// Checkpoint is the signed checkpoint note, exactly as published.
	Checkpoint string `json:"checkpoint"`
	TreeSize   uint64 `json:"tree_size"`
	// Recipe says how to check a proof, in one line.
	Recipe string          `json:"recipe"`
	Events []LogProofEvent `json:"events"`
	// NotCovered lists events appended after the checkpoint (no proof
	// yet; export again after the next checkpoint).
	NotCovered []string `json:"not_covered,omitempty"`
}

// LogProofEvent is one event's inclusion proof. LeafData (base64 in JSON)
// is the exact leaf bytes; it names the event id and body SHA-256.
type LogProofEvent struct {
	ID        string   `json:"id"`
	BodyFile  string   `json:"body_file"`
	LeafIndex uint64   `json:"leaf_index"`
	LeafData  []byte   `json:"leaf_data"`
	Hashes    [][]byte `json:"hashes"`
}

const logProofRecipe = "RFC 6962/9162: leaf_hash = SHA-256(0x00 || leaf_data); verify the inclusion of leaf_index in tree_size with hashes against the root hash (line 3, base64) of the checkpoint, whose note signature checks with the log's verifier key"

// AddLogProofs attaches to h the inclusion proof of every selected event in
// the tree of l's latest published checkpoint (checked against the tree
// before it is used). Without a published checkpoint it leaves h as is and
// returns translog.ErrNoCheckpoint.
func AddLogProofs(ctx context.Context, h *History, l translog.Log) error {
	latest, err := l.LatestCheckpoint(ctx)
	if err != nil {
		return fmt.Errorf("log proofs: %w", err)
	}
	cp, err := checkpoint.Parse(noteText(latest.Note))
	if err != nil {
		return fmt.Errorf("log proofs: latest checkpoint: %w", err)
	}
	lp := &LogProofs{Checkpoint: string(latest.Note), TreeSize: cp.Size, Recipe: logProofRecipe}
	for _, i := range h.Selected {
		e := &h.Events[i]
		idx, err := l.LeafIndex(e)
		if err != nil {
			return fmt.Errorf("log proofs: %w", err)
		}
		if idx >= cp.Size {
			lp.NotCovered = append(lp.NotCovered, e.ID)
			continue
		}
		p, err := l.InclusionProof(ctx, idx, cp.Size)
		if err != nil {
			return fmt.Errorf("log proofs: event %s: %w", e.ID, err)
		}
		leaf := translog.LeafData(e)
		if err := checkpoint.VerifyInclusion(cp, idx, leaf, p); err != nil {
			return fmt.Errorf("log proofs: event %s does not check against the checkpoint: %w", e.ID, err)
		}
		if p == nil {
			p = [][]byte{}
		}
		lp.Events = append(lp.Events, LogProofEvent{ID: e.ID, BodyFile: bundleBodyFile(e), LeafIndex: idx, LeafData: leaf, Hashes: p})
	}
	h.LogProofs = lp
	return nil
}

// logProofReadme is the README section on log_proof.json.
func logProofReadme(lp *LogProofs) string {
	var b strings.Builder
	fmt.Fprintf(&b, `
Merkle inclusion proofs (log_proof.json)
----------------------------------------
fcaudit's whole log is a Merkle tree (RFC 6962 / RFC 9162), one leaf per stored
event. log_proof.json proves that %d selected event(s) are leaves of the tree
signed by its checkpoint (tree size %d)`, len(lp.Events), lp.TreeSize)
	if len(lp.NotCovered) > 0 {
		fmt.Fprintf(&b, "; %d event(s) arrived after that checkpoint\n(not_covered: export again after the next one)", len(lp.NotCovered))
	}
	b.WriteString(`.
A checkpoint an auditor kept earlier is connected to this one by a consistency
proof: fcaudit log verify-consistency OLD NEW --key KEY, or GET
/v1/log/proof/consistency?from=OLD_SIZE&to=NEW_SIZE checked as in fcaudit's
README ("Checking the log without fcaudit").

5. Check each proof with the Python standard library (leaf data is base64;
   its body_sha256 must be the body file's SHA-256; the root is line 3 of the
   checkpoint):

     import base64, hashlib, json
     H = lambda b: hashlib.sha256(b).digest()
     p = json.load(open("log_proof.json"))
     lines = p["checkpoint"].split("\n")
     size, root = int(lines[1]), base64.b64decode(lines[2])
     for e in p["events"]:
         leaf = base64.b64decode(e["leaf_data"])
         meta = json.loads(leaf)
         assert meta["id"] == e["id"]
         assert meta["body_sha256"] == H(open(e["body_file"], "rb").read()).hex()
         fn, sn, r = e["leaf_index"], size - 1, H(b"\0" + leaf)
         for h in map(base64.b64decode, e["hashes"]):   # RFC 9162 2.1.3.2
             assert sn > 0
             if fn & 1 or fn == sn:
                 r = H(b"\1" + h + r)
                 while not fn & 1 and fn != 0:
                     fn, sn = fn >> 1, sn >> 1
             else:
                 r = H(b"\1" + r + h)
             fn, sn = fn >> 1, sn >> 1
         assert sn == 0 and r == root, e["id"]
     print(len(p["events"]), "events proven in the tree of size", size)

6. Check the checkpoint's signature with the log's verifier key (fcaudit log
   key), e.g. in Go with golang.org/x/mod/sumdb/note:
   note.Open([]byte(checkpoint), note.VerifierList(note.NewVerifier(key))), or
   with github.com/transparency-dev/merkle/proof.VerifyInclusion for step 5.
`)
	return b.String()
}
