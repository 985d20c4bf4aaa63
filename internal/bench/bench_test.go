package bench_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/bench"
)

// BenchmarkDispatch reports submit latency and submit→executor-start
// latency on an idle relay over a SQLite file.
func BenchmarkDispatch(b *testing.B) {
	q, err := bench.NewQueue(context.Background(), b.TempDir(), 3)
	require.NoError(b, err)
	defer q.Close()
	b.ResetTimer()
	submit, dispatch, err := q.Dispatch(context.Background(), b.N)
	require.NoError(b, err)
	b.ReportMetric(float64(submit.P50.Microseconds()), "submit-p50-µs")
	b.ReportMetric(float64(dispatch.P50.Microseconds()), "dispatch-p50-µs")
	b.ReportMetric(float64(dispatch.P99.Microseconds()), "dispatch-p99-µs")
}

// BenchmarkThroughput reports no-op jobs per second through the queue.
func BenchmarkThroughput(b *testing.B) {
	n := max(b.N, 200)
	b.ResetTimer()
	r, err := bench.Throughput(context.Background(), b.TempDir(), n, 8)
	require.NoError(b, err)
	b.ReportMetric(r.PerSec, "jobs/s")
}

// TestQueueMeasures checks that the measuring code itself works: every
// submitted job is seen starting and finishing.
func TestQueueMeasures(t *testing.T) {
	t.Parallel()
	q, err := bench.NewQueue(context.Background(), t.TempDir(), 2)
	require.NoError(t, err)
	defer q.Close()
	submit, dispatch, err := q.Dispatch(context.Background(), 20)
	require.NoError(t, err)
	require.Equal(t, 20, submit.N)
	require.Equal(t, 20, dispatch.N)
	require.LessOrEqual(t, dispatch.P50, dispatch.P99)
	r, err := bench.Throughput(context.Background(), t.TempDir(), 100, 4)
	require.NoError(t, err)
	require.Equal(t, 100, r.N)
	require.Greater(t, r.PerSec, 0.0)
}

// BenchmarkColdStart builds the binary and times exec → initialize reply.
func BenchmarkColdStart(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "mcp-task-relay")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/mcp-task-relay").CombinedOutput()
	require.NoError(b, err, "%s", out)
	b.ResetTimer()
	r, rss, err := bench.ColdStart(context.Background(), bin, dir, b.N)
	require.NoError(b, err)
	b.ReportMetric(float64(r.P50.Microseconds()), "coldstart-p50-µs")
	b.ReportMetric(float64(rss)/(1<<20), "idle-rss-MiB")
}

// BenchmarkFrontStart times exec → initialize reply of `serve` as a front
// of a running relay service.
func BenchmarkFrontStart(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "mcp-task-relay")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/mcp-task-relay").CombinedOutput()
	require.NoError(b, err, "%s", out)
	b.ResetTimer()
	r, rss, err := bench.FrontStart(context.Background(), bin, dir, b.N)
	require.NoError(b, err)
	b.ReportMetric(float64(r.P50.Microseconds()), "frontstart-p50-µs")
	b.ReportMetric(float64(rss)/(1<<20), "front-idle-rss-MiB")
}

// TestPipelineMeasures runs a few real jobs through the full pipeline.
func TestPipelineMeasures(t *testing.T) {
	t.Parallel()
	r, err := bench.Pipeline(context.Background(), t.TempDir(), "", 5, 2)
	require.NoError(t, err)
	require.Equal(t, 5, r.N)
	require.Greater(t, r.PerSec, 0.0)
}
