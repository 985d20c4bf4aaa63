package main_test

import (
	"errors"
	"os"
)

// pidExists reports whether process pid exists.
func pidExists(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	_ = p.Release()
	return true
}

// killPID kills process pid.
func killPID(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

// mkfifo fails: Windows has no named pipes in the file system.
func mkfifo(string) error {
	return errors.New("no FIFOs on windows")
}
