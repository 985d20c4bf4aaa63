package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/postgres"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// storage.mode postgres opens the PostgreSQL store at storage.postgresUrl
// (here a fresh schema of the test database, named by search_path in the
// URL). The test fails when PostgreSQL cannot be reached, unless
// TASK_RELAY_TEST_POSTGRES=off skips it.
func TestOpenStorePostgres(t *testing.T) {
	t.Parallel()
	if os.Getenv("TASK_RELAY_TEST_POSTGRES") == "off" {
		t.Skip("TASK_RELAY_TEST_POSTGRES=off: PostgreSQL tests skipped")
	}
	url := os.Getenv("TASK_RELAY_TEST_POSTGRES_URL")
	if url == "" {
		url = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("PostgreSQL is not reachable at %s (TASK_RELAY_TEST_POSTGRES_URL): %v; "+
			"set TASK_RELAY_TEST_POSTGRES=off to skip", url, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	var b [8]byte
	_, _ = rand.Read(b[:])
	schema := "relay_test_" + hex.EncodeToString(b[:])
	_, err = conn.Exec(ctx, `CREATE SCHEMA `+schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := conn.Exec(context.Background(), `DROP SCHEMA `+schema+` CASCADE`)
		require.NoError(t, err)
	})
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}

	cfg := &config.Config{Storage: config.Storage{Mode: config.StoragePostgres, PostgresURL: url + sep + "search_path=" + schema}}
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
