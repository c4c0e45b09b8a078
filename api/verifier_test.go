package api_test

// The independent verifier: what an auditor's own program does with
// fcaudit's HTTP answers. It uses the standard library,
// github.com/transparency-dev/merkle (proof, rfc6962) and
// golang.org/x/mod/sumdb/note only — no fcaudit package — so a bug in
// fcaudit's proof code cannot hide behind the same bug in its checks.

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// indepCheckpoint is a checkpoint the independent verifier opened.
type indepCheckpoint struct {
	origin string
	size   uint64
	root   []byte
}

// indepOpen checks a checkpoint note's signature and parses its body
// (origin, size, base64 root — the transparency-dev checkpoint format).
func indepOpen(msg []byte, vkey string) (indepCheckpoint, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return indepCheckpoint{}, err
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return indepCheckpoint{}, err
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 {
		return indepCheckpoint{}, fmt.Errorf("checkpoint has %d lines", len(lines))
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return indepCheckpoint{}, err
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil {
		return indepCheckpoint{}, err
	}
	return indepCheckpoint{origin: lines[0], size: size, root: root}, nil
}

// indepConsistency checks that newer extends older, given the JSON of GET
// /v1/log/proof/consistency?from=older.size&to=newer.size.
func indepConsistency(older, newer indepCheckpoint, answer []byte) error {
	var p struct {
		From, To uint64
		Hashes   [][]byte
	}
	if err := json.Unmarshal(answer, &p); err != nil {
		return err
	}
	if older.origin != newer.origin || p.From != older.size || p.To != newer.size {
		return fmt.Errorf("proof is for %d→%d of another question", p.From, p.To)
	}
	return proof.VerifyConsistency(rfc6962.DefaultHasher, older.size, newer.size, p.Hashes, older.root, newer.root)
}

// indepInclusion checks that the event with this id and body is in cp's
// tree, given the JSON of GET /v1/log/proof/inclusion.
func indepInclusion(cp indepCheckpoint, id string, body []byte, answer []byte) error {
	var p struct {
		LeafIndex uint64   `json:"leaf_index"`
		TreeSize  uint64   `json:"tree_size"`
		LeafData  []byte   `json:"leaf_data"`
		Hashes    [][]byte `json:"hashes"`
	}
	if err := json.Unmarshal(answer, &p); err != nil {
		return err
	}
	var leaf struct {
		ID         string `json:"id"`
		BodySHA256 string `json:"body_sha256"`
	}
	if err := json.Unmarshal(p.LeafData, &leaf); err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	if leaf.ID != id || leaf.BodySHA256 != hex.EncodeToString(sum[:]) {
		return fmt.Errorf("leaf data names %s/%s, not this event", leaf.ID, leaf.BodySHA256)
	}
	if p.TreeSize != cp.size {
		return fmt.Errorf("proof for tree size %d, checkpoint has %d", p.TreeSize, cp.size)
	}
	return proof.VerifyInclusion(rfc6962.DefaultHasher, p.LeafIndex, p.TreeSize, rfc6962.DefaultHasher.HashLeaf(p.LeafData), p.Hashes, cp.root)
}
