package audit

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fcaudit/fcaudit/internal/atomicfile"
	"github.com/fcaudit/fcaudit/projections"
	"github.com/fcaudit/fcaudit/store"
)

// Bundle file names.
const (
	BundleReadme   = "README.txt"
	BundleRecords  = "records.ndjson"
	BundleCSV      = "events.csv"
	BundleTimeline = "status_timeline.json"
	BundleProof    = "chain_proof.json"
	BundleManifest = "manifest.json"
	BundleBodies   = "bodies"
)

// Manifest lists every file of a bundle with its SHA-256 (manifest.json).
type Manifest struct {
	Version     int              `json:"version"`
	Account     string           `json:"account"`
	Stream      string           `json:"stream"`
	GeneratedAt string           `json:"generated_at"`
	Selection   ManifestSelector `json:"selection"`
	Events      int              `json:"events"`
	StreamHead  *ChainLink       `json:"stream_head"`
	ChainIntact bool             `json:"chain_intact"`
	// Status is the account's status as of the selection's created_until
	// (now, without one): GET /v1/accounts/{id}?as_of=created_until.
	// Absent when the account had no event by then.
	Status *ManifestStatus `json:"status,omitempty"`
	Files  []ManifestFile  `json:"files"`
}

// ManifestSelector records the export's selection.
type ManifestSelector struct {
	CreatedSince string   `json:"created_since,omitempty"`
	CreatedUntil string   `json:"created_until,omitempty"`
	Types        []string `json:"types,omitempty"`
}

// ManifestStatus summarises History.Status in a manifest.
type ManifestStatus struct {
	Status      string               `json:"status"`
	LastEvent   projections.EventRef `json:"last_event"`
	EventsCount int64                `json:"events_count"`
}

// ManifestFile is one file of a bundle.
type ManifestFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Bytes  int    `json:"bytes"`
}

// BundleResult describes a written bundle.
type BundleResult struct {
	Dir string
	// ManifestSHA256 is the hex SHA-256 of manifest.json: the one value an
	// auditor records to pin the whole bundle.
	ManifestSHA256 string
	Files          int
}

