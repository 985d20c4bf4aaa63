package executor

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The containment tests need a child subreaper, which only Linux has: on
// other systems a process that leaves the executor's group and is
// orphaned escapes the shim.

// containmentVariants are executor scripts that leave processes behind in
// every way a process tree can be left: each writes the pids of the
// executor and of every process it started to ./pids, once they are all
// in place, then runs until it is stopped. The first four stay in the
// executor's process group; the last four leave it (a new session or a
// new group), which a group kill does not reach.
func containmentVariants() map[string]string {
	tool := `"$` + toolEnv + `" ` + testToolArg
	setsid := tool + " setsid"
	if _, err := exec.LookPath("setsid"); err == nil {
		setsid = "setsid" // util-linux; the test tool does the same
	}
	const publish = `> pids.tmp && mv pids.tmp pids`
	// A process that left the group says so itself, in ./inner, once it
	// has: its pid is published after that.
	const awaitInner = `until [ -s inner ]; do sleep 0.01; done; `
	return map[string]string{
		// A foreground child the executor waits for.
		"plain": `sh -c 'echo "$PPID $$" ` + publish + `; exec sleep 300'`,
		// A background child.
		"background": `sleep 300 & echo "$$ $!" ` + publish + `; wait`,
		// A child immune to hangups.
		"nohup": `nohup sleep 300 >/dev/null 2>&1 & echo "$$ $!" ` + publish + `; wait`,
		// A child that ignores SIGTERM.
		"ignores-term": `sh -c 'trap "" TERM; exec sleep 300' & echo "$$ $!" ` + publish + `; wait`,
		// A child in a session of its own.
		"setsid": setsid + ` sh -c 'echo $$ > inner; exec sleep 300' & ` + awaitInner +
			`echo "$$ $(cat inner)" ` + publish + `; wait`,
		// A double fork: the middle process exits at once, the grandchild,
		// in a session of its own, is orphaned.
		"double-fork-setsid": `(` + setsid + ` sh -c 'echo $$ > inner; exec sleep 300' &); ` + awaitInner +
			`echo "$$ $(cat inner)" ` + publish + `; exec sleep 300`,
		// A child in a session of its own that ignores SIGTERM.
		"setsid-ignores-term": setsid + ` sh -c 'trap "" TERM; echo $$ > inner; exec sleep 300' & ` + awaitInner +
			`echo "$$ $(cat inner)" ` + publish + `; wait`,
		// A grandchild in a process group of its own (same session).
		"new-group-grandchild": `sh -c '` + tool + ` setpgid sh -c "echo \$\$ > inner; exec sleep 300" & ` + awaitInner +
			`echo "$PPID $$ $(cat inner)" ` + publish + `; wait' & wait`,
	}
}

// containmentEnv is the environment the variants run with.
func containmentEnv() []string {
	return append(os.Environ(), toolEnv+"="+testShim())
}

// variantDirs makes a directory per variant under root.
func variantDirs(t *testing.T, root string, variants map[string]string) map[string]string {
	t.Helper()
	dirs := map[string]string{}
	for name := range variants {
		dirs[name] = filepath.Join(root, name)
		require.NoError(t, os.Mkdir(dirs[name], 0o755))
	}
	return dirs
}

// requireAllGone waits for the pids file of each variant, calls stop once
// all processes are known to run, then requires that every process listed
// is dead (zombies are).
func requireAllGone(t *testing.T, dirs map[string]string, stop func()) {
	t.Helper()
	pids := map[string][]int{}
	for name, dir := range dirs {
		pids[name] = waitAnyPIDs(t, filepath.Join(dir, "pids"))
		require.GreaterOrEqual(t, len(pids[name]), 2, "variant %s", name)
	}
	stop()
	survivors := func() map[string][]int {
		left := map[string][]int{}
		for name, ps := range pids {
			for _, pid := range ps {
				if alive(pid) {
					left[name] = append(left[name], pid)
				}
			}
		}
		return left
	}
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		left := survivors()
		assert.Empty(c, left, "%d of %d variants left processes alive", len(left), len(pids))
	}, 10*time.Second, 10*time.Millisecond)
}

// waitAnyPIDs waits for the file at path and returns the pids it lists
// (it is written at once, by rename); they are killed in cleanup.
func waitAnyPIDs(t *testing.T, path string) []int {
	t.Helper()
	var pids []int
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(path)
		if err != nil || len(b) == 0 {
			return false
		}
		pids = pids[:0]
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			require.NoError(t, err, "%s: %q", path, b)
			pids = append(pids, pid)
		}
		return true
	}, 10*time.Second, 5*time.Millisecond, "no pids in %s", path)
	for _, pid := range pids {
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	}
	return pids
}

