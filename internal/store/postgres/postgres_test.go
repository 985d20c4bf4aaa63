package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/postgres"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/postgres/pgtest"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/storetest"
)

func testURL(t *testing.T) string { return pgtest.URL(t) }

func adminConn(t *testing.T, url string) *pgx.Conn { return pgtest.Connect(t, url) }

func newSchema(t *testing.T, url string) string { return pgtest.NewSchema(t, url) }

// openTest opens a store in a fresh schema; it is closed and the schema
// dropped when t ends.
func openTest(t *testing.T) *postgres.Store {
	t.Helper()
	s, _ := openTestSchema(t)
	return s
}

// openTestSchema is openTest that also returns the URL of a connection
// to the store's schema.
func openTestSchema(t *testing.T) (*postgres.Store, string) {
	t.Helper()
	url := testURL(t)
	schema := newSchema(t, url)
	// The property test opens a store per check and closes them all at
	// its end: idle connections go back to the server at once, so that
	// the stores of one test never hold more than a few.
	s, err := postgres.Open(t.Context(), postgres.Config{
		URL: withParams(url, "pool_max_conn_idle_time=150ms", "pool_health_check_period=100ms"), Schema: schema, MaxConns: 6,
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s, withParams(url, "search_path="+schema)
}

// openShared opens n stores on one fresh schema, as n relays sharing a
// database do; they are closed and the schema dropped when t ends. It
// returns the stores and the URL of a connection to the schema.
func openShared(t *testing.T, n int) ([]*postgres.Store, string) {
	t.Helper()
	url := testURL(t)
	schema := newSchema(t, url)
	stores := make([]*postgres.Store, n)
	for i := range stores {
		s, err := postgres.Open(t.Context(), postgres.Config{URL: url, Schema: schema, MaxConns: 4})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		stores[i] = s
	}
	return stores, withParams(url, "search_path="+schema)
}

func withParams(url string, params ...string) string { return pgtest.WithParams(url, params...) }

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, storetest.Reuse(t, func(t *testing.T) store.Store {
		t.Helper()
		return openTest(t)
	}))
}

func TestOpenMigratesOnce(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	for range 2 {
		s, err := postgres.Open(t.Context(), postgres.Config{URL: url, Schema: schema})
		require.NoError(t, err)
		require.NoError(t, s.Close())
	}
	conn := adminConn(t, url)
	defer conn.Close(context.Background())
	var version int64
	require.NoError(t, conn.QueryRow(t.Context(),
		`SELECT max(version_id) FROM `+schema+`.goose_db_version WHERE is_applied`).Scan(&version))
	require.EqualValues(t, 8, version)
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := postgres.Open(ctx, postgres.Config{URL: "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2"})
	require.Error(t, err)
	require.Contains(t, err.Error(), "postgres")
}

// A database that a newer binary migrated is refused before anything is
// written, with a *store.SchemaTooNewError.
func TestOpenRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	s, err := postgres.Open(t.Context(), postgres.Config{URL: url, Schema: schema})
	require.NoError(t, err)
	defer s.Close()
	_, _, err = insert(t.Context(), s, "job_kept", "key-kept")
	require.NoError(t, err)

	conn := adminConn(t, withParams(url, "search_path="+schema))
	defer conn.Close(context.Background())
	_, err = conn.Exec(t.Context(), `INSERT INTO goose_db_version (version_id, is_applied) VALUES (99, true)`)
	require.NoError(t, err)
	count := func() (n int) {
		require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(*) FROM goose_db_version`).Scan(&n))
		return n
	}
	versions := count()

	_, err = postgres.Open(t.Context(), postgres.Config{URL: url, Schema: schema})
	var tooNew *store.SchemaTooNewError
	require.ErrorAs(t, err, &tooNew)
	require.EqualValues(t, 99, tooNew.Database)
	require.EqualValues(t, 8, tooNew.Known)
	require.Contains(t, err.Error(), "upgrade this relay")

	require.Equal(t, versions, count(), "no migration recorded")
	j, err := s.JobGet(t.Context(), &store.JobGetParams{ID: "job_kept"})
	require.NoError(t, err)
	require.Equal(t, "job_kept", j.ID)
}
