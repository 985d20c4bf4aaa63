package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/sqlite"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/storetest"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

func TestConformanceMemory(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, storetest.Reuse(t, func(t *testing.T) store.Store {
		t.Helper()
		s, err := sqlite.Open(t.Context(), sqlite.Config{})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	}))
}

func TestConformanceFile(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, storetest.Reuse(t, func(t *testing.T) store.Store {
		t.Helper()
		s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "relay.db")})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	}))
}

func insertOne(t *testing.T, s store.Store, id string) {
	t.Helper()
	spec := &relaytype.JobSpec{Repo: relaytype.Repo{Type: "local", Path: "/r"}, Task: relaytype.Task{Title: "t", Description: "d"}, IdempotencyKey: id}
	spec.ApplyDefaults()
	_, created, err := s.JobInsert(context.Background(), &store.JobInsertParams{ID: id, Spec: spec, Executor: "x", Now: time.Now()})
	require.NoError(t, err)
	require.True(t, created)
}

// The seed's memory mode wrote a file named "file:..." into the working
// directory; ours must write nothing anywhere.
func TestMemoryWritesNothing(t *testing.T) {
	before, err := os.ReadDir(".")
	require.NoError(t, err)
	s, err := sqlite.Open(context.Background(), sqlite.Config{})
	require.NoError(t, err)
	insertOne(t, s, "job_mem")
	// The single connection keeps the data between calls.
	j, err := s.JobGet(context.Background(), &store.JobGetParams{ID: "job_mem"})
	require.NoError(t, err)
	require.Equal(t, relaytype.StateQueued, j.State)
	require.NoError(t, s.Close())
	after, err := os.ReadDir(".")
	require.NoError(t, err)
	require.Equal(t, len(before), len(after), "files appeared in the working directory")
}

func TestFileModeIsWALPrivateAndDurable(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub", "relay.db")
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
	require.NoError(t, err)
	insertOne(t, s, "job_durable")
	require.NoError(t, s.Close())

	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	require.NoError(t, err)
	defer db.Close()
	var mode string
	require.NoError(t, db.QueryRow("PRAGMA journal_mode").Scan(&mode))
	require.Equal(t, "wal", mode)

	// Reopening applies no migration twice and keeps the data.
	s, err = sqlite.Open(context.Background(), sqlite.Config{Path: path})
	require.NoError(t, err)
	defer s.Close()
	j, err := s.JobGet(context.Background(), &store.JobGetParams{ID: "job_durable"})
	require.NoError(t, err)
	require.Equal(t, "job_durable", j.ID)
}

func TestOpenErrorNamesPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(blocker, nil, 0o600))
	_, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(blocker, "relay.db")})
	require.Error(t, err)
	require.Contains(t, err.Error(), "sqlite")
}

// A database that a newer binary migrated is refused before anything is
// written, with a *store.SchemaTooNewError.
func TestOpenRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "relay.db")
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
	require.NoError(t, err)
	insertOne(t, s, "job_kept")
	require.NoError(t, s.Close())

	db, err := sql.Open("sqlite", "file:"+path)
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (99, 1)`)
	require.NoError(t, err)
	count := func() (n int) {
		require.NoError(t, db.QueryRow(`SELECT count(*) FROM goose_db_version`).Scan(&n))
		return n
	}
	versions := count()

	_, err = sqlite.Open(context.Background(), sqlite.Config{Path: path})
	var tooNew *store.SchemaTooNewError
	require.ErrorAs(t, err, &tooNew)
	require.EqualValues(t, 99, tooNew.Database)
	require.EqualValues(t, 8, tooNew.Known)
	require.Equal(t, versions, count(), "no migration recorded")
	var id string
	require.NoError(t, db.QueryRow(`SELECT id FROM jobs`).Scan(&id))
	require.Equal(t, "job_kept", id)

	// Once the newer version is gone (a downgrade done by hand), it opens.
	_, err = db.Exec(`DELETE FROM goose_db_version WHERE version_id = 99`)
	require.NoError(t, err)
	s, err = sqlite.Open(context.Background(), sqlite.Config{Path: path})
	require.NoError(t, err)
	defer s.Close()
	j, err := s.JobGet(context.Background(), &store.JobGetParams{ID: "job_kept"})
	require.NoError(t, err)
	require.Equal(t, "job_kept", j.ID)
}
