package fc

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/fcaudit/fcaudit/internal/jsonscan"
)

// ErrPayloadInvalid: a body is not a Stripe event fcaudit can file. Every
// error ParseEnvelope returns wraps it; ingest re-exports it as
// ingest.ErrPayloadInvalid (the same value), which the api package maps to
// 400 payload_invalid.
var ErrPayloadInvalid = errors.New("payload invalid")

// MaxIDLength bounds the event id and data.object.id. Stripe guarantees the
// ids it generates never exceed 255 characters; a longer one did not come
// from Stripe, and could not be looked up through GET /v1/events/{id}.
const MaxIDLength = 255

// Bounds of the other identifiers (see CheckShapes).
const (
	MaxTypeLength       = 255
	MaxObjectTypeLength = 100
)

// Placeholders StreamFor uses for an object without an id or an object
// type. They are reserved: an object whose id or type is the placeholder
// itself is refused, so a stream name says which case it is.
const (
	NoObjectID   = "unidentified"
	NoObjectType = "unknown"
)

// ValidID reports whether s has the shape fcaudit accepts for an event id
// or an object id: 1 to MaxIDLength bytes of ASCII letters, digits, '_' and
// '-'. Every id Stripe generates ("evt_1OeX…", "fca_…", "cus_…": a prefix,
// '_' and base-62 characters) has it, and so do the custom ids Stripe's
// Dashboard lets users choose (letters, digits, '-' and '_'). Such an id is
// a path segment as it is (no '/', '%', '?', '#', no dot segments), a file
// name, and a stream name part that cannot be confused with a separator.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidType reports whether s has the shape fcaudit accepts for an event
// type or an object type (data.object.object), max bytes at most: lowercase
// ASCII letters, digits and '_', in segments separated by single dots
// ("financial_connections.account.refreshed_balance", "customer",
// "checkout.session"), as all of Stripe's are. Without '-' an object type
// ends where a stream name's id begins; without ',' and '*' an event type
// is never mistaken for a list or a glob in the type filters.
func ValidType(s string, max int) bool {
	if len(s) == 0 || len(s) > max || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
		case c == '.' && s[i-1] != '.':
		default:
			return false
		}
	}
	return true
}

// CheckShapes checks the identifiers of an envelope ParseStored accepted:
// the event id (ValidID), the type (ValidType), the object type when
// present (ValidType, not NoObjectType) and the object id when present
// (ValidID, not NoObjectID). Its error wraps ErrPayloadInvalid and quotes
// at most the first 64 bytes of the offending value.
func CheckShapes(env Envelope) error {
	switch {
	case !ValidID(env.ID):
		return fmt.Errorf("%w: event id %s: want 1 to %d ASCII letters, digits, '_' or '-'", ErrPayloadInvalid, quoteShort(env.ID), MaxIDLength)
	case !ValidType(env.Type, MaxTypeLength):
		return fmt.Errorf("%w: event type %s: want lowercase letters, digits and '_' in dot-separated segments, at most %d bytes", ErrPayloadInvalid, quoteShort(env.Type), MaxTypeLength)
	case env.ObjectType != "" && (!ValidType(env.ObjectType, MaxObjectTypeLength) || env.ObjectType == NoObjectType):
		return fmt.Errorf("%w: data.object.object %s: want lowercase letters, digits and '_' in dot-separated segments, at most %d bytes, not %q", ErrPayloadInvalid, quoteShort(env.ObjectType), MaxObjectTypeLength, NoObjectType)
	case env.ObjectID != "" && (!ValidID(env.ObjectID) || env.ObjectID == NoObjectID):
		return fmt.Errorf("%w: data.object.id %s: want 1 to %d ASCII letters, digits, '_' or '-', not %q", ErrPayloadInvalid, quoteShort(env.ObjectID), MaxIDLength, NoObjectID)
	}
	return nil
}

