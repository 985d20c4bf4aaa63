package app

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// errServiceUnsupported is why the relay service cannot run on Windows:
// it relies on advisory file locks, a unix socket for its fronts and
// detached sessions.
var errServiceUnsupported = errors.New("the relay service (daemon, and serve without --standalone) is not supported on windows; use serve --standalone")

// lockDataDir refuses: the relay service is not supported on Windows.
func lockDataDir(dataDir string) (*os.File, error) {
	return nil, fmt.Errorf("%s: %w", dataDir, errServiceUnsupported)
}

// Locked reports false: no relay service runs on Windows.
func Locked(string) bool { return false }

// detachedProcAttr arms nothing: the service it would start refuses to run
// on Windows anyway.
func detachedProcAttr() *syscall.SysProcAttr { return nil }

// serviceSupported reports that the relay service cannot run on Windows.
func serviceSupported() error { return errServiceUnsupported }
