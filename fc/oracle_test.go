package fc

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// oldEnvelopeWire is what ParseEnvelope decodes: only these fields, so unknown
// and newer fields cost nothing and never fail the decode.
type oldEnvelopeWire struct {
	ID         *string `json:"id"`
	Object     string  `json:"object"`
	Type       string  `json:"type"`
	Created    *int64  `json:"created"`
	Livemode   bool    `json:"livemode"`
	APIVersion string  `json:"api_version"`
	Account    string  `json:"account"`
	Data       *struct {
		Object *struct {
			ID     string `json:"id"`
			Object string `json:"object"`
		} `json:"object"`
	} `json:"data"`
}

// parseEnvelopeOracle is ParseEnvelope as it was before the single-pass
// scanner: json.Unmarshal into a small struct. FuzzParseEnvelope checks the
// scanner against it and BenchmarkParseEnvelope compares their cost.
func parseEnvelopeOracle(body []byte) (Envelope, error) {
	// encoding/json would silently replace invalid UTF-8 with U+FFFD; the
	// stored body is the original bytes, so refuse what we would misread.
	if !utf8.Valid(body) {
		return Envelope{}, fmt.Errorf("%w: body is not valid UTF-8", ErrPayloadInvalid)
	}
	var w oldEnvelopeWire
	if err := json.Unmarshal(body, &w); err != nil {
		return Envelope{}, fmt.Errorf("%w: body is not a Stripe event: %s", ErrPayloadInvalid, oldJSONProblem(err))
	}
	switch {
	case w.Object != "event":
		return Envelope{}, fmt.Errorf("%w: object is %q, want \"event\"", ErrPayloadInvalid, w.Object)
	case w.ID == nil || *w.ID == "":
		return Envelope{}, fmt.Errorf("%w: event has no id", ErrPayloadInvalid)
	case len(*w.ID) > MaxIDLength:
		return Envelope{}, fmt.Errorf("%w: event id is %d bytes long, more than %d", ErrPayloadInvalid, len(*w.ID), MaxIDLength)
	case w.Type == "":
		return Envelope{}, fmt.Errorf("%w: event has no type", ErrPayloadInvalid)
	case w.Created == nil:
		return Envelope{}, fmt.Errorf("%w: event has no created time", ErrPayloadInvalid)
	case *w.Created <= 0:
		// 0 means "unbounded" in store.Filter; a real event is never that old.
		return Envelope{}, fmt.Errorf("%w: event created time %d is not positive", ErrPayloadInvalid, *w.Created)
	case w.Data == nil || w.Data.Object == nil:
		return Envelope{}, fmt.Errorf("%w: event has no data.object", ErrPayloadInvalid)
	case len(w.Data.Object.ID) > MaxIDLength:
		return Envelope{}, fmt.Errorf("%w: data.object.id is %d bytes long, more than %d", ErrPayloadInvalid, len(w.Data.Object.ID), MaxIDLength)
	}
	env := Envelope{
		ID:             *w.ID,
		Type:           w.Type,
		Object:         w.Object,
		Created:        *w.Created,
		Livemode:       w.Livemode,
		APIVersion:     w.APIVersion,
		ConnectAccount: w.Account,
		ObjectID:       w.Data.Object.ID,
		ObjectType:     w.Data.Object.Object,
	}
	if IsAccountEvent(env.Type) && env.ObjectID == "" {
		return Envelope{}, fmt.Errorf("%w: %s event has no data.object.id", ErrPayloadInvalid, env.Type)
	}
	return env, nil
}

// jsonProblem describes a decode error without quoting the body.
func oldJSONProblem(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("field %s is a JSON %s, not the expected type", te.Field, te.Value)
		}
		return fmt.Sprintf("body is a JSON %s, not an object", te.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	default:
		return "invalid JSON"
	}
}
