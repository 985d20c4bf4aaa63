//go:build unix

package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// shimLifelineEnv holds the descriptor number of the read end of the
// lifeline pipe, whose write end only the relay holds.
const shimLifelineEnv = "TASK_RELAY_SHIM_LIFELINE"

// shimReapTimeout bounds how long the shim keeps killing what is left of
// its process tree before it exits anyway (only a process stuck in the
// kernel survives SIGKILL that long).
const shimReapTimeout = 2 * time.Second

// shimKillInterval is how often the shim kills its tree again while
// processes are left: killed processes take a moment to die, and a
// process may fork while it is being killed.
const shimKillInterval = 5 * time.Millisecond

// RunShim runs argv (the arguments after ShimArg, optionally preceded by
// "--") as a child in the shim's own process group, with stdio inherited,
// and returns the exit code to exit with: the child's, 128+N if signal N
// ended it, 127 if it could not start and 2 on a usage error.
//
// The shim exists because a parent-death signal only reaches the direct
// child of the relay, and macOS has none at all. Command starts the shim
// as a group leader, with Pdeathsig SIGTERM on Linux, and hands it the
// read end of a lifeline pipe whose write end only the relay holds: when
// the relay dies, on any unix, the shim reads end of file and stops its
// tree as if it had been sent SIGTERM. On Linux the shim is a child
// subreaper: every process orphaned below it, whatever session or group
// it moved to (setsid, a double fork), becomes its child, so the whole
// tree stays within its reach. When the relay dies, or asks it to stop, the shim sends SIGTERM
// to its group and to every descendant, waits the grace period, then
// kills them all. When the child exits on its own, whatever it left
// behind is killed. Either way the shim exits only once it has no
// descendant left (or after shimReapTimeout more, if one cannot die).
//
// Elsewhere (macOS, the BSDs) there is no subreaper: the shim kills its
// process group and the descendants it can still trace to itself, and a
// process that left the group and was orphaned escapes it.
//
// With a sandbox (see CommandConfig.Sandbox), the thread that starts the
// child is confined first, so that the child and all its descendants are;
// the shim itself is not. If the sandbox cannot be applied, the child is
// not started (exit code 127).
func RunShim(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintf(os.Stderr, "%s: no command to run\n", ShimArg)
		return 2
	}
	grace := DefaultKillGrace
	if v := os.Getenv(shimGraceEnv); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d >= 0 {
			grace = d
		}
	}
	parent := os.Getenv(shimParentEnv)
	lifeline, err := openLifeline(os.Getenv(shimLifelineEnv))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", ShimArg, err)
		return 127
	}
	var sandbox *sandboxSpec
	if v, ok := os.LookupEnv(shimSandboxEnv); ok {
		s, err := decodeSandboxSpec(v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", ShimArg, err)
			return 127
		}
		sandbox = s
	}

	// Watch for signals before anything else, so none is missed.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	// Once the relay is gone, writing to the output it no longer reads
	// must fail, not kill the shim before it has cleaned up. (Notify, not
	// Ignore: an ignored SIGPIPE would be inherited by the executor.)
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)

	// The relay may have died before the parent-death signal was armed;
	// then nobody is left to stop what would run.
	if parent != "" && parent != strconv.Itoa(os.Getppid()) {
		fmt.Fprintf(os.Stderr, "%s: parent %s is gone\n", ShimArg, parent)
		return 128 + int(syscall.SIGTERM)
	}

	// Signaling the group must never reach whoever started the shim, so
	// the shim makes sure it leads a group of its own.
	pgid := syscall.Getpgrp()
	if pgid != os.Getpid() {
		if err := syscall.Setpgid(0, 0); err != nil {
			fmt.Fprintf(os.Stderr, "%s: new process group: %v\n", ShimArg, err)
			return 127
		}
		pgid = os.Getpid()
	}
	if err := becomeSubreaper(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", ShimArg, err)
		return 127
	}

	// The relay's death closes the lifeline: from then on it is treated
	// like SIGTERM.
	relayGone := watchLifeline(lifeline)

	path, err := exec.LookPath(args[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", ShimArg, err)
		return 127
	}
	tree, err := startTree(path, args, shimChildEnv(os.Environ()), sandbox)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", ShimArg, err)
		return 127
	}

	var status syscall.WaitStatus
	exited := false
	select {
	case status = <-tree.status:
		exited = true
	case <-sigs:
		tree.terminate(pgid, grace)
	case <-relayGone:
		fmt.Fprintf(os.Stderr, "%s: the relay is gone, stopping the executor\n", ShimArg)
		tree.terminate(pgid, grace)
	}
	if !tree.kill(pgid) {
		fmt.Fprintf(os.Stderr, "%s: processes still alive after %v\n", ShimArg, shimReapTimeout)
	}
	if !exited {
		select {
		case status = <-tree.status:
		default:
			// Only when the child could not be killed in time.
			return 128 + int(syscall.SIGKILL)
		}
	}
	return waitStatusCode(status)
}

