package relay

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store/sqlite"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

type admitAll struct{}

func (admitAll) Admit(context.Context, *relaytype.JobSpec) (string, string, error) {
	return "test", "0123456789abcdef0123456789abcdef01234567", nil
}

func (admitAll) Handle(context.Context, *relaytype.Job) Outcome { return Outcome{} }

func ttlSpec(key string, ttl int) *relaytype.JobSpec {
	return &relaytype.JobSpec{
		Repo:           relaytype.Repo{Type: "local", Path: "/tmp"},
		Task:           relaytype.Task{Title: "t", Description: "d"},
		Execution:      relaytype.Execution{TTLS: ttl},
		IdempotencyKey: key,
	}
}

func sweepWoken(r *Relay) bool {
	select {
	case <-r.sweepWake:
		return true
	default:
		return false
	}
}

// A submit wakes the sweeper when the new job's queue deadline comes
// before the one it sleeps until (or while it sweeps), and only then: a
// stream of submits with the usual ttl does not make it re-read the
// store's next deadline once per job.
func TestSubmitWakesSweeperOnlyForEarlierDeadline(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(t.Context(), sqlite.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	r, err := New(Config{Store: st, Handler: admitAll{}, Artifacts: ArtifactDir{Root: t.TempDir()}, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ctx := t.Context()

	// Before the first pass the sweeper's deadline is unknown: wake it.
	_, _, err = r.Submit(ctx, ttlSpec("a", 3600))
	require.NoError(t, err)
	require.True(t, sweepWoken(r))

	next := r.sweep(ctx)
	require.False(t, next.IsZero(), "the queued job's deadline is next")
	require.Equal(t, next.UnixNano(), r.sweepDue.Load())

	_, _, err = r.Submit(ctx, ttlSpec("later", 7200))
	require.NoError(t, err)
	require.False(t, sweepWoken(r), "a later deadline must not wake the sweeper")

	_, _, err = r.Submit(ctx, ttlSpec("sooner", 60))
	require.NoError(t, err)
	require.True(t, sweepWoken(r), "an earlier deadline must wake the sweeper")

	// Nothing pending at all: any deadline is earlier.
	empty, err := sqlite.Open(t.Context(), sqlite.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = empty.Close() })
	r2, err := New(Config{Store: empty, Handler: admitAll{}, Artifacts: ArtifactDir{Root: t.TempDir()}, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.True(t, r2.sweep(ctx).IsZero())
	_, _, err = r2.Submit(ctx, ttlSpec("first", 3600))
	require.NoError(t, err)
	require.True(t, sweepWoken(r2))
}
