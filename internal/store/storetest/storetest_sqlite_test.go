package storetest_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/sqlite"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/storetest"
)

// TestSQLite runs the conformance suite against in-memory SQLite stores, so
// that changes to the suite are tried against a real implementation.
func TestSQLite(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, func(t *testing.T) store.Store {
		t.Helper()
		s, err := sqlite.Open(t.Context(), sqlite.Config{})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	})
}
