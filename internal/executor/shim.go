package executor

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ShimArg is the hidden subcommand of the relay binary that runs RunShim:
// `mcp-task-relay __exec-shim -- argv...`.
const ShimArg = "__exec-shim"

// Environment through which Command hands the shim its settings. The shim
// removes them before starting the executor.
const (
	// shimParentEnv holds the pid of the relay that started the shim.
	shimParentEnv = "TASK_RELAY_SHIM_PARENT"
	// shimGraceEnv holds the SIGTERM→SIGKILL grace, as a Go duration.
	shimGraceEnv = "TASK_RELAY_SHIM_GRACE"
)

// shimReapTimeout bounds how long the shim keeps killing the rest of its
// group before it exits anyway.
const shimReapTimeout = 2 * time.Second

// RunShim runs argv (the arguments after ShimArg, optionally preceded by
// "--") as a child in the shim's own process group, with stdio inherited,
// and returns the exit code to exit with: the child's, 128+N if signal N
// ended it, 127 if it could not start and 2 on a usage error.
//
// The shim exists because a parent-death signal only reaches the direct
// child of the relay. Command starts the shim as a group leader with
// Pdeathsig SIGTERM; when the relay dies, or asks it to stop, the shim
// forwards SIGTERM to its group, waits the grace period, then kills the
// group. When the child exits on its own, whatever it left in the group is
// killed before the shim exits.
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

	// Watch for signals before anything else, so none is missed.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

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

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = shimChildEnv(os.Environ())
	// If the shim itself is killed outright, its child goes with it.
	cmd.SysProcAttr = childProcAttr()
	exited, err := startLocked(cmd)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", ShimArg, err)
		return 127
	}

	select {
	case <-exited:
	case <-sigs:
		// Everyone in the group gets SIGTERM, the shim included; its own
		// copy lands in sigs and is ignored from now on.
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		_ = awaitGroup(pgid, exited, grace, func() { killGroupExceptSelf(pgid) })
	}
	killGroupExceptSelf(pgid)
	return exitCode(cmd.ProcessState)
}

// shimChildEnv returns env without the shim's own settings.
func shimChildEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if strings.HasPrefix(kv, shimParentEnv+"=") || strings.HasPrefix(kv, shimGraceEnv+"=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// killGroupExceptSelf SIGKILLs every other live process of group pgid,
// again and again while members keep appearing (a process may fork while
// being killed), until none is left or shimReapTimeout passes.
func killGroupExceptSelf(pgid int) {
	deadline := time.Now().Add(shimReapTimeout)
	for {
		members := groupMembers(pgid)
		if len(members) == 0 {
			return
		}
		for _, pid := range members {
			// A negative pid means the group cannot be listed on this
			// system: it is killed whole, the shim with it.
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return
		}
		// Killed processes take a moment to turn into zombies.
		time.Sleep(groupPollInterval / 4)
	}
}
