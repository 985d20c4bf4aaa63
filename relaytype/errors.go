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
	}
	return ""
}
