package sqlite

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/fcaudit/fcaudit/store"
)

// Provenance is stored in the provenance column in one of two forms:
//
//   - schema version 1 wrote JSON (always starting with '{');
//   - since version 2 a compact binary form, provVersion followed by
//     uvarint-length-prefixed SignatureHeader, varint SignedAt,
//     uvarint-length-prefixed SecretFingerprint, varint VerifiedAt Unix
//     seconds, uvarint VerifiedAt nanoseconds and uvarint-length-prefixed
//     Note.
//
// Reads accept both, so files written before the change read as before;
// decoding the binary form costs a fraction of a JSON decode on every row
// read. VerifiedAt decodes as UTC.
const provVersion = 0x01

var errBadProvenance = errors.New("malformed provenance")

func encodeProvenance(p *store.Provenance) []byte {
	b := make([]byte, 0, 1+3*binary.MaxVarintLen64+len(p.SignatureHeader)+len(p.SecretFingerprint)+len(p.Note)+4*binary.MaxVarintLen64)
	b = append(b, provVersion)
	b = binary.AppendUvarint(b, uint64(len(p.SignatureHeader)))
	b = append(b, p.SignatureHeader...)
	b = binary.AppendVarint(b, p.SignedAt)
	b = binary.AppendUvarint(b, uint64(len(p.SecretFingerprint)))
	b = append(b, p.SecretFingerprint...)
	b = binary.AppendVarint(b, p.VerifiedAt.Unix())
	b = binary.AppendUvarint(b, uint64(p.VerifiedAt.Nanosecond()))
	b = binary.AppendUvarint(b, uint64(len(p.Note)))
	b = append(b, p.Note...)
	return b
}

// decodeProvenance decodes either stored form (see provVersion).
func decodeProvenance(b []byte) (*store.Provenance, error) {
	p := new(store.Provenance)
	if len(b) > 0 && b[0] == '{' {
		if err := json.Unmarshal(b, p); err != nil {
			return nil, err
		}
		return p, nil
	}
	if len(b) == 0 || b[0] != provVersion {
		return nil, errBadProvenance
	}
	d := provDecoder{b: b[1:]}
	p.SignatureHeader = d.str()
	p.SignedAt = d.varint()
	p.SecretFingerprint = d.str()
	sec := d.varint()
	nsec := d.uvarint()
	p.Note = d.str()
	if d.err || len(d.b) != 0 || nsec >= 1e9 {
		return nil, errBadProvenance
	}
	p.VerifiedAt = time.Unix(sec, int64(nsec)).UTC()
	return p, nil
}

type provDecoder struct {
	b   []byte
	err bool
}

func (d *provDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err, d.b = true, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *provDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err, d.b = true, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *provDecoder) str() string {
	n := d.uvarint()
	if d.err || n > uint64(len(d.b)) {
		d.err, d.b = true, nil
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// provenanceErr wraps a decode failure with the event it belongs to.
func provenanceErr(id string, err error) error {
	return fmt.Errorf("event %s: decode provenance: %w", id, err)
}
