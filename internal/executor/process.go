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

// pipeDrainTimeout bounds reading output once the process group is
// dead: only a process that escaped the group (setsid) can still hold
// the pipes open (without the shim, which kills those too), and it
// must not hang the run.
const pipeDrainTimeout = 2 * time.Second

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
	// it exits (with the relay), where the system has a parent-death
	// signal (Linux). Zero arms none.
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
	var lifeline *os.File
	if p.viaShim {
		// The shim watches the read end: when the relay dies, the write
		// end closes with it and the shim stops its tree, on systems
		// without a parent-death signal too.
		if lifeline, err = attachLifeline(cmd); err != nil {
			_ = stdoutW.Close()
			_ = stderrW.Close()
			return nil, err
		}
		defer lifeline.Close()
	}
	start := time.Now()
	exited, err := startLocked(cmd)
	_ = stdoutW.Close()
	_ = stderrW.Close()
	for _, f := range cmd.ExtraFiles {
		_ = f.Close() // the shim has its copy
	}
	if err != nil {
		return nil, err
	}

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
		waitErr = p.stop(cmd, exited)
	case <-timeout:
		res.TimedOut = true
		waitErr = p.stop(cmd, exited)
	}
	res.Duration = time.Since(start)
	// No process outlives its job: kill whatever the leader left behind.
	killLeftovers(cmd)

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
