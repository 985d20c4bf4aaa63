//go:build unix

package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// Re-executions of the test binary: as the shim, or as a helper relay for
// the parent-death tests.
const (
	helperEnv    = "EXECUTOR_TEST_HELPER"
	helperDirEnv = "EXECUTOR_TEST_DIR"
	helperShim   = "EXECUTOR_TEST_SHIM"
	// helperScripts replaces the parent-death helper's executor script.
	helperScripts = "EXECUTOR_TEST_SCRIPTS"
	// helperNoPdeathsig makes the helper arm no parent-death signal, as
	// on systems that have none: only the shim's lifeline pipe is left.
	helperNoPdeathsig = "EXECUTOR_TEST_NO_PDEATHSIG"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case ShimArg:
			os.Exit(RunShim(os.Args[2:]))
		case testToolArg:
			os.Exit(runTestTool(os.Args[2:]))
		}
	}
	if os.Getenv(helperEnv) == "parent-death" {
		os.Exit(runParentDeathHelper())
	}
	// Under the race detector every exit of the test binary (as the shim,
	// a helper or a tool) would otherwise sleep a second.
	if os.Getenv("GORACE") == "" {
		_ = os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	os.Exit(m.Run())
}

// runParentDeathHelper plays a relay: it runs an executor that starts a
// sleeping grandchild and writes "relay-child executor grandchild" pids to
// DIR/pids, and blocks until the test kills it. With
// $EXECUTOR_TEST_SCRIPTS (a JSON object from subdirectory of DIR to
// script) it runs those scripts instead, all at once, each in its
// subdirectory.
func runParentDeathHelper() int {
	dir := os.Getenv(helperDirEnv)
	scripts := map[string]string{".": `sleep 300 & echo "$PPID $$ $!" > pids.tmp && mv pids.tmp pids; wait`}
	if s := os.Getenv(helperScripts); s != "" {
		scripts = nil
		if err := json.Unmarshal([]byte(s), &scripts); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
	}
	var wg sync.WaitGroup
	for sub, script := range scripts {
		cfg := CommandConfig{
			Name:      "helper",
			Argv:      []string{"sh", "-c", script},
			KillGrace: 300 * time.Millisecond,
			BaseEnv: slices.DeleteFunc(os.Environ(), func(kv string) bool {
				return strings.HasPrefix(kv, "EXECUTOR_TEST_")
			}),
		}
		if os.Getenv(helperShim) == "1" {
			cfg.Shim = testShim()
		}
		c, err := NewCommand(cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		c.noPdeathsig = os.Getenv(helperNoPdeathsig) == "1"
		wg.Go(func() {
			_, err := c.Run(context.Background(), &Request{JobID: "job_helper", Workdir: filepath.Join(dir, sub)})
			fmt.Fprintln(os.Stderr, "helper: run returned:", err)
		})
	}
	wg.Wait()
	return 1
}

func testShim() string {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return exe
}

// modes runs a test body once with the executor started directly and once
// through the shim.
func modes(t *testing.T, body func(t *testing.T, shim string)) {
	t.Helper()
	for name, shim := range map[string]string{"direct": "", "shim": testShim()} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			body(t, shim)
		})
	}
}

func newCommand(t *testing.T, shim string, script string) *Command {
	t.Helper()
	c, err := NewCommand(CommandConfig{Name: "test", Argv: []string{"sh", "-c", script}, Shim: shim, KillGrace: 300 * time.Millisecond})
	require.NoError(t, err)
	return c
}

// alive reports whether pid is a live process; a zombie is dead. Where
// processes cannot be listed, a zombie counts as alive.
func alive(pid int) bool {
	if procs, ok := readProcs(); ok {
		for _, p := range procs {
			if p.pid == pid {
				return !p.dead
			}
		}
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

func requireGone(t *testing.T, pids ...int) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, pid := range pids {
			if alive(pid) {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond, "processes %v still alive", pids)
}

// waitPIDs waits for the file at path and returns the pids it lists.
func waitPIDs(t *testing.T, path string, n int) []int {
	t.Helper()
	var pids []int
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pids = pids[:0]
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			require.NoError(t, err)
			pids = append(pids, pid)
		}
		return len(pids) == n
	}, 10*time.Second, 5*time.Millisecond)
	for _, pid := range pids {
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	}
	return pids
}

