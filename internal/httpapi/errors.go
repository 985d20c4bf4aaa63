package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"reflect"
	"strings"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// CodeUnsupportedMediaType is the error code of a POST whose Content-Type
// is not JSON. relaytype has no code for it: only this API returns it.
const CodeUnsupportedMediaType relaytype.ErrorCode = "UNSUPPORTED_MEDIA_TYPE"

// apiError is the JSON body of every error response.
type apiError struct {
	Status  int                 `json:"-"`
	Code    relaytype.ErrorCode `json:"code"`
	Message string              `json:"message"`
	Field   string              `json:"field,omitempty"`
}

func badRequest(field, format string, a ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: relaytype.CodeInvalidRequest,
		Field: field, Message: field + ": " + fmt.Sprintf(format, a...)}
}

func forbidden(format string, a ...any) *apiError {
	return &apiError{Status: http.StatusForbidden, Code: relaytype.CodeForbidden, Message: fmt.Sprintf(format, a...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.Status, e)
}

// statusOf maps contract error codes to HTTP statuses.
var statusOf = map[relaytype.ErrorCode]int{
	relaytype.CodeInvalidRequest:    http.StatusBadRequest,
	relaytype.CodeInvalidSpec:       http.StatusBadRequest,
	relaytype.CodeContextMismatch:   http.StatusBadRequest,
	relaytype.CodeNoContextEnvelope: http.StatusBadRequest,
	relaytype.CodeCapsViolation:     http.StatusBadRequest,
	relaytype.CodeJobNotFound:       http.StatusNotFound,
	relaytype.CodeAskNotFound:       http.StatusNotFound,
	relaytype.CodeArtifactNotFound:  http.StatusNotFound,
	relaytype.CodeJobNotActive:      http.StatusConflict,
	relaytype.CodeConflict:          http.StatusConflict,
	relaytype.CodeIllegalTransition: http.StatusConflict,
	relaytype.CodeAskPolicy:         http.StatusForbidden,
}

// errorOf turns an error of the ask service or the relay into its
// response. ok is false for errors that carry no contract code: those are
// internal, and their text is not sent to the client.
func errorOf(err error) (e *apiError, ok bool) {
	code := relaytype.CodeOf(err)
	status, known := statusOf[code]
	if !known {
		return &apiError{Status: http.StatusInternalServerError, Code: relaytype.CodeInternal,
			Message: "internal error; see the relay's log"}, false
	}
	e = &apiError{Status: status, Code: code, Message: err.Error()}
	var re *relaytype.RequestError
	var se *relaytype.SpecError
	switch {
	case errors.As(err, &re):
		e.Field, e.Message = re.Field, re.Field+": "+re.Message
	case errors.As(err, &se):
		e.Field, e.Message = se.Field, se.Field+": "+se.Message
	case code == relaytype.CodeContextMismatch:
		e.Field = "context_hash"
	case code == relaytype.CodeNoContextEnvelope:
		e.Field = "context_envelope"
	}
	return e, true
}

// fail writes the response for err, logging internal errors.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	e, ok := errorOf(err)
	if !ok {
		s.log.Error("http request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, e)
}

// checkJSON accepts application/json and application/*+json, with any
// parameters; anything else, a missing Content-Type included, is 415.
func checkJSON(contentType string) *apiError {
	if strings.TrimSpace(contentType) == "" {
		return &apiError{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMediaType,
			Message: "Content-Type is missing: send application/json"}
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err == nil && (mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))) {
		return nil
	}
	return &apiError{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMediaType,
		Message: fmt.Sprintf("Content-Type %q is not supported: send application/json", contentType)}
}

// decode reads a JSON request body into v strictly: one JSON value, no
// unknown fields, at most MaxBodyBytes.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) *apiError {
	if e := checkJSON(r.Header.Get("Content-Type")); e != nil {
		return e
	}
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			if e := tooLarge(err); e != nil {
				return e
			}
			if e := timedOut(err); e != nil {
				return e
			}
		}
		return badRequest("body", "unexpected data after the JSON object")
	}
	return nil
}

// timedOut returns the 408 for a body that did not arrive within
// Config.ReadTimeout, or nil.
func timedOut(err error) *apiError {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	return &apiError{Status: http.StatusRequestTimeout, Code: CodeRequestTimeout,
		Message: "the request body did not arrive in time"}
}

func tooLarge(err error) *apiError {
	var mbe *http.MaxBytesError
	if !errors.As(err, &mbe) {
		return nil
	}
	return &apiError{Status: http.StatusRequestEntityTooLarge, Code: relaytype.CodePayloadTooLarge,
		Message: fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}
}

// decodeError names the field a JSON decoding error is about.
func decodeError(err error) *apiError {
	if e := tooLarge(err); e != nil {
		return e
	}
	if e := timedOut(err); e != nil {
		return e
	}
	var ute *json.UnmarshalTypeError
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &ute):
		field := ute.Field
		if field == "" {
			field = "body"
		}
		return badRequest(field, "must be %s, not %s", jsonKind(ute.Type), ute.Value)
	case errors.As(err, &syn):
		return badRequest("body", "invalid JSON at byte %d: %v", syn.Offset, err)
	case errors.Is(err, io.EOF):
		return badRequest("body", "required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("body", "truncated JSON")
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field := strings.Trim(name, `"`)
		return badRequest(field, "unknown field")
	}
	return badRequest("body", "%v", err)
}

// jsonKind names the JSON type that decodes into t.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "another type"
}
