//go:build unix

package executor

import (
	"os"
	"syscall"
)

// procInfo is what the system tells about a live or zombie process.
type procInfo struct {
	pid, ppid, pgrp int
	// dead is set for zombies: they only wait to be reaped.
	dead bool
}

// groupMembers returns the live (not zombie) processes of group pgid,
// except the caller itself. Where processes cannot be listed, a single
// -pgid stands for "some".
func groupMembers(pgid int) []int {
	if err := syscall.Kill(-pgid, 0); err == syscall.ESRCH {
		return nil
	}
	procs, ok := readProcs()
	if !ok {
		return []int{-pgid} // cannot tell: assume someone is left
	}
	self := os.Getpid()
	var pids []int
	for _, p := range procs {
		if p.pgrp == pgid && p.pid != self && !p.dead {
			pids = append(pids, p.pid)
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

// descendants returns the live descendants of process root, whatever
// session or group they are in, parents before their children. A process
// whose parent exits while the list is read may be missed; on Linux the
// shim, whose orphaned descendants become its children, finds it in the
// next round.
func descendants(root int) []procInfo {
	procs, _ := readProcs()
	children := map[int][]procInfo{}
	for _, p := range procs {
		children[p.ppid] = append(children[p.ppid], p)
	}
	var found []procInfo
	// Pids read at different moments may have been reused: seen keeps a
	// cycle from looping.
	seen := map[int]bool{root: true}
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			if seen[c.pid] {
				continue
			}
			seen[c.pid] = true
			if !c.dead {
				found = append(found, c)
			}
			queue = append(queue, c.pid)
		}
	}
	return found
}