// WriteBundle writes an evidence bundle for h into dir, which must not
// exist or be empty: README.txt, records.ndjson, events.csv,
// status_timeline.json, chain_proof.json, bodies/ (every revision's exact
// body bytes) and manifest.json (SHA-256 of every other file). now is
// recorded as generated_at. The bundle is built in a temporary directory
// beside dir and renamed into place (atomicfile.WriteDir): dir is either
// absent or complete, never partial. Files are 0600, directories 0700.
func WriteBundle(h *History, dir string, now time.Time) (*BundleResult, error) {
	if err := prepareDir(dir); err != nil {
		return nil, fmt.Errorf("write bundle: %w", err)
	}
	files, err := bundleFiles(h, now)
	if err != nil {
		return nil, err
	}
	err = atomicfile.WriteDir(dir, func(tmp string) error {
		if err := os.Mkdir(filepath.Join(tmp, BundleBodies), atomicfile.DirMode); err != nil {
			return err
		}
		for name, b := range files {
			if err := writeNew(filepath.Join(tmp, filepath.FromSlash(name)), b); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("write bundle: %w", err)
	}
	sum := sha256.Sum256(files[BundleManifest])
	return &BundleResult{Dir: dir, ManifestSHA256: hex.EncodeToString(sum[:]), Files: len(files)}, nil
}

// WriteBundleZip writes the same evidence bundle as WriteBundle as one zip
// archive to w (a download), every file under the folder prefix (e.g.
// "evidence-fca_…/"; "" for none), manifest.json first. Dir of the result is
// prefix. Nothing is written to w when building the bundle fails.
func WriteBundleZip(w io.Writer, h *History, prefix string, now time.Time) (*BundleResult, error) {
	files, err := bundleFiles(h, now)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		if name != BundleManifest {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	names = append([]string{BundleManifest}, names...)
	zw := zip.NewWriter(w)
	for _, name := range names {
		f, err := zw.CreateHeader(&zip.FileHeader{Name: prefix + name, Method: zip.Deflate, Modified: now.UTC()})
		if err != nil {
			return nil, fmt.Errorf("write bundle zip: %s: %w", name, err)
		}
		if _, err := f.Write(files[name]); err != nil {
			return nil, fmt.Errorf("write bundle zip: %s: %w", name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("write bundle zip: %w", err)
	}
	sum := sha256.Sum256(files[BundleManifest])
	return &BundleResult{Dir: prefix, ManifestSHA256: hex.EncodeToString(sum[:]), Files: len(files)}, nil
}

// bundleFiles builds every file of h's bundle, manifest.json included, by
// its slash-separated path.
func bundleFiles(h *History, now time.Time) (map[string][]byte, error) {
	files := map[string][]byte{}
	var buf bytes.Buffer
	if err := h.WriteNDJSON(&buf); err != nil {
		return nil, err
	}
	files[BundleRecords] = bytes.Clone(buf.Bytes())
	buf.Reset()
	if err := h.WriteCSV(&buf); err != nil {
		return nil, err
	}
	files[BundleCSV] = bytes.Clone(buf.Bytes())
	bodyFile := bundleBodyFile
	for i := range h.Events {
		files[bodyFile(&h.Events[i])] = h.Events[i].Data
	}
	var err error
	if files[BundleTimeline], err = marshalIndent(h.Timeline()); err != nil {
		return nil, fmt.Errorf("write bundle: timeline: %w", err)
	}
	proof := h.ChainProof(bodyFile)
	if files[BundleProof], err = marshalIndent(proof); err != nil {
		return nil, fmt.Errorf("write bundle: chain proof: %w", err)
	}
	readme := bundleReadme(h, &proof)
	if h.LogProofs != nil {
		if files[BundleLogProof], err = marshalIndent(h.LogProofs); err != nil {
			return nil, fmt.Errorf("write bundle: log proof: %w", err)
		}
		readme += logProofReadme(h.LogProofs)
	}
	files[BundleReadme] = []byte(readme)

	m := Manifest{Version: 1, Account: h.Account, Stream: h.Stream, GeneratedAt: now.UTC().Format(time.RFC3339),
		Events: len(h.Selected), StreamHead: proof.Head, ChainIntact: proof.Intact}
	if st := h.Status; st != nil {
		m.Status = &ManifestStatus{Status: st.Status, LastEvent: st.LastEvent, EventsCount: st.EventsCount}
	}
	if h.Options.Since != 0 {
		m.Selection.CreatedSince = time.Unix(h.Options.Since, 0).UTC().Format(time.RFC3339)
	}
	if h.Options.Until != 0 {
		m.Selection.CreatedUntil = time.Unix(h.Options.Until, 0).UTC().Format(time.RFC3339)
	}
	m.Selection.Types = h.Options.Types
	for name, b := range files {
		sum := sha256.Sum256(b)
		m.Files = append(m.Files, ManifestFile{Path: name, SHA256: hex.EncodeToString(sum[:]), Bytes: len(b)})
	}
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path })
	if files[BundleManifest], err = marshalIndent(m); err != nil {
		return nil, fmt.Errorf("write bundle: manifest: %w", err)
	}
	return files, nil
}

// bundleBodyFile names an event's body file inside a bundle: the revision
// makes the name unique; the id, cut short, is for people. A name stays far
// below NAME_MAX (255 bytes) whatever the id's length.
func bundleBodyFile(e *store.RecordedEvent) string {
	return fmt.Sprintf("%s/%06d_%s.json", BundleBodies, e.Revision, safeName(e.ID, maxBodyNameID))
}

// prepareDir checks that dir is absent or empty (a bundle never mixes with
// files that are not in its manifest) and creates its parent directories
// (0700), before any work is done.
func prepareDir(dir string) error {
	if err := atomicfile.CheckDir(dir); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s is not empty: choose a new directory for the bundle", dir)
		}
		return err
	}
	return os.MkdirAll(filepath.Dir(filepath.Clean(dir)), atomicfile.DirMode)
}

// writeNew creates path (which must not exist) with mode 0600 and data;
// WriteDir fsyncs it.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, atomicfile.FileMode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// maxBodyNameID bounds the id part of a body file's name.
const maxBodyNameID = 100

// safeName keeps ids usable as file names (Stripe ids already are), at
// most max bytes of them.
func safeName(s string, max int) string {
	if len(s) > max {
		s = s[:max]
	}
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, s)
}

