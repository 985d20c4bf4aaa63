package config

import (
	"errors"
	"strings"
)

// Sentinel errors. Errors returned by this package wrap one of them.
var (
	// ErrUnknownKey marks a config.yaml key that is not part of the schema.
	ErrUnknownKey = errors.New("unknown key")
	// ErrInvalid marks a malformed file, a value of the wrong type or a
	// value out of range.
	ErrInvalid = errors.New("invalid configuration")
	// ErrNoExecutor means a job names no executor and there is no default.
	ErrNoExecutor = errors.New("no executor configured")
	// ErrUnknownExecutor means a job names an executor that is not defined.
	ErrUnknownExecutor = errors.New("unknown executor")
)

// Error is a problem with one configuration field. Several are combined
// with errors.Join.
type Error struct {
	// Source is where the value came from: "FILE:LINE", an environment
	// variable such as TASK_RELAY_STORAGE, or a flag such as --storage.
	// Empty for values set in code or defaults.
	Source string
	// Path is the field's YAML path, such as server.maxConcurrency. Empty
	// for problems with a whole file.
	Path string
	// Msg says what is wrong, such as `must be an integer, got "three"`.
	Msg string
	// Err is ErrUnknownKey or ErrInvalid.
	Err error
}

// Error formats e as "SOURCE: PATH: MSG", or for an unknown key as
// `SOURCE: unknown key "PATH" (MSG)`.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		b.WriteString(": ")
	}
	if errors.Is(e.Err, ErrUnknownKey) {
		b.WriteString(`unknown key "`)
		b.WriteString(e.Path)
		b.WriteString(`"`)
		if e.Msg != "" {
			b.WriteString(" (")
			b.WriteString(e.Msg)
			b.WriteString(")")
		}
		return b.String()
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the sentinel e wraps.
func (e *Error) Unwrap() error { return e.Err }
