package executor

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// sysProcAttr makes the process lead a new process group. macOS has no
// parent-death signal: the shim, which watches its lifeline pipe to the
// relay, is the guard against a killed relay leaving its executors behind.
func sysProcAttr(syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// szomb is the p_stat of a zombie (sys/proc.h).
const szomb = 5

// readProcs lists the processes through sysctl kern.proc.all.
func readProcs() (procs []procInfo, ok bool) {
	kps, err := unix.SysctlKinfoProcSlice("kern.proc.all")
	if err != nil {
		return nil, false
	}
	for _, kp := range kps {
		procs = append(procs, procInfo{
			pid: int(kp.Proc.P_pid), ppid: int(kp.Eproc.Ppid), pgrp: int(kp.Eproc.Pgid),
			dead: kp.Proc.P_stat == szomb,
		})
	}
	return procs, true
}

// becomeSubreaper does nothing: macOS has no child subreaper, so a process
// that leaves the shim's group (setsid, setpgid) and whose parent exits is
// reparented to launchd, out of the shim's reach. The shim kills its
// process group and the descendants it can still trace to itself.
func becomeSubreaper() error { return nil }

// childProcAttr has nothing to arm without a parent-death signal: the
// shim's child stays in the shim's process group, which cancel kills.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{}
}
