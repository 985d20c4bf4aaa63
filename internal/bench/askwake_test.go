package bench_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/bench"
)

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func TestAskWake(t *testing.T) {
	t.Parallel()
	wake, rt, err := bench.AskWake(context.Background(), 5)
	require.NoError(t, err)
	require.Len(t, wake, 5)
	require.Len(t, rt, 5)
	for i := range wake {
		require.Positive(t, wake[i])
		require.Positive(t, rt[i])
	}

	_, _, err = bench.AskWake(context.Background(), 0)
	require.Error(t, err)
}

func report(b *testing.B, ds []time.Duration) {
	b.ReportMetric(float64(percentile(ds, 0.5).Nanoseconds())/1e6, "p50-ms")
	b.ReportMetric(float64(percentile(ds, 0.99).Nanoseconds())/1e6, "p99-ms")
}

// BenchmarkAnswerWake measures answer → parked waiter wake-up: from just
// before POST /answers to the parked GET returning (target: p50 < 2 ms).
// The stack is built once; each iteration's ask and parked poll are set
// up with the timer stopped, so ns/op is the wake-up alone.
func BenchmarkAnswerWake(b *testing.B) {
	ctx := context.Background()
	s, err := bench.NewAskStack(ctx)
	require.NoError(b, err)
	defer func() { require.NoError(b, s.Close()) }()
	wake := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		p, err := s.Park(ctx)
		require.NoError(b, err)
		b.StartTimer()
		d, err := p.Answer(ctx)
		require.NoError(b, err)
		wake = append(wake, d)
	}
	b.StopTimer()
	report(b, wake)
}

// BenchmarkAskRoundTrip measures POST /asks + POST /answers + GET answer
// on a stack built once, outside the timer.
func BenchmarkAskRoundTrip(b *testing.B) {
	ctx := context.Background()
	s, err := bench.NewAskStack(ctx)
	require.NoError(b, err)
	defer func() { require.NoError(b, s.Close()) }()
	rt := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		d, err := s.RoundTrip(ctx)
		require.NoError(b, err)
		rt = append(rt, d)
	}
	b.StopTimer()
	report(b, rt)
}

// TestAskStack checks the pieces the Go benchmarks time: a parked poll is
// woken by its answer, and a round trip completes.
func TestAskStack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := bench.NewAskStack(ctx)
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	for range 2 {
		p, err := s.Park(ctx)
		require.NoError(t, err)
		d, err := p.Answer(ctx)
		require.NoError(t, err)
		require.Positive(t, d)
		d, err = s.RoundTrip(ctx)
		require.NoError(t, err)
		require.Positive(t, d)
	}
}
