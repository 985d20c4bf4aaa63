package relaytype

import (
	"errors"
	"fmt"
)

// ErrorCode is a machine-readable error code of the product contract.
type ErrorCode string

// Error codes returned to clients.
const (
	CodeInvalidSpec       ErrorCode = "INVALID_SPEC"
	CodeJobNotFound       ErrorCode = "JOB_NOT_FOUND"
	CodeIllegalTransition ErrorCode = "ILLEGAL_TRANSITION"
	CodeNoExecutor        ErrorCode = "NO_EXECUTOR"
	CodeArtifactNotFound  ErrorCode = "ARTIFACT_NOT_FOUND"
	CodeLeaseLost         ErrorCode = "LEASE_LOST"
	CodeInternal          ErrorCode = "INTERNAL_ERROR"
	CodeContextMismatch   ErrorCode = "E_CONTEXT_MISMATCH"
	CodeNoContextEnvelope ErrorCode = "E_NO_CONTEXT_ENVELOPE"
	CodeCapsViolation     ErrorCode = "E_CAPS_VIOLATION"
	CodeAskNotFound       ErrorCode = "ASK_NOT_FOUND"
	CodeConflict          ErrorCode = "CONFLICT"
	CodeInvalidRequest    ErrorCode = "INVALID_REQUEST"
	CodeUnauthorized      ErrorCode = "UNAUTHORIZED"
	CodeForbidden         ErrorCode = "FORBIDDEN"
	CodePayloadTooLarge   ErrorCode = "PAYLOAD_TOO_LARGE"
	CodeNotFound          ErrorCode = "NOT_FOUND"
	CodeMethodNotAllowed  ErrorCode = "METHOD_NOT_ALLOWED"
	CodeJobNotActive      ErrorCode = "JOB_NOT_ACTIVE"
	// CodeAskPolicy refuses an ask of a job whose execution.askPolicy is
	// never.
	CodeAskPolicy ErrorCode = "E_ASK_POLICY"
)

// Sentinel errors. Store implementations and the relay wrap these so that
// callers can test with errors.Is.
var (
	ErrJobNotFound       = errors.New("job not found")
	ErrArtifactNotFound  = errors.New("artifact not found")
	ErrIllegalTransition = errors.New("illegal transition")
	ErrLeaseLost         = errors.New("lease lost")
	ErrNoExecutor        = errors.New("no executor configured")
	ErrInvalidSpec       = errors.New("invalid job spec")
	ErrAskNotFound       = errors.New("ask not found")
	ErrAskConflict       = errors.New("ask id already used with a different payload")
	ErrAnswerConflict    = errors.New("ask already answered differently")
	ErrJobNotActive      = errors.New("job is not running")
	ErrContextMismatch   = errors.New("context hash does not match the envelope")
	ErrNoContextEnvelope = errors.New("context envelope missing")
	// ErrAskPolicy: the job's execution.askPolicy is never, so it may not
	// ask.
	ErrAskPolicy = errors.New("ask refused by the job's execution.askPolicy")
)

// SpecError is a validation failure of a JobSpec; Field is the dotted JSON
// path of the offending field (for example "repo.baselineCommit").
type SpecError struct {
	Field   string
	Message string
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("%s: %s: %s", CodeInvalidSpec, e.Field, e.Message)
}

// Code returns CodeInvalidSpec.
func (e *SpecError) Code() ErrorCode { return CodeInvalidSpec }

// Is makes errors.Is(err, ErrInvalidSpec) true.
func (e *SpecError) Is(target error) bool { return target == ErrInvalidSpec }

// CodeOf returns the contract error code carried by err, or "" if none.
func CodeOf(err error) ErrorCode {
	var c interface{ Code() ErrorCode }
	if errors.As(err, &c) {
		return c.Code()
	}
	switch {
	case errors.Is(err, ErrJobNotFound):
		return CodeJobNotFound
	case errors.Is(err, ErrArtifactNotFound):
		return CodeArtifactNotFound
	case errors.Is(err, ErrIllegalTransition):
		return CodeIllegalTransition
	case errors.Is(err, ErrLeaseLost):
		return CodeLeaseLost
	case errors.Is(err, ErrNoExecutor):
		return CodeNoExecutor
	case errors.Is(err, ErrInvalidSpec):
		return CodeInvalidSpec
	case errors.Is(err, ErrAskNotFound):
		return CodeAskNotFound
	case errors.Is(err, ErrAskConflict), errors.Is(err, ErrAnswerConflict):
		return CodeConflict
	case errors.Is(err, ErrJobNotActive):
		return CodeJobNotActive
	case errors.Is(err, ErrContextMismatch):
		return CodeContextMismatch
	case errors.Is(err, ErrNoContextEnvelope):
		return CodeNoContextEnvelope
	case errors.Is(err, ErrAskPolicy):
		return CodeAskPolicy
	}
	return ""
}

// RequestError is a validation failure of a request other than a JobSpec
// (an ask, an answer, tool arguments); Field names the offending field.
type RequestError struct {
	Field   string
	Message string
}

func (e *RequestError) Error() string {
	return fmt.Sprintf("%s: %s: %s", CodeInvalidRequest, e.Field, e.Message)
}

// Code returns CodeInvalidRequest.
func (e *RequestError) Code() ErrorCode { return CodeInvalidRequest }
