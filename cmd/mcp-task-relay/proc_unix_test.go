//go:build unix

package main_test

import (
	"errors"
	"syscall"
)

// pidExists reports whether process pid exists (a zombie does).
func pidExists(pid int) bool {
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// killPID sends SIGKILL to process pid.
func killPID(pid int) error {
	return syscall.Kill(pid, syscall.SIGKILL)
}

// mkfifo makes a named pipe at path, readable and writable by its owner.
func mkfifo(path string) error {
	return syscall.Mkfifo(path, 0o600)
}