// shimChildEnv returns env without the shim's own settings.
func shimChildEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if name == shimParentEnv || name == shimGraceEnv || name == shimLifelineEnv || name == shimSandboxEnv {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// shimTree is the shim's child and everything below it.
type shimTree struct {
	// status receives the child's wait status once it has exited.
	status chan syscall.WaitStatus
	// empty is closed once the shim has no child left, its own or
	// orphans: as a subreaper, the whole tree below it is gone then.
	empty chan struct{}
}

// startTree starts the shim's child from a thread of its own that then
// reaps every child of the shim, its own and the orphans it inherits as a
// subreaper, until none is left. The thread is never given back to the
// runtime: the child's parent-death signal is bound to it, and it may
// carry the sandbox.
func startTree(path string, argv, env []string, sandbox *sandboxSpec) (*shimTree, error) {
	t := &shimTree{status: make(chan syscall.WaitStatus, 1), empty: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine.
		runtime.LockOSThread()
		if sandbox != nil {
			if err := applySandbox(sandbox); err != nil {
				started <- fmt.Errorf("sandbox %s: %w", sandbox.Kind, err)
				return
			}
		}
		pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{
			Env:   env,
			Files: []uintptr{0, 1, 2},
			Sys:   childProcAttr(),
		})
		if err != nil {
			started <- fmt.Errorf("start %s: %w", path, err)
			return
		}
		started <- nil
		for {
			var ws syscall.WaitStatus
			wpid, err := syscall.Wait4(-1, &ws, 0, nil)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err != nil { // ECHILD: nothing left to wait for
				close(t.empty)
				return
			}
			if wpid == pid {
				t.status <- ws
			}
		}
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return t, nil
}

// terminate sends SIGTERM to everyone in group pgid, the shim included
// (its own copy lands in its signal channel and is ignored from then on),
// and one by one to the descendants that left the group, then waits until
// the tree is gone or grace has passed.
func (t *shimTree) terminate(pgid int, grace time.Duration) {
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	for _, p := range descendants(os.Getpid()) {
		if p.pgrp != pgid {
			_ = syscall.Kill(p.pid, syscall.SIGTERM)
		}
	}
	t.await(pgid, grace)
}

// openLifeline returns the lifeline pipe named by the value of
// shimLifelineEnv (a file descriptor number), or nil when there is none.
// The descriptor is made close-on-exec so that the executor does not
// inherit it.
func openLifeline(v string) (*os.File, error) {
	if v == "" {
		return nil, nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("lifeline: bad descriptor %q", v)
	}
	syscall.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "lifeline")
	if f == nil {
		return nil, fmt.Errorf("lifeline: descriptor %d is not open", fd)
	}
	return f, nil
}

// watchLifeline returns a channel closed once reading f ends: nothing is
// ever written to it, so a read returns only when the relay's write end
// is closed, that is when the relay is gone. A nil f is never closed.
func watchLifeline(f *os.File) <-chan struct{} {
	gone := make(chan struct{})
	if f == nil {
		return gone
	}
	go func() {
		defer close(gone)
		var b [1]byte
		for {
			if _, err := f.Read(b[:]); err != nil {
				return
			}
		}
	}()
	return gone
}

// gone reports whether the whole tree has exited and no live process is
// left in group pgid.
func (t *shimTree) gone(pgid int) bool {
	select {
	case <-t.empty:
		return !groupAlive(pgid)
	default:
		return false
	}
}

// await waits until the tree is gone or grace has passed.
func (t *shimTree) await(pgid int, grace time.Duration) {
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	tick := time.NewTicker(groupPollInterval)
	defer tick.Stop()
	empty := t.empty
	for !t.gone(pgid) {
		select {
		case <-deadline.C:
			return
		case <-empty:
			empty = nil // now only the group is polled
		case <-tick.C:
		}
	}
}

// kill SIGKILLs every descendant of the shim and every other member of
// group pgid, again and again while any is left, and reports whether
// none is left before shimReapTimeout.
func (t *shimTree) kill(pgid int) bool {
	deadline := time.NewTimer(shimReapTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(shimKillInterval)
	defer tick.Stop()
	self := os.Getpid()
	empty := t.empty
	for !t.gone(pgid) {
		// Parents die first, so that none runs on (and, say, reports
		// success) after its children were killed.
		for _, p := range descendants(self) {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
		for _, pid := range groupMembers(pgid) {
			// A negative pid means the group cannot be listed on this
			// system: it is killed whole, the shim with it.
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		select {
		case <-deadline.C:
			return false
		case <-empty:
			empty = nil
		case <-tick.C:
		}
	}
	return true
}

// waitStatusCode is the exit status in ws, or 128+N when signal N ended
// the process, as a shell reports it.
func waitStatusCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// decodeSandboxSpec reads the value of shimSandboxEnv.
func decodeSandboxSpec(v string) (*sandboxSpec, error) {
	var s sandboxSpec
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	if s.Kind != SandboxLandlock {
		return nil, fmt.Errorf("sandbox: unknown kind %q", s.Kind)
	}
	for _, p := range s.Write {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("sandbox: writable path %q is not absolute", p)
		}
	}
	return &s, nil
}
