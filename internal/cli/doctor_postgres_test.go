package cli

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/postgres"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/postgres/pgtest"
)

// storage.mode postgres: the doctor connects (and migrates) as serve
// would; a server it cannot reach fails the storage row, without
// printing the URL's password.
func TestDoctorPostgresUnreachable(t *testing.T) {
	t.Parallel()

	s := newDoctorSetup(t)
	s.env[config.EnvPostgresURL] = "postgres://relay:do-not-print-me@127.0.0.1:1/relay?sslmode=disable&connect_timeout=2"
	run := s.run(t, "--storage", "postgres")
	require.NotEqual(t, 0, run.code, run.out)
	st := run.row(t, "storage")
	require.Equal(t, "FAIL", st.status, run.out)
	require.Contains(t, st.detail, "postgres")
	require.Contains(t, st.fix(), "storage.postgresUrl")
	require.NotContains(t, run.out, "do-not-print-me")
}

// storage.mode postgres: the doctor lists the relays recorded in the
// database, and warns about one that has not been seen for minutes.
func TestDoctorPostgresListsRelays(t *testing.T) {
	t.Parallel()
	url, _ := pgtest.SchemaURL(t)
	st, err := postgres.Open(t.Context(), postgres.Config{URL: url})
	require.NoError(t, err)
	now := time.Now()
	require.NoError(t, st.RelayUpsert(t.Context(), &store.RelayRecord{ID: "build-1:/srv/relay", Host: "build-1", DataDir: "/srv/relay",
		Version: "v9.9.9", Projects: []string{"/p"}, Executors: []string{"codex", "work"}, StartedAt: now, SeenAt: now}))
	require.NoError(t, st.RelayUpsert(t.Context(), &store.RelayRecord{ID: "laptop:/home/u/relay", Host: "laptop", DataDir: "/home/u/relay",
		Version: "v9.9.8", StartedAt: now.Add(-time.Hour), SeenAt: now.Add(-10 * time.Minute)}))
	require.NoError(t, st.Close())

	s := newDoctorSetup(t)
	s.env[config.EnvPostgresURL] = url
	run := s.run(t, "--storage", "postgres")
	require.Equal(t, "ok", run.row(t, "storage").status, run.out)
	row := run.row(t, "relays")
	require.Equal(t, "warn", row.status, run.out)
	require.Contains(t, row.detail, "1 running: build-1:/srv/relay (v9.9.9, 1 projects, executors codex,work)")
	require.Contains(t, row.detail, "1 not seen lately: laptop:/home/u/relay, last seen 10m")
}
