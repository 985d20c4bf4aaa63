package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

const (
	// groupPollInterval is how often a stopping process group is checked
	// for members still alive.
	groupPollInterval = 20 * time.Millisecond
	// pipeDrainTimeout bounds reading output once the process group is
	// dead: only a process that escaped the group (setsid) can still hold
	// the pipes open (without the shim, which kills those too), and it
	// must not hang the run.
	pipeDrainTimeout = 2 * time.Second
	// shimMargin is extra grace the relay gives the shim, which runs the
	// same grace period from a moment later, to finish its own orderly
	// shutdown before the relay kills the group.
	shimMargin = 250 * time.Millisecond
)

// process is how to run one executor process.
type process struct {
	path string
	args []string // including args[0]
	dir  string
	env  []string
	// viaShim says the process is the shim, which forwards SIGTERM to the
	// rest of the group itself.
	viaShim bool
	// pdeathsig is sent to the process when the relay thread that started
	// it exits (with the relay).
	pdeathsig syscall.Signal
	timeout   time.Duration // 0 means none
	killGrace time.Duration
	limit     int64
	live      io.Writer
}

// run starts p as the leader of a new process group and supervises it to
// the end: output is captured, and on timeout or when ctx is done the group
// is asked to stop, then killed. Whatever is left in the group when the
// leader exits is killed too.
func (p *process) run(ctx context.Context) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create pipe: %w", err)
	}
	stderrR, stderrW, err := os.Pipe()
	if err != nil {
		_ = stdoutR.Close()
		_ = stdoutW.Close()
		return nil, fmt.Errorf("create pipe: %w", err)
	}
	defer stdoutR.Close()
	defer stderrR.Close()

	// The pipes are handed to the process as files, not copied by exec's
	// goroutines, so that Wait returns when the leader exits even if
	// grandchildren still hold them; the group is killed before draining.
	cmd := &exec.Cmd{
		Path:        p.path,
		Args:        p.args,
		Dir:         p.dir,
		Env:         p.env,
		Stdout:      stdoutW,
		Stderr:      stderrW,
		SysProcAttr: sysProcAttr(p.pdeathsig),
	}
	start := time.Now()
	exited, err := startLocked(cmd)
	_ = stdoutW.Close()
	_ = stderrW.Close()
	if err != nil {
		return nil, err
	}
	pgid := cmd.Process.Pid

	out := newCapture(p.limit, p.live)
	var readers sync.WaitGroup
	readers.Go(func() { out.copyFrom(stdoutR, true) })
	readers.Go(func() { out.copyFrom(stderrR, false) })

	var timeout <-chan time.Time
	if p.timeout > 0 {
		t := time.NewTimer(p.timeout)
		defer t.Stop()
		timeout = t.C
	}
	res := &Result{}
	var waitErr error
	select {
	case waitErr = <-exited:
	case <-ctx.Done():
		res.Canceled = true
		waitErr = p.stop(pgid, exited)
	case <-timeout:
		res.TimedOut = true
		waitErr = p.stop(pgid, exited)
	}
	res.Duration = time.Since(start)
	// No process outlives its job: kill whatever the leader left behind.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)

	drained := make(chan struct{})
	go func() {
		readers.Wait()
		close(drained)
	}()
	drain := time.NewTimer(pipeDrainTimeout)
	defer drain.Stop()
	select {
	case <-drained:
	case <-drain.C:
		now := time.Now()
		_ = stdoutR.SetReadDeadline(now)
		_ = stderrR.SetReadDeadline(now)
		<-drained
	}

	var ee *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &ee) {
		return nil, fmt.Errorf("wait for executor: %w", waitErr)
	}
	res.ExitCode = exitCode(cmd.ProcessState)
	res.Output = out.combined.bytes()
	res.Stdout = out.stdout.bytes()
	res.Stderr = out.stderr.bytes()
	return res, nil
}

// stop asks the group led by pgid to terminate with SIGTERM and kills it
// with SIGKILL once the grace period is over, unless the leader has exited
// and no member is left by then. It returns the leader's wait error.
func (p *process) stop(pgid int, exited <-chan error) error {
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

// startLocked starts cmd and reports on the returned channel when it has
// been waited for. Pdeathsig fires when the OS thread that forked the child
// exits, not the process, so the starting goroutine stays locked to its
// thread until the child is reaped.
func startLocked(cmd *exec.Cmd) (<-chan error, error) {
	started := make(chan error, 1)
	exited := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return exited, nil
}

// exitCode is the exit status of ps, or 128+N when signal N ended it, as a
// shell reports it.
func exitCode(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}
