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

// ParseEnvelope decodes the envelope of a Stripe event body. It is lenient to
// unknown fields and accepts any api_version. It returns an error wrapping
// ErrPayloadInvalid when body is not valid UTF-8, not a JSON object, or when
// object is not "event", id is missing, empty, not a string or longer than
// MaxIDLength (as is data.object.id), type is empty,
// created is missing or not positive, data.object is missing or not an
// object, or — for financial_connections.account.* events — data.object.id
// is empty.
//
// It reads the body in one pass (see envelopeScanner), validating all of it
// as encoding/json would and decoding only the envelope's fields, with
// encoding/json's rules: keys match case-insensitively, and for a key given
// twice the last value wins (null resets a field that encoding/json decodes
// into a pointer: id, created, data, data.object). Both only matter for
// bodies Stripe did not write, and a body reaches ParseEnvelope only after
// its signature was verified.
func ParseEnvelope(body []byte) (Envelope, error) {
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
