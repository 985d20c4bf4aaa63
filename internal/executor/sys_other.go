//go:build unix && !linux

package executor

import "syscall"

// sysProcAttr makes the process lead a new process group. Only Linux has a
// parent-death signal; elsewhere the shim is the only guard against a
// killed relay leaving its executors behind, and it cannot be armed.
func sysProcAttr(syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// groupMembers returns the processes of group pgid except the caller, as
// far as can be told without /proc: a single -pgid stands for "some".
func groupMembers(pgid int) []int {
	if err := syscall.Kill(-pgid, 0); err == syscall.ESRCH {
		return nil
	}
	return []int{-pgid}
}

// groupAlive reports whether any process of group pgid is alive.
func groupAlive(pgid int) bool {
	return len(groupMembers(pgid)) > 0
}

// childProcAttr has nothing to arm without a parent-death signal: the
// shim's child stays in the shim's process group, which cancel kills.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{}
}
