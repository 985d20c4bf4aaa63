package cli

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// TestMain makes this test binary the executor shim when it is started as
// one (the bench's full-pipeline run uses its own executable as the shim,
// as the relay binary does).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == executor.ShimArg {
		os.Exit(executor.RunShim(os.Args[2:]))
	}
	// Under the race detector every exit of the shim would sleep a second.
	if os.Getenv("GORACE") == "" {
		_ = os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	os.Exit(m.Run())
}

// TestBenchFlags checks that every flag of bench reaches its option.
func TestBenchFlags(t *testing.T) {
	t.Parallel()
	cmd := newBench()
	require.NoError(t, cmd.ParseFlags([]string{"--storage", "postgres", "--postgres-url", "postgres://x", "--jobs", "11",
		"--dispatch", "12", "--cold", "13", "--asks", "14", "--concurrency", "15", "--pipeline", "16", "--runs", "17", "--markdown", "--soak", "18"}))
	var got []string
	for _, name := range []string{"storage", "postgres-url", "jobs", "dispatch", "cold", "asks", "concurrency", "pipeline", "runs", "markdown", "soak"} {
		f := cmd.Flags().Lookup(name)
		require.NotNil(t, f, name)
		require.True(t, f.Changed, name)
		got = append(got, f.Value.String())
	}
	require.Equal(t, []string{"postgres", "postgres://x", "11", "12", "13", "14", "15", "16", "17", "true", "18"}, got)
}

// TestBenchSteps checks which measurements a run makes, and with what
// counts, for the flags: --cold 0 skips the start-up ones, --pipeline 0 the
// full pipeline, --concurrency 1 its second run, --soak 0 the soak.
func TestBenchSteps(t *testing.T) {
	t.Parallel()
	names := func(o benchOptions) string {
		var n []string
		for _, s := range sqliteSteps(o, "/bin/false", t.TempDir()) {
			n = append(n, s.name)
		}
		return strings.Join(n, ", ")
	}
	require.Equal(t, "cold start, context size, front start, dispatch, asks, throughput, full pipeline, 1 worker(s), full pipeline, 8 worker(s), soak",
		names(benchOptions{coldN: 20, pipelineN: 100, concurrency: 8, soakN: 500}))
	require.Equal(t, "dispatch, asks, throughput, full pipeline, 1 worker(s)", names(benchOptions{pipelineN: 1, concurrency: 1}))
	require.Equal(t, "dispatch, asks, throughput", names(benchOptions{concurrency: 8}))
	require.Equal(t, "throughput, 1 relay(s), throughput, 3 relay(s), dispatch, cross-relay wake",
		func() string {
			var n []string
			for _, s := range postgresSteps(benchOptions{}, nil) {
				n = append(n, s.name)
			}
			return strings.Join(n, ", ")
		}())
}

// TestBenchRuns runs bench for real with small counts: every measurement
// is repeated --runs times and shown as min/median/max, as a markdown
// table with --markdown, as text without.
func TestBenchRuns(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("the full pipeline run needs a FIFO and /bin/sh")
	}
	run := func(args ...string) string {
		cmd := newBench()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs(append([]string{"--cold", "0", "--soak", "0", "--dispatch", "2", "--asks", "2", "--jobs", "5", "--concurrency", "2"}, args...))
		require.NoError(t, cmd.ExecuteContext(context.Background()))
		return out.String()
	}
	md := run("--runs", "2", "--markdown", "--pipeline", "1")
	require.Contains(t, md, "| figure | min | median | max | unit | runs |")
	for _, row := range []string{
		"| submit (SQLite file, WAL) p50 |", "| submit → handler start (no-op handler) p50 |",
		"| answer → parked waiter wake-up p50 |", "| ask round trip (HTTP) p99 |",
		"| no-op jobs through SQLite queue |", "| full pipeline jobs (git worktree, 1 worker(s)) |",
		"| full pipeline jobs (git worktree, 2 worker(s)) |",
		"| submit → executor process start (full pipeline, shim) p50 |", "| phase: worktree create (git worktree add) p50 |",
	} {
		require.Contains(t, md, row)
	}
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "| figure") {
			require.True(t, strings.HasSuffix(line, "| 2 |"), "every figure measured in both runs: %s", line)
		}
	}
	require.NotContains(t, md, "cold start", "--cold 0 skips the start-up runs")
	require.NotContains(t, md, "after 0 jobs", "--soak 0 skips the soak")
	require.NotContains(t, md, "over MCP", "--soak 0 skips the soak")
	require.Contains(t, md, "- load average before: ")

	text := run("--runs", "1", "--pipeline", "0")
	require.NotContains(t, text, "|")
	require.Regexp(t, `(?m)^figure +min +median +max +unit +runs`, text)
	require.Regexp(t, `(?m)^no-op jobs through SQLite queue +\S+ +\S+ +\S+ +jobs/s +1$`, text)
	require.NotContains(t, text, "full pipeline", "--pipeline 0 skips it")

	for _, bad := range [][]string{{"--runs", "0"}, {"--storage", "mysql"}, {"--jobs", "0"}, {"--pipeline", "-1"}, {"--soak", "-1"}, {"--cold", "-1"}} {
		cmd := newBench()
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetArgs(bad)
		err := cmd.ExecuteContext(context.Background())
		require.Error(t, err, bad)
		require.ErrorContains(t, err, bad[0], "the error names the flag")
	}
}
