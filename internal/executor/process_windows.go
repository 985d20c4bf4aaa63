package executor

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// shimSupported is false: Windows runs executors directly, without the
// shim, and a cancel or timeout kills only the executor process itself.
const shimSupported = false

// attachLifeline is never called: Windows runs executors without the shim.
func attachLifeline(*exec.Cmd) (*os.File, error) {
	return nil, errors.New("the executor shim is not supported on windows")
}

// stop kills the executor process. Windows has no process groups to signal
// here, nor SIGTERM: the executor is killed at once, and processes it
// started are not reached.
func (p *process) stop(cmd *exec.Cmd, exited <-chan error) error {
	_ = cmd.Process.Kill()
	return <-exited
}

// killLeftovers does nothing: there is no group to kill once the executor
// itself has exited.
func killLeftovers(*exec.Cmd) {}

// sysProcAttr arms nothing: Windows has neither process groups as used
// here nor a parent-death signal.
func sysProcAttr(syscall.Signal) *syscall.SysProcAttr { return nil }
