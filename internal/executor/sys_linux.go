package executor

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// sysProcAttr makes the process lead a new process group and receive
// pdeathsig when the thread that started it dies.
func sysProcAttr(pdeathsig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: pdeathsig}
}

// groupMembers returns the live (not zombie) processes of group pgid,
// except the caller itself.
func groupMembers(pgid int) []int {
	if err := syscall.Kill(-pgid, 0); err == syscall.ESRCH {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return []int{-pgid} // cannot tell: assume someone is left
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		// "pid (comm) state ppid pgrp ...", where comm may hold anything.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(stat[i+1:])
		if len(f) < 3 || f[0][0] == 'Z' || f[0][0] == 'X' {
			continue
		}
		if g, err := strconv.Atoi(string(f[2])); err == nil && g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// groupAlive reports whether any process of group pgid other than the
// caller is alive. Zombies do not count: where nothing reaps orphans they
// would otherwise keep a dead group alive forever.
func groupAlive(pgid int) bool {
	return len(groupMembers(pgid)) > 0
}

// childProcAttr makes the shim's child die with the shim.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