// quoteShort quotes s for an error message, cut to 64 bytes.
func quoteShort(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%q… (%d bytes)", s[:64], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// Envelope is the part of a Stripe event that fcaudit needs to file it. The
// rest of the body is kept as raw bytes and never decoded here.
type Envelope struct {
	// ID is the event id ("evt_…"), Type its type, Object always "event".
	ID, Type, Object string
	// Created is the event's created time (Unix seconds, > 0).
	Created int64
	// Livemode and APIVersion come from the event as sent.
	Livemode   bool
	APIVersion string
	// ConnectAccount is the top-level "account" of a Connect event, else "".
	ConnectAccount string
	// ObjectID and ObjectType are data.object.id ("" when the object has
	// none) and data.object.object.
	ObjectID, ObjectType string
}

// ParseEnvelope decodes the envelope of a Stripe event body and checks its
// identifiers' shapes: it is ParseStored followed by CheckShapes. It is
// lenient to unknown fields and accepts any api_version. Every error wraps
// ErrPayloadInvalid. ingest and backfill file events with it.
func ParseEnvelope(body []byte) (Envelope, error) {
	env, err := ParseStored(body)
	if err != nil {
		return Envelope{}, err
	}
	if err := CheckShapes(env); err != nil {
		return Envelope{}, err
	}
	return env, nil
}

// ParseStored decodes the envelope of a Stripe event body without checking
// its identifiers' shapes: audit re-derives the metadata of stored events
// with it, including events stored before the shapes were enforced. It
// returns an error wrapping ErrPayloadInvalid when body is not valid UTF-8,
// not a JSON object, or when object is not "event", id is missing, empty,
// not a string or longer than MaxIDLength (as is data.object.id), type is
// empty, created is missing or not positive, data.object is missing or not
// an object, or — for financial_connections.account.* events —
// data.object.id is empty.
//
// It reads the body in one pass (see envelopeScanner), validating all of it
// as encoding/json would and decoding only the envelope's fields, with
// encoding/json's rules: keys match case-insensitively, and for a key given
// twice the last value wins (null resets a field that encoding/json decodes
// into a pointer: id, created, data, data.object). Both only matter for
// bodies Stripe did not write, and a body reaches ParseEnvelope only after
// its signature was verified.
func ParseStored(body []byte) (Envelope, error) {
	// encoding/json would silently replace invalid UTF-8 with U+FFFD; the
	// stored body is the original bytes, so refuse what we would misread.
	if !utf8.Valid(body) {
		return Envelope{}, fmt.Errorf("%w: body is not valid UTF-8", ErrPayloadInvalid)
	}
	sc := envelopeScanner{Scanner: jsonscan.Scanner{B: body}}
	w, err := sc.scan()
	if err != nil {
		return Envelope{}, fmt.Errorf("%w: body is not a Stripe event: %s", ErrPayloadInvalid, err)
	}
	switch {
	case w.object != "event":
		return Envelope{}, fmt.Errorf("%w: object is %q, want \"event\"", ErrPayloadInvalid, w.object)
	case !w.hasID || w.id == "":
		return Envelope{}, fmt.Errorf("%w: event has no id", ErrPayloadInvalid)
	case len(w.id) > MaxIDLength:
		return Envelope{}, fmt.Errorf("%w: event id is %d bytes long, more than %d", ErrPayloadInvalid, len(w.id), MaxIDLength)
	case w.typ == "":
		return Envelope{}, fmt.Errorf("%w: event has no type", ErrPayloadInvalid)
	case !w.hasCreated:
		return Envelope{}, fmt.Errorf("%w: event has no created time", ErrPayloadInvalid)
	case w.created <= 0:
		// 0 means "unbounded" in store.Filter; a real event is never that old.
		return Envelope{}, fmt.Errorf("%w: event created time %d is not positive", ErrPayloadInvalid, w.created)
	case !w.hasData || !w.hasObj:
		return Envelope{}, fmt.Errorf("%w: event has no data.object", ErrPayloadInvalid)
	case len(w.objID) > MaxIDLength:
		return Envelope{}, fmt.Errorf("%w: data.object.id is %d bytes long, more than %d", ErrPayloadInvalid, len(w.objID), MaxIDLength)
	}
	env := Envelope{
		ID:             w.id,
		Type:           w.typ,
		Object:         w.object,
		Created:        w.created,
		Livemode:       w.livemode,
		APIVersion:     w.apiVersion,
		ConnectAccount: w.account,
		ObjectID:       w.objID,
		ObjectType:     w.objType,
	}
	if IsAccountEvent(env.Type) && env.ObjectID == "" {
		return Envelope{}, fmt.Errorf("%w: %s event has no data.object.id", ErrPayloadInvalid, env.Type)
	}
	return env, nil
}
