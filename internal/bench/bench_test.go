package bench_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/bench"
	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// TestMain makes this test binary the executor shim when it is started as
// one, as the relay binary is.
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

// BenchmarkDispatch reports submit latency and submit → handler start
// latency (a no-op Go handler: the queue alone, no executor process) on an
// idle relay over a SQLite file.
func BenchmarkDispatch(b *testing.B) {
	q, err := bench.NewQueue(context.Background(), b.TempDir(), 3)
	require.NoError(b, err)
	defer q.Close()
	b.ResetTimer()
	submit, dispatch, err := q.Dispatch(context.Background(), b.N)
	require.NoError(b, err)
	b.StopTimer()
	b.ReportMetric(float64(submit.P50.Microseconds()), "submit-p50-µs")
	b.ReportMetric(float64(dispatch.P50.Microseconds()), "handler-start-p50-µs")
	b.ReportMetric(float64(dispatch.P99.Microseconds()), "handler-start-p99-µs")
}

// BenchmarkThroughput reports no-op jobs per second through the queue:
// b.N jobs (the documented figure is -benchtime 5000x), timed from the
// first submit to the last end; ns/op is the time per job over that span,
// without the store's opening.
func BenchmarkThroughput(b *testing.B) {
	r, err := bench.Throughput(context.Background(), b.TempDir(), b.N, 8)
	require.NoError(b, err)
	b.ReportMetric(r.PerSec, "jobs/s")
	b.ReportMetric(1e9/r.PerSec, "ns/op")
	b.ReportMetric(float64(r.Commits)/float64(r.N), "commits/job")
}

// BenchmarkPipeline runs b.N real jobs one at a time through the full
// pipeline, with the relay binary as the executor shim as in production,
// and reports the p50 of submit → executor process start and of each
// phase (see bench.PipelinePhases); ns/op is the time per job.
func BenchmarkPipeline(b *testing.B) {
	if runtime.GOOS == "windows" {
		b.Skip("the full pipeline run needs a FIFO and /bin/sh")
	}
	dir := b.TempDir()
	bin := buildRelay(b, dir)
	run, err := bench.Pipeline(context.Background(), bench.PipelineConfig{Dir: dir, Shim: bin, Jobs: b.N, Concurrency: 1})
	require.NoError(b, err)
	b.ReportMetric(1e9/run.Throughput.PerSec, "ns/op")
	b.ReportMetric(float64(bench.Summarize("", run.ExecStart).P50.Microseconds()), "exec-start-p50-µs")
	for _, p := range run.Phases {
		b.ReportMetric(float64(bench.Summarize(p.Name, p.D).P50.Microseconds()), p.Key+"-p50-µs")
	}
}

// BenchmarkPipelineThroughput reports full-pipeline jobs per second with 8
// workers (b.N jobs, the relay binary as shim).
func BenchmarkPipelineThroughput(b *testing.B) {
	if runtime.GOOS == "windows" {
		b.Skip("the full pipeline run needs a FIFO and /bin/sh")
	}
	dir := b.TempDir()
	bin := buildRelay(b, dir)
	run, err := bench.Pipeline(context.Background(), bench.PipelineConfig{Dir: dir, Shim: bin, Jobs: b.N, Concurrency: 8})
	require.NoError(b, err)
	b.ReportMetric(run.Throughput.PerSec, "jobs/s")
	b.ReportMetric(1e9/run.Throughput.PerSec, "ns/op")
}

