//go:build unix

package executor

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

const (
	// groupPollInterval is how often a stopping process group is checked
	// for members still alive.
	groupPollInterval = 20 * time.Millisecond
	// shimMargin is extra grace the relay gives the shim, which runs the
	// same grace period from a moment later, to finish its own orderly
	// shutdown before the relay kills the group.
	shimMargin = 250 * time.Millisecond
)

// shimSupported says executors run under the shim when one is configured.
const shimSupported = true

// attachLifeline hands the shim started by cmd the read end of a new pipe
// (as its first extra file, named in shimLifelineEnv) and returns the
// write end, which the relay keeps open for as long as the shim runs.
// Nothing ever writes to it: the shim sees end of file only when every
// copy of the write end is closed, which is when the relay has died (the
// kernel closes it) or the run is over. The pipe is close-on-exec, so no
// other child of the relay holds the write end.
func attachLifeline(cmd *exec.Cmd) (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create lifeline pipe: %w", err)
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, r)
	fd := 3 + len(cmd.ExtraFiles) - 1
	cmd.Env = append(cmd.Env, shimLifelineEnv+"="+strconv.Itoa(fd))
	return w, nil
}

// killLeftovers kills whatever is left in the process group led by cmd's
// process.
func killLeftovers(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// stop asks the group led by cmd's process to terminate with SIGTERM and
// kills it with SIGKILL once the grace period is over, unless the leader
// has exited and no member is left by then. It returns the leader's wait
// error.
func (p *process) stop(cmd *exec.Cmd, exited <-chan error) error {
	pgid := cmd.Process.Pid
	if p.viaShim {
		return p.stopShim(pgid, exited)
	}
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	return awaitGroup(pgid, exited, p.killGrace, func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
}

// stopShim stops the shim leading group pgid: SIGTERM to the shim alone,
// which signals the rest of its tree itself (signaling the group here too
// would deliver SIGTERM twice, which some programs read as "quit now, skip
// cleanup"), kills it after the grace period and exits. The shim is never
// killed before it has had its time to kill what left its group: that is
// beyond the relay's reach. Only if it is late is its group killed around
// it, then, if it is still late, the shim itself.
func (p *process) stopShim(pgid int, exited <-chan error) error {
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	wait := time.NewTimer(p.killGrace + shimMargin)
	defer wait.Stop()
	select {
	case err := <-exited:
		return err
	case <-wait.C:
	}
	for _, pid := range groupMembers(pgid) {
		if pid != pgid && pid != -pgid {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	wait.Reset(shimReapTimeout + shimMargin)
	select {
	case err := <-exited:
		return err
	case <-wait.C:
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return <-exited
}

// awaitGroup waits until the leader has exited (reported on exited) and no
// other live member is left in group pgid, or until grace has passed; then
// it calls kill if anything may still be running, and waits for the leader.
func awaitGroup(pgid int, exited <-chan error, grace time.Duration, kill func()) error {
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	tick := time.NewTicker(groupPollInterval)
	defer tick.Stop()
	var (
		waitErr  error
		leftover = exited
	)
	for {
		select {
		case waitErr = <-leftover:
			leftover = nil
		case <-tick.C:
		case <-deadline.C:
			kill()
			if leftover != nil {
				waitErr = <-leftover
			}
			return waitErr
		}
		if leftover == nil && !groupAlive(pgid) {
			return waitErr
		}
	}
}
