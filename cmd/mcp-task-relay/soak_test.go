package main_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/bench"
)

// TestBenchSoak runs the bench's soak against the real binary: real jobs
// submitted over MCP to a standalone relay on a SQLite file all succeed,
// and the relay's memory is read before and after them.
func TestBenchSoak(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("the soak's executor is /bin/sh")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	soak, err := bench.RunSoak(ctx, binary, t.TempDir(), 12)
	require.NoError(t, err)
	require.Equal(t, 12, soak.Jobs)
	if runtime.GOOS == "linux" {
		for _, m := range []bench.Memory{soak.Start, soak.After} {
			require.Positive(t, m.Private)
			require.Greater(t, m.RSS, m.Private, "the resident set includes the binary's pages")
		}
	}
	_, err = bench.RunSoak(ctx, binary, t.TempDir(), 0)
	require.ErrorContains(t, err, "jobs must be positive")
}