type runResult struct {
	res *Result
	err error
}

func runAsync(ctx context.Context, c *Command, req *Request) <-chan runResult {
	ch := make(chan runResult, 1)
	go func() {
		res, err := c.Run(ctx, req)
		ch <- runResult{res, err}
	}()
	return ch
}

func TestRunCapturesOutput(t *testing.T) {
	t.Parallel()
	modes(t, func(t *testing.T, shim string) {
		c := newCommand(t, shim, `echo out1; echo err1 >&2; echo out2`)
		var live bytes.Buffer
		res, err := c.Run(t.Context(), &Request{JobID: "job_1", Workdir: t.TempDir(), Output: &live})
		require.NoError(t, err)
		require.Equal(t, 0, res.ExitCode)
		require.Equal(t, "out1\nout2\n", string(res.Stdout))
		for _, s := range []string{"out1\n", "err1\n", "out2\n"} {
			require.Contains(t, string(res.Output), s)
		}
		require.Len(t, res.Output, len("out1\nerr1\nout2\n"))
		require.Equal(t, string(res.Output), live.String())
		require.False(t, res.TimedOut)
		require.False(t, res.Canceled)
		require.Positive(t, res.Duration)
	})
}

func TestRunExitCode(t *testing.T) {
	t.Parallel()
	modes(t, func(t *testing.T, shim string) {
		for script, want := range map[string]int{
			`echo failing; exit 7`: 7,
			`kill -KILL $$`:        128 + 9,
			`exit 0`:               0,
		} {
			res, err := newCommand(t, shim, script).Run(t.Context(), &Request{Workdir: t.TempDir()})
			require.NoError(t, err, "a failing process is a result, not an error")
			require.Equal(t, want, res.ExitCode, script)
		}
	})
}

func TestRunTemplatesAndEnv(t *testing.T) {
	t.Parallel()
	modes(t, func(t *testing.T, shim string) {
		workdir := t.TempDir()
		c, err := NewCommand(CommandConfig{
			Name: "tmpl",
			Argv: []string{
				"sh", "-c",
				`printf '%s\n' "$1" "$2" "$3" "$4" "$5" "$6" "$(pwd)" "$A" "$B" "$C" "$TASK_RELAY_JOB_ID" "${TASK_RELAY_SHIM_PARENT-unset}"`,
				"sh", "{{prompt}}", "{{prompt_file}}", "{{workdir}}", "{{job_id}}", "{{model}}",
				"--model={{ model }}@{{job_id}}",
			},
			Env:     map[string]string{"B": "cfg", "C": "cfg"},
			BaseEnv: []string{"PATH=" + os.Getenv("PATH"), "A=base", "B=base", "C=base"},
			Shim:    shim,
		})
		require.NoError(t, err)
		prompt := `it's "quoted" $HOME; rm -rf /`
		res, err := c.Run(t.Context(), &Request{
			JobID: "job_tmpl", StepID: "step_1", Workdir: workdir,
			Prompt: prompt, PromptFile: "/meta/prompt.md", Model: "gpt-x",
			Env: map[string]string{"C": "req", "TASK_RELAY_JOB_ID": "job_tmpl"},
		})
		require.NoError(t, err)
		require.Equal(t, 0, res.ExitCode, string(res.Output))
		want := strings.Join([]string{
			prompt, "/meta/prompt.md", workdir, "job_tmpl", "gpt-x", "--model=gpt-x@job_tmpl",
			workdir, "base", "cfg", "req", "job_tmpl", "unset",
		}, "\n") + "\n"
		require.Equal(t, want, string(res.Stdout))
	})
}

func TestNewCommandErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  CommandConfig
		want string
	}{
		{"no name", CommandConfig{Argv: []string{"x"}}, "name is required"},
		{"no argv", CommandConfig{Name: "a"}, "executors.a.argv: must not be empty"},
		{"empty program", CommandConfig{Name: "a", Argv: []string{" "}}, "executors.a.argv[0]"},
		{"unknown template", CommandConfig{Name: "a", Argv: []string{"x", "--{{promt}}"}}, "executors.a.argv[1]: unknown template {{promt}}"},
		{"unclosed template", CommandConfig{Name: "a", Argv: []string{"x", "{{prompt"}}, "executors.a.argv[1]: unclosed {{"},
		{"bad env", CommandConfig{Name: "a", Argv: []string{"x"}, Env: map[string]string{"A=B": "c"}}, "executors.a.env"},
		{"negative timeout", CommandConfig{Name: "a", Argv: []string{"x"}, Timeout: -1}, "executors.a.timeout"},
		{"negative grace", CommandConfig{Name: "a", Argv: []string{"x"}, KillGrace: -1}, "executors.a.killGrace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewCommand(tc.cfg)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestRunStartErrors(t *testing.T) {
	t.Parallel()
	modes(t, func(t *testing.T, shim string) {
		for _, program := range []string{"/nonexistent/program", "no-such-program-4711", "./missing.sh"} {
			c, err := NewCommand(CommandConfig{Name: "bad", Argv: []string{program}, Shim: shim})
			require.NoError(t, err)
			_, err = c.Run(t.Context(), &Request{Workdir: t.TempDir()})
			require.ErrorContains(t, err, "executor bad:")
		}
		c := newCommand(t, shim, "exit 0")
		_, err := c.Run(t.Context(), &Request{})
		require.ErrorContains(t, err, "workdir")
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err = c.Run(ctx, &Request{Workdir: t.TempDir()})
		require.ErrorIs(t, err, context.Canceled)
	})
}

func TestRunRelativeProgram(t *testing.T) {
	t.Parallel()
	modes(t, func(t *testing.T, shim string) {
		workdir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(workdir, "run.sh"), []byte("#!/bin/sh\necho ran \"$@\"\n"), 0o755))
		c, err := NewCommand(CommandConfig{Name: "rel", Argv: []string{"./run.sh", "{{job_id}}"}, Shim: shim})
		require.NoError(t, err)
		res, err := c.Run(t.Context(), &Request{JobID: "job_rel", Workdir: workdir})
		require.NoError(t, err)
		require.Equal(t, "ran job_rel\n", string(res.Stdout))
	})
}

func TestRunTimeout(t *testing.T) {
	t.Parallel()
	modes(t, func(t *testing.T, shim string) {
		dir := t.TempDir()
		c := newCommand(t, shim, `sleep 300 & echo "$$ $!" > pids; wait`)
		start := time.Now()
		// Long enough for the shim and the script to start on a loaded
		// machine: the pids are written before the timeout.
		res, err := c.Run(t.Context(), &Request{Workdir: dir, Timeout: time.Second})
		require.NoError(t, err)
		require.True(t, res.TimedOut)
		require.False(t, res.Canceled)
		require.NotZero(t, res.ExitCode)
		require.Less(t, time.Since(start), 5*time.Second)
		requireGone(t, waitPIDs(t, filepath.Join(dir, "pids"), 2)...)
	})
}

func TestRunConfiguredTimeout(t *testing.T) {
	t.Parallel()
	c, err := NewCommand(CommandConfig{Name: "slow", Argv: []string{"sleep", "300"}, Timeout: 200 * time.Millisecond})
	require.NoError(t, err)
	res, err := c.Run(t.Context(), &Request{Workdir: t.TempDir(), Timeout: time.Hour})
	require.NoError(t, err)
	require.True(t, res.TimedOut)
}

func TestRunCancelKillsGrandchildren(t *testing.T) {
	t.Parallel()
	for name, script := range map[string]string{
		"polite":   `sleep 300 & echo "$$ $!" > pids; wait`,
		"stubborn": `trap '' TERM; sleep 300 & echo "$$ $!" > pids; wait; wait; echo survived`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			modes(t, func(t *testing.T, shim string) {
				dir := t.TempDir()
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				done := runAsync(ctx, newCommand(t, shim, script), &Request{Workdir: dir})
				pids := waitPIDs(t, filepath.Join(dir, "pids"), 2)
				cancel()
				var r runResult
				select {
				case r = <-done:
				case <-time.After(10 * time.Second):
					t.Fatal("Run did not return after cancel")
				}
				require.NoError(t, r.err)
				require.True(t, r.res.Canceled)
				require.False(t, r.res.TimedOut)
				require.NotContains(t, string(r.res.Output), "survived")
				requireGone(t, pids...)
			})
		})
	}
}