// TestLinuxContainmentCancel: cancelling a run kills every process it started,
// including those that left the executor's process group or session.
func TestLinuxContainmentCancel(t *testing.T) {
	t.Parallel()
	variants := containmentVariants()
	dirs := variantDirs(t, t.TempDir(), variants)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	results := make(chan runResult, len(variants))
	for name, script := range variants {
		c, err := NewCommand(CommandConfig{Name: name, Argv: []string{"sh", "-c", script}, Shim: testShim(),
			KillGrace: 300 * time.Millisecond, BaseEnv: containmentEnv()})
		require.NoError(t, err)
		wg.Go(func() {
			res, err := c.Run(ctx, &Request{Workdir: dirs[name]})
			results <- runResult{res, err}
		})
	}
	requireAllGone(t, dirs, func() {
		cancel()
		wg.Wait()
		close(results)
		for r := range results {
			require.NoError(t, r.err)
			require.True(t, r.res.Canceled)
		}
	})
}

// TestLinuxContainmentTimeout: a run that times out leaves no process behind.
// The timeout must let a variant start all its processes first, which
// takes longer on a loaded machine: a variant whose run timed out before
// it published its pids runs again with twice the timeout.
func TestLinuxContainmentTimeout(t *testing.T) {
	t.Parallel()
	pending := containmentVariants()
	for timeout := 2 * time.Second; len(pending) > 0; timeout *= 2 {
		require.LessOrEqual(t, timeout, 16*time.Second, "variants that never started all their processes before their run timed out: %v",
			slices.Sorted(maps.Keys(pending)))
		dirs := variantDirs(t, t.TempDir(), pending)
		var wg sync.WaitGroup
		results := make(map[string]runResult, len(pending))
		var mu sync.Mutex
		for name, script := range pending {
			c, err := NewCommand(CommandConfig{Name: name, Argv: []string{"sh", "-c", script}, Shim: testShim(),
				KillGrace: 300 * time.Millisecond, BaseEnv: containmentEnv()})
			require.NoError(t, err)
			wg.Go(func() {
				res, err := c.Run(t.Context(), &Request{Workdir: dirs[name], Timeout: timeout})
				mu.Lock()
				results[name] = runResult{res, err}
				mu.Unlock()
			})
		}
		wg.Wait()
		for name, r := range results {
			require.NoError(t, r.err, name)
			require.True(t, r.res.TimedOut, name)
		}
		// The variants that published their pids had all their processes
		// running when the run timed out.
		started := map[string]string{}
		for name, dir := range dirs {
			if fi, err := os.Stat(filepath.Join(dir, "pids")); err == nil && fi.Size() > 0 {
				started[name] = dir
				delete(pending, name)
			}
		}
		if len(pending) > 0 {
			t.Logf("timeout %s: %d variants had not started all their processes; again with twice the timeout", timeout, len(pending))
		}
		requireAllGone(t, started, func() {})
	}
}

// TestLinuxContainmentRelayKilled: when the relay is killed outright, the shims
// kill every process their executors started.
func TestLinuxContainmentRelayKilled(t *testing.T) {
	t.Parallel()
	variants := containmentVariants()
	root := t.TempDir()
	dirs := variantDirs(t, root, variants)
	scripts, err := json.Marshal(variants)
	require.NoError(t, err)
	helper := startHelperRelay(t, root, true, helperScripts+"="+string(scripts), toolEnv+"="+testShim())
	requireAllGone(t, dirs, func() {
		require.NoError(t, helper.Process.Signal(syscall.SIGKILL))
		_ = helper.Wait()
	})
}

// TestLinuxRunEscapedProcess: a process that left the executor's session
// and holds its output open does not hang the run, and the shim, a
// subreaper, finds and kills it.
func TestLinuxRunEscapedProcess(t *testing.T) {
	t.Parallel()
	modes(t, func(t *testing.T, shim string) {
		dir := t.TempDir()
		// setsid leaves the process group but keeps stdout open.
		c := newCommand(t, shim, `setsid sh -c 'echo $$ > pids; exec sleep 300' & while [ ! -s pids ]; do :; done; echo done`)
		start := time.Now()
		res, err := c.Run(t.Context(), &Request{Workdir: dir})
		require.NoError(t, err)
		require.Less(t, time.Since(start), pipeDrainTimeout+5*time.Second)
		require.Equal(t, "done\n", string(res.Stdout))
		pids := waitPIDs(t, filepath.Join(dir, "pids"), 1) // killed in cleanup
		if shim != "" {
			// The shim, a subreaper, finds and kills it.
			requireGone(t, pids...)
		}
	})
}

// TestLinuxParentDeathDirect: without the shim, only the executor, the
// relay's direct child, gets the parent-death signal; its grandchild is
// left to the cleanup of waitPIDs.
func TestLinuxParentDeathDirect(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	helper := startHelperRelay(t, dir, false)
	pids := waitPIDs(t, filepath.Join(dir, "pids"), 3) // relay, executor, grandchild
	require.NoError(t, helper.Process.Signal(syscall.SIGKILL))
	_ = helper.Wait()
	requireGone(t, pids[1])
}