// TestQueueMeasures checks that the measuring code itself works: every
// submitted job is seen starting and finishing.
func TestQueueMeasures(t *testing.T) {
	t.Parallel()
	q, err := bench.NewQueue(context.Background(), t.TempDir(), 2)
	require.NoError(t, err)
	defer q.Close()
	// Small counts: the test checks what is measured, not how fast.
	const dispatchN, throughputN = 5, 12
	submit, dispatch, err := q.Dispatch(context.Background(), dispatchN)
	require.NoError(t, err)
	require.Equal(t, dispatchN, submit.N)
	require.Equal(t, dispatchN, dispatch.N)
	require.LessOrEqual(t, dispatch.P50, dispatch.P99)
	r, err := bench.Throughput(context.Background(), t.TempDir(), throughputN, 4)
	require.NoError(t, err)
	require.Equal(t, throughputN, r.N)
	require.Greater(t, r.PerSec, 0.0)
	// Each job is at most three writes (insert, claim, end), some of
	// which share a commit.
	require.Positive(t, r.Commits)
	require.LessOrEqual(t, r.Commits, int64(3*throughputN))
}

// BenchmarkColdStart builds the binary and times exec → initialize reply.
func BenchmarkColdStart(b *testing.B) {
	dir := b.TempDir()
	bin := buildRelay(b, dir)
	b.ResetTimer()
	r, mem, err := bench.ColdStart(context.Background(), bin, dir, b.N)
	require.NoError(b, err)
	b.ReportMetric(float64(r.P50.Microseconds()), "coldstart-p50-µs")
	b.ReportMetric(float64(mem.RSS)/(1<<20), "idle-rss-MiB")
	b.ReportMetric(float64(mem.Private)/(1<<20), "idle-private-MiB")
}

// BenchmarkFrontStart times exec → initialize reply of `serve` as a front
// of a running relay service.
func BenchmarkFrontStart(b *testing.B) {
	dir := b.TempDir()
	bin := buildRelay(b, dir)
	b.ResetTimer()
	r, mem, err := bench.FrontStart(context.Background(), bin, dir, b.N)
	require.NoError(b, err)
	b.ReportMetric(float64(r.P50.Microseconds()), "frontstart-p50-µs")
	b.ReportMetric(float64(mem.RSS)/(1<<20), "front-idle-rss-MiB")
	b.ReportMetric(float64(mem.Private)/(1<<20), "front-idle-private-MiB")
}

// TestPipelineMeasures runs a few real jobs through the full pipeline,
// through the shim (this test binary, see TestMain), one at a time and
// with two workers, and checks that every phase of every job was seen.
func TestPipelineMeasures(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("the full pipeline run needs a FIFO and /bin/sh")
	}
	self, err := os.Executable()
	require.NoError(t, err)
	run, err := bench.Pipeline(context.Background(), bench.PipelineConfig{Dir: t.TempDir(), Shim: self, Jobs: 2, Concurrency: 1})
	require.NoError(t, err)
	require.Equal(t, 2, run.Throughput.N)
	require.Greater(t, run.Throughput.PerSec, 0.0)
	require.Len(t, run.ExecStart, 2)
	require.Len(t, run.Phases, len(bench.PipelinePhases))
	var sum time.Duration
	for _, p := range run.Phases {
		require.Len(t, p.D, 2, p.Name)
		for _, d := range p.D {
			require.GreaterOrEqual(t, d, time.Duration(0), p.Name)
		}
		sum += bench.Summarize(p.Name, p.D).P50
	}
	require.Positive(t, sum)

	run, err = bench.Pipeline(context.Background(), bench.PipelineConfig{Dir: t.TempDir(), Jobs: 2, Concurrency: 2})
	require.NoError(t, err)
	require.Equal(t, 2, run.Throughput.N)
	require.Empty(t, run.ExecStart, "submit → start is measured on an idle relay only")

	_, err = bench.Pipeline(context.Background(), bench.PipelineConfig{Dir: t.TempDir()})
	require.Error(t, err)
}

// buildRelay builds the relay binary into dir for the benchmarks that run
// it (as server or as executor shim) and returns its path.
func buildRelay(b *testing.B, dir string) string {
	b.Helper()
	bin := filepath.Join(dir, "mcp-task-relay")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/mcp-task-relay").CombinedOutput()
	require.NoError(b, err, "%s", out)
	return bin
}
