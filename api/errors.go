package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/internal/logkey"
	"github.com/fcaudit/fcaudit/projections"
	"github.com/fcaudit/fcaudit/replay"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/translog"
)

// Error types of the JSON error envelope (ErrorOfType in api/openapi.yaml,
// and the README's tables).
const (
	TypeSignatureInvalid     = "signature_invalid"
	TypeTimestampOutside     = "timestamp_outside_tolerance"
	TypePayloadInvalid       = "payload_invalid"
	TypePayloadTooLarge      = "payload_too_large"
	TypeStoreUnavailable     = "store_unavailable"
	TypeInvalidRequest       = "invalid_request"
	TypeUnauthorized         = "unauthorized"
	TypeNotFound             = "resource_missing"
	TypeMethodNotAllowed     = "method_not_allowed"
	TypeUnsupportedMediaType = "unsupported_media_type"
	TypeServerBusy           = "server_busy"
	TypeInternal             = "api_error"
)

// errorBody is the one error envelope: {"error":{"type":…,"message":…}}.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Type    string `json:"type"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
}

// paramError is a bad query parameter; the message names it.
type paramError struct {
	param string
	err   error
}

func (e *paramError) Error() string { return fmt.Sprintf("%s: %v", e.param, e.err) }

func badParam(param string, format string, args ...any) error {
	return &paramError{param: param, err: fmt.Errorf(format, args...)}
}

// notFoundError is a missing resource with a message fit for the client.
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string { return e.msg }

func notFound(format string, args ...any) error {
	return &notFoundError{msg: fmt.Sprintf(format, args...)}
}

var (
	errUnauthorized       = errors.New("a valid API token is required: Authorization: Bearer <token>")
	errMethodNotAllowed   = errors.New("method not allowed")
	errUnsupportedContent = errors.New("Content-Type must be application/json")
)

// classify maps an error to its HTTP status and envelope. It is the only
// place that knows this mapping.
func classify(err error) (int, errorDetail) {
	var pe *paramError
	var nf *notFoundError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &pe):
		return http.StatusBadRequest, errorDetail{Type: TypeInvalidRequest, Message: pe.Error(), Param: pe.param}
	case errors.As(err, &nf):
		return http.StatusNotFound, errorDetail{Type: TypeNotFound, Message: nf.msg}
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, errorDetail{Type: TypePayloadTooLarge,
			Message: fmt.Sprintf("request body exceeds %d bytes", mbe.Limit)}
	case errors.Is(err, ingest.ErrSignatureInvalid):
		return http.StatusBadRequest, errorDetail{Type: TypeSignatureInvalid, Message: err.Error()}
	case errors.Is(err, ingest.ErrTimestampOutsideTolerance):
		return http.StatusBadRequest, errorDetail{Type: TypeTimestampOutside, Message: err.Error()}
	case errors.Is(err, ingest.ErrPayloadInvalid):
		return http.StatusBadRequest, errorDetail{Type: TypePayloadInvalid, Message: err.Error()}
	case errors.Is(err, errUnauthorized):
		return http.StatusUnauthorized, errorDetail{Type: TypeUnauthorized, Message: err.Error()}
	case errors.Is(err, errMethodNotAllowed):
		return http.StatusMethodNotAllowed, errorDetail{Type: TypeMethodNotAllowed, Message: err.Error()}
	case errors.Is(err, errUnsupportedContent):
		return http.StatusUnsupportedMediaType, errorDetail{Type: TypeUnsupportedMediaType, Message: err.Error()}
	case errors.Is(err, store.ErrEventNotFound), errors.Is(err, store.ErrStreamNotFound),
		errors.Is(err, projections.ErrAccountNotFound), errors.Is(err, replay.ErrRunNotFound):
		return http.StatusNotFound, errorDetail{Type: TypeNotFound, Message: err.Error()}
	case errors.Is(err, errBusy):
		return http.StatusServiceUnavailable, errorDetail{Type: TypeServerBusy, Message: err.Error()}
	case errors.Is(err, translog.ErrNotSupported):
		return http.StatusNotImplemented, errorDetail{Type: TypeNotSupported, Message: err.Error()}
	case errors.Is(err, translog.ErrNoCheckpoint):
		return http.StatusNotFound, errorDetail{Type: TypeNotFound, Message: err.Error()}
	case errors.Is(err, translog.ErrNotBuilt), errors.Is(err, translog.ErrCorrupt):
		return http.StatusServiceUnavailable, errorDetail{Type: TypeLogNotReady, Message: err.Error()}
	case errors.Is(err, store.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, errorDetail{Type: TypePayloadTooLarge,
			Message: "the event is larger than the event log accepts in one append; retrying cannot help"}
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, store.ErrClosed):
		// A backend that lost its answer (a timeout after the write) cannot
		// know: the id-based deduplication makes the retry safe either way.
		return http.StatusServiceUnavailable, errorDetail{Type: TypeStoreUnavailable,
			Message: "the event log did not confirm the request; the event may or may not have been stored; retrying is safe"}
	default:
		return http.StatusInternalServerError, errorDetail{Type: TypeInternal, Message: "internal error"}
	}
}

// writeError answers with the error envelope and logs server-side failures
// (5xx) only: client mistakes are the client's business and would let anyone
// flood the logs. It returns the status and error type it answered (for
// the webhook access log).
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) (status int, errType string) {
	status, detail := classify(err)
	if status >= 500 && !errors.Is(err, errBusy) { // shedding load is not a failure
		s.log.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.String("request_id", requestID(r.Context())), slog.Int("status", status),
			logkey.Err(err))
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	writeJSON(w, status, errorBody{Error: detail})
	return status, detail.Type
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client went away; nothing left to tell it
}