func bundleReadme(h *History, p *ChainProof) string {
	var b strings.Builder
	fmt.Fprintf(&b, `fcaudit evidence bundle
=======================

Account: %s
Stream:  %s
Events:  %d selected of %d in the stream
`, h.Account, h.Stream, len(h.Selected), len(h.Events))
	if p.Head != nil {
		fmt.Fprintf(&b, "Head:    revision %d, chain_hash %s\n", p.Head.Revision, p.Head.ChainHash)
	}
	asOf := "now"
	if h.Options.Until != 0 {
		asOf = "as of " + time.Unix(h.Options.Until, 0).UTC().Format(time.RFC3339)
	}
	if st := h.Status; st != nil {
		fmt.Fprintf(&b, "Status:  %s %s (from %s, created %s; %d events by then)\n", st.Status, asOf,
			st.LastEvent.ID, time.Unix(st.LastEvent.Created, 0).UTC().Format(time.RFC3339), st.EventsCount)
	} else {
		fmt.Fprintf(&b, "Status:  none %s (no event created by then)\n", asOf)
	}
	if p.Intact {
		b.WriteString("Chain:   intact when exported (every body hash and chain value recomputed)\n")
	} else {
		fmt.Fprintf(&b, "Chain:   BROKEN when exported: %s\n", p.FirstBroken)
	}
	b.WriteString(`
Files
-----
manifest.json         SHA-256 and size of every other file. Record the SHA-256
                      of manifest.json itself (fcaudit printed it) in your ticket.
records.ndjson        the selected events, one JSON record per line: metadata,
                      signature provenance and the Stripe payload (whitespace
                      compacted; the exact bytes are in bodies/).
events.csv            one row per selected event: main fields and the account
                      status after the event.
status_timeline.json  the account status after each selected event ("snapshot":
                      false marks an older event that arrived late and did not
                      change the status).
chain_proof.json      every revision of the stream (the chain needs all of them):
                      id, received_at, body SHA-256 and chain hash, with the recipe.
bodies/               each revision's body exactly as Stripe sent it.

Checking the bundle
-------------------
1. sha256sum every file and compare with manifest.json (for example:
   jq -r '.files[] | "\(.sha256)  \(.path)"' manifest.json | sha256sum -c).
2. For each link of chain_proof.json, sha256sum its body_file and compare with
   body_sha256.
3. Recompute the chain from the seed with the recipe in chain_proof.json; every
   chain_hash must match. In Python:

     import hashlib, json
     p = json.load(open("chain_proof.json"))
     prev = hashlib.sha256(p["stream"].encode()).digest()
     for l in p["links"]:
         body = hashlib.sha256(open(l["body_file"], "rb").read()).digest()
         assert body.hex() == l["body_sha256"], l["id"]
         prev = hashlib.sha256(prev + body + l["id"].encode() + b"\0" + l["received_at"].encode()).digest()
         assert prev.hex() == l["chain_hash"], l["id"]
     print("chain intact, head", prev.hex())

4. Compare the head chain_hash (or any link's) with a checkpoint kept outside
   fcaudit (fcaudit verify --write-checkpoint): the same revision must carry the
   same chain_hash.
`)
	return b.String()
}
