//go:build unix

package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDataDir takes the service lock of dataDir and writes this process's
// pid into it.
func lockDataDir(dataDir string) (*os.File, error) {
	path := filepath.Join(dataDir, ServiceLockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid := ""
			if info, err := ReadServiceInfo(dataDir); err == nil {
				pid = fmt.Sprintf(" (pid %d)", info.PID)
			}
			return nil, fmt.Errorf("%w%s: %s", ErrAlreadyRunning, pid, dataDir)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("%d\n", os.Getpid())), 0)
	return f, nil
}

// Locked reports whether a relay service holds the lock of dataDir.
func Locked(dataDir string) bool {
	f, err := os.OpenFile(filepath.Join(dataDir, ServiceLockFile), os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// detachedProcAttr starts the relay service in a session of its own, so
// that it outlives the front and its terminal.
func detachedProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true}
}

// serviceSupported reports nil: the relay service runs on every unix.
func serviceSupported() error { return nil }