func TestRunNormalExitKillsLeftovers(t *testing.T) {
	t.Parallel()
	modes(t, func(t *testing.T, shim string) {
		dir := t.TempDir()
		// The background sleep keeps stdout open: Run must not wait for it.
		c := newCommand(t, shim, `sleep 300 & echo $! > pids; echo done`)
		start := time.Now()
		res, err := c.Run(t.Context(), &Request{Workdir: dir})
		require.NoError(t, err)
		require.Less(t, time.Since(start), pipeDrainTimeout, "did not wait for the pipe held by the leftover")
		require.Equal(t, 0, res.ExitCode)
		require.Equal(t, "done\n", string(res.Stdout))
		requireGone(t, waitPIDs(t, filepath.Join(dir, "pids"), 1)...)
	})
}

func TestRunOutputBound(t *testing.T) {
	t.Parallel()
	modes(t, func(t *testing.T, shim string) {
		const size = 20 << 20
		const limit = 1 << 20
		c := newCommand(t, shim, fmt.Sprintf(`printf HEAD; head -c %d /dev/zero | tr '\0' x; printf TAIL`, size))
		var live countingWriter
		res, err := c.Run(t.Context(), &Request{Workdir: t.TempDir(), MaxOutputBytes: limit, Output: &live})
		require.NoError(t, err)
		require.Equal(t, 0, res.ExitCode)
		total := size + len("HEADTAIL")
		require.EqualValues(t, total, live.n)
		marker := fmt.Sprintf("\n[... %d bytes omitted ...]\n", total-limit)
		for _, out := range [][]byte{res.Output, res.Stdout} {
			require.Len(t, out, limit+len(marker))
			require.True(t, bytes.HasPrefix(out, []byte("HEADxxx")))
			require.True(t, bytes.HasSuffix(out, []byte("xxxTAIL")))
			require.Equal(t, limit/2, bytes.Index(out, []byte(marker)))
		}
	})
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

func TestBoundedBuffer(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		limit := rapid.Int64Range(1, 64).Draw(t, "limit")
		chunks := rapid.SliceOf(rapid.SliceOfN(rapid.Byte(), 0, 100)).Draw(t, "chunks")
		b := newBoundedBuffer(limit)
		var all []byte
		for _, c := range chunks {
			b.write(c)
			all = append(all, c...)
		}
		want := all
		if int64(len(all)) > limit {
			head := int((limit + 1) / 2)
			tail := int(limit) - head
			want = fmt.Appendf(nil, "%s\n[... %d bytes omitted ...]\n%s", all[:head], int64(len(all))-limit, all[len(all)-tail:])
		}
		if !bytes.Equal(want, b.bytes()) {
			t.Fatalf("got %q, want %q", b.bytes(), want)
		}
	})
}

// TestParentDeathShim: when the relay is killed outright, the shim kills
// the executor and the grandchild it started (through the parent-death
// signal on Linux, the lifeline pipe everywhere).
func TestParentDeathShim(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	helper := startHelperRelay(t, dir, true)
	pids := waitPIDs(t, filepath.Join(dir, "pids"), 3) // shim, executor, grandchild
	require.NoError(t, helper.Process.Signal(syscall.SIGKILL))
	_ = helper.Wait()
	requireGone(t, pids...)
}

// TestShimLifelineAlone: with no parent-death signal armed, as on macOS,
// the lifeline pipe alone makes the shim kill the executor's tree once
// the relay is killed outright.
func TestShimLifelineAlone(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	helper := startHelperRelay(t, dir, true, helperNoPdeathsig+"=1")
	pids := waitPIDs(t, filepath.Join(dir, "pids"), 3) // shim, executor, grandchild
	require.NoError(t, helper.Process.Signal(syscall.SIGKILL))
	_ = helper.Wait()
	requireGone(t, pids...)
}

// startHelperRelay starts the test binary as a relay (see
// runParentDeathHelper) that runs its executors in dir, through the shim
// if shim is set.
func startHelperRelay(t *testing.T, dir string, shim bool, env ...string) *exec.Cmd {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), "helper.log"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = logf.Close() })
	helper := exec.Command(testShim(), "-test.run=^$")
	helper.Env = append(os.Environ(), helperEnv+"=parent-death", helperDirEnv+"="+dir, helperShim+"="+map[bool]string{true: "1"}[shim])
	helper.Env = append(helper.Env, env...)
	helper.Stdout, helper.Stderr = logf, logf
	require.NoError(t, helper.Start())
	t.Cleanup(func() { _ = helper.Process.Kill(); _ = helper.Wait() })
	return helper
}
