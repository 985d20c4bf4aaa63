package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// migrationSchema makes a fresh schema for a migration test, dropped when
// t ends, and returns the test database URL, the schema, and a goose
// provider of the store's migrations that works in it. Like the other
// tests, it fails when PostgreSQL cannot be reached unless
// TASK_RELAY_TEST_POSTGRES=off.
func migrationSchema(t *testing.T) (string, string, *goose.Provider) {
	t.Helper()
	if os.Getenv("TASK_RELAY_TEST_POSTGRES") == "off" {
		t.Skip("TASK_RELAY_TEST_POSTGRES=off: PostgreSQL tests skipped")
	}
	url := os.Getenv("TASK_RELAY_TEST_POSTGRES_URL")
	if url == "" {
		url = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx := context.Background()
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
	pc, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	pc.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	db := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() { _ = db.Close() })
	sub, err := fs.Sub(migrations, "migrations")
	require.NoError(t, err)
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithDisableGlobalRegistry(true))
	require.NoError(t, err)
	return url, schema, p
}

// Every migration can be rolled back and applied again.
func TestMigrationsDownAndUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, _, p := migrationSchema(t)
	_, err := p.Up(ctx)
	require.NoError(t, err)
	_, err = p.DownTo(ctx, 0)
	require.NoError(t, err)
	_, err = p.Up(ctx)
	require.NoError(t, err)
	v, err := p.GetDBVersion(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 8, v)
}

// Asks stored before asks were bound to attempts get the attempt their
// step id names, and those of an attempt that is over are closed by the
// migration (the twin of the SQLite store's test).
func TestMigrationBindsLegacyAsksToAttempts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url, schema, p := migrationSchema(t)
	_, err := p.UpTo(ctx, 5)
	require.NoError(t, err)
	db, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer db.Close(context.Background())
	_, err = db.Exec(ctx, `SET search_path = `+schema)
	require.NoError(t, err)

	now := time.Now().UnixMilli()
	for _, j := range []struct {
		id, state string
		attempt   int
	}{
		{"job_legacy_retried", "WAITING_ON_ANSWER", 2},
		{"job_legacy_queued", "QUEUED", 1},
		{"job_legacy_live", "WAITING_ON_ANSWER", 1},
	} {
		_, err := db.Exec(ctx, `INSERT INTO jobs (id, idempotency_key, state, state_version, priority, attempt,
			max_attempts, executor, baseline_commit, spec, created_at, updated_at, expires_at, lease_owner, lease_expires_at)
			VALUES ($1, $1, $2, 3, 1, $3, 3, 'x', 'abc', '{}', $4, $4, $5, 'w', $5)`,
			j.id, j.state, j.attempt, now, now+3_600_000)
		require.NoError(t, err)
	}
	for _, a := range []struct{ id, job, step string }{
		{"00000000-0000-4000-8000-000000000001", "job_legacy_retried", "attempt-1"}, // the leftover
		{"00000000-0000-4000-8000-000000000002", "job_legacy_retried", "attempt-2"}, // the retry's
		{"00000000-0000-4000-8000-000000000003", "job_legacy_queued", "attempt-1"},
		{"00000000-0000-4000-8000-000000000004", "job_legacy_live", "my-step"},
	} {
		_, err := db.Exec(ctx, `INSERT INTO asks (ask_id, job_id, step_id, ask_type, prompt, context_hash,
			context_envelope, status, created_at, deadline_at, payload_hash)
			VALUES ($1, $2, $3, 'CLARIFICATION', 'p', 'h', '{}', 'PENDING', $4, $5, 'hash')`, a.id, a.job, a.step, now, now+60_000)
		require.NoError(t, err)
	}

	s, err := Open(ctx, Config{URL: url, Schema: schema})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })

	rows, err := s.pool.Query(ctx, `SELECT attempt FROM asks ORDER BY ask_id`)
	require.NoError(t, err)
	attempts, err := pgx.CollectRows(rows, pgx.RowTo[int])
	require.NoError(t, err)
	require.Equal(t, []int{1, 2, 1, 1}, attempts)

	statusOf := func(id string) relaytype.AnswerStatus {
		a, err := s.AskGet(ctx, &store.AskGetParams{AskID: id})
		require.NoError(t, err)
		return a.Status
	}
	require.Equal(t, relaytype.StatusError, statusOf("00000000-0000-4000-8000-000000000001"))
	require.Equal(t, relaytype.StatusPending, statusOf("00000000-0000-4000-8000-000000000002"))
	require.Equal(t, relaytype.StatusError, statusOf("00000000-0000-4000-8000-000000000003"))
	require.Equal(t, relaytype.StatusPending, statusOf("00000000-0000-4000-8000-000000000004"))
	ans, err := s.AnswerGet(ctx, &store.AnswerGetParams{AskID: "00000000-0000-4000-8000-000000000001"})
	require.NoError(t, err)
	require.Equal(t, relaytype.StatusError, ans.Status)
	require.Contains(t, ans.Error, "attempt 1 of the job ended")
	evs, err := s.EventList(ctx, &store.EventListParams{JobID: "job_legacy_retried"})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, relaytype.EventAnswer, evs[0].Type)
	require.JSONEq(t, `{"askId":"00000000-0000-4000-8000-000000000001","status":"ERROR","answeredBy":"",
		"error":"closed: attempt 1 of the job ended before the ask was answered"}`, string(evs[0].Payload))

	// The leftover's deadline cannot fail the retry; the retry's own
	// answer resumes it.
	at := time.UnixMilli(now + 120_000)
	_, _, _, err = s.AnswerInsert(ctx, &store.AnswerInsertParams{Now: at, PayloadHash: "t", Answer: &relaytype.AnswerRecord{
		AskID: "00000000-0000-4000-8000-000000000001", JobID: "job_legacy_retried", Status: relaytype.StatusTimeout}})
	require.True(t, errors.Is(err, store.ErrAttemptOver), "got %v", err)
	_, _, job, err := s.AnswerInsert(ctx, &store.AnswerInsertParams{Now: at, PayloadHash: "a", Answer: &relaytype.AnswerRecord{
		AskID: "00000000-0000-4000-8000-000000000002", JobID: "job_legacy_retried", Status: relaytype.StatusAnswered, AnswerText: "ok"}})
	require.NoError(t, err)
	require.Equal(t, relaytype.StateRunning, job.State)
}
