package bench_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/bench"
)

// TestTable checks min/median/max over runs and both ways of writing them.
func TestTable(t *testing.T) {
	t.Parallel()
	var tb bench.Table
	for _, v := range []float64{30, 10, 20} {
		tb.Add(bench.Figure{Name: "jobs", Unit: "jobs/s", Value: v})
	}
	tb.Add(bench.Summarize("lat", []time.Duration{time.Millisecond, 3 * time.Millisecond}).Figures()...)
	tb.Add(bench.Summarize("lat", []time.Duration{2 * time.Millisecond, 4 * time.Millisecond}).Figures()...)
	lo, med, hi, n := tb.Stats("jobs")
	require.Equal(t, []float64{10, 20, 30}, []float64{lo, med, hi})
	require.Equal(t, 3, n)
	lo, med, hi, n = tb.Stats("lat p50")
	require.Equal(t, []float64{3, 3.5, 4}, []float64{lo, med, hi}, "an even count's median is the mean of the middle two")
	require.Equal(t, 2, n)
	_, _, _, n = tb.Stats("missing")
	require.Zero(t, n)

	var md strings.Builder
	require.NoError(t, tb.Write(&md, true))
	require.Equal(t, "| figure | min | median | max | unit | runs |\n|---|---:|---:|---:|---|---:|\n"+
		"| jobs | 10.00 | **20.00** | 30.00 | jobs/s | 3 |\n"+
		"| lat p50 | 3.00 | **3.50** | 4.00 | ms | 2 |\n"+
		"| lat p99 | 3.00 | **3.50** | 4.00 | ms | 2 |\n", md.String())
	var text strings.Builder
	require.NoError(t, tb.Write(&text, false))
	require.Equal(t, "figure   min    median  max    unit    runs\n"+
		"jobs     10.00  20.00   30.00  jobs/s  3\n"+
		"lat p50  3.00   3.50    4.00   ms      2\n"+
		"lat p99  3.00   3.50    4.00   ms      2\n", text.String())
}
