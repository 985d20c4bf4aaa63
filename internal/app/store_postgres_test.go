package app

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/postgres"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/postgres/pgtest"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// storage.mode postgres opens the PostgreSQL store at storage.postgresUrl
// (here a fresh schema of the test database, named by search_path in the
// URL). The test fails when PostgreSQL cannot be reached, unless
// TASK_RELAY_TEST_POSTGRES=off skips it.
func TestOpenStorePostgres(t *testing.T) {
	t.Parallel()
	url, schema := pgtest.SchemaURL(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn := pgtest.Connect(t, url)

	cfg := &config.Config{Storage: config.Storage{Mode: config.StoragePostgres, PostgresURL: url}}
	s, err := openStore(ctx, cfg)
	require.NoError(t, err)
	defer s.Close()
	require.IsType(t, &postgres.Store{}, s)
	spec := &relaytype.JobSpec{Repo: relaytype.Repo{Type: "local", Path: "/r"}, Task: relaytype.Task{Title: "t", Description: "d"}, IdempotencyKey: "k"}
	spec.ApplyDefaults()
	_, created, err := s.JobInsert(ctx, &store.JobInsertParams{ID: "job_pg", Spec: spec, Executor: "x", Now: time.Now()})
	require.NoError(t, err)
	require.True(t, created)
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.jobs`).Scan(&n))
	require.Equal(t, 1, n, "the job is stored in the configured database")
}
