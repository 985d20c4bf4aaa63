//go:build unix && !linux && !darwin

package executor

import "syscall"

// sysProcAttr makes the process lead a new process group. Only Linux has a
// parent-death signal; elsewhere the shim, which watches its lifeline pipe
// to the relay, is the guard against a killed relay leaving its executors
// behind.
func sysProcAttr(syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// readProcs cannot list processes here: groups are then killed whole.
func readProcs() ([]procInfo, bool) { return nil, false }

// becomeSubreaper does nothing: these systems have no child subreaper
// (or it is not used), so a process that leaves the shim's group and is
// orphaned escapes the shim. Only the shim's process group is killed.
func becomeSubreaper() error { return nil }

// childProcAttr has nothing to arm without a parent-death signal: the
// shim's child stays in the shim's process group, which cancel kills.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{}
}
