// Package executortest holds what the tests of the coding-agent adapters
// share: a TestMain that lets the test binary act as the executor shim, and
// a way to run a test body both without and through the shim.
package executortest

import (
	"os"
	"testing"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// Main is a TestMain: when the test binary is started as the executor
// shim it acts as one, otherwise it runs the tests.
func Main(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == executor.ShimArg {
		os.Exit(executor.RunShim(os.Args[2:]))
	}
	// Under the race detector every exit of the shim would sleep a second.
	if os.Getenv("GORACE") == "" {
		_ = os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	os.Exit(m.Run())
}

// Shim returns the test binary, which acts as the shim under Main.
func Shim() string {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return exe
}

// Modes runs body once with the executor started directly and once
// through the shim.
func Modes(t *testing.T, body func(t *testing.T, shim string)) {
	t.Helper()
	for name, shim := range map[string]string{"direct": "", "shim": Shim()} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			body(t, shim)
		})
	}
}
