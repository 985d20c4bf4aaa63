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
	wake, rt, err := bench.AskWake(context.Background(), 20)
	require.NoError(t, err)
	require.Len(t, wake, 20)
	require.Len(t, rt, 20)
	t.Logf("wake p50 %s, round trip p50 %s", percentile(wake, 0.5), percentile(rt, 0.5))
	// Far below ask's 2 s safety recheck: every waiter was woken.
	require.Less(t, percentile(wake, 1), time.Second)

	_, _, err = bench.AskWake(context.Background(), 0)
	require.Error(t, err)
}

func report(b *testing.B, ds []time.Duration) {
	b.ReportMetric(float64(percentile(ds, 0.5).Nanoseconds())/1e6, "p50-ms")
	b.ReportMetric(float64(percentile(ds, 0.99).Nanoseconds())/1e6, "p99-ms")
}

// BenchmarkAnswerWake measures answer → parked waiter wake-up: from just
// before POST /answers to the parked GET returning (target: p50 < 2 ms).
func BenchmarkAnswerWake(b *testing.B) {
	wake, _, err := bench.AskWake(context.Background(), b.N)
	require.NoError(b, err)
	report(b, wake)
}

// BenchmarkAskRoundTrip measures POST /asks + POST /answers + GET answer.
func BenchmarkAskRoundTrip(b *testing.B) {
	_, rt, err := bench.AskWake(context.Background(), b.N)
	require.NoError(b, err)
	report(b, rt)
}
