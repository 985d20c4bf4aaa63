package metrics_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/metrics"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/postgres"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/postgres/pgtest"
)

// The timed store keeps what the PostgreSQL store can do for several
// relays reachable: without it, a relay service on PostgreSQL would
// neither hear the other relays nor serve their artifacts.
func TestTimedStoreKeepsOptionalInterfaces(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	st, err := postgres.Open(t.Context(), postgres.Config{URL: url, Schema: pgtest.NewSchema(t, url)})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	m, err := metrics.New(metrics.Config{Store: st})
	require.NoError(t, err)
	timed := m.Store(st)

	n, ok := store.As[store.Notifier](timed)
	require.True(t, ok)
	require.Same(t, st, n)
	_, ok = store.As[store.ArtifactContents](timed)
	require.True(t, ok)
	_, ok = store.As[store.Registry](timed)
	require.True(t, ok)
}
