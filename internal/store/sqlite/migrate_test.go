package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Asks stored before asks were bound to attempts get the attempt their
// step id names, and those of an attempt that is over (the failure of
// finding "a leftover ask fails the retried job") are closed by the
// migration.
func TestMigrationBindsLegacyAsksToAttempts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "relay.db")
	db, err := sql.Open("sqlite", "file:"+escapePath(path)+"?"+pragmas(Config{BusyTimeout: DefaultBusyTimeout}, true))
	require.NoError(t, err)
	sub, err := fs.Sub(migrations, "migrations")
	require.NoError(t, err)
	p, err := goose.NewProvider(goose.DialectSQLite3, db, sub, goose.WithDisableGlobalRegistry(true))
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 5)
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
		_, err := db.ExecContext(ctx, `INSERT INTO jobs (id, idempotency_key, state, state_version, priority, attempt,
			max_attempts, executor, baseline_commit, spec, created_at, updated_at, expires_at, lease_owner, lease_expires_at)
			VALUES (?, ?, ?, 3, 1, ?, 3, 'x', 'abc', '{}', ?, ?, ?, 'w', ?)`,
			j.id, j.id, j.state, j.attempt, now, now, now+3_600_000, now+3_600_000)
		require.NoError(t, err)
	}
	for _, a := range []struct{ id, job, step string }{
		{"00000000-0000-4000-8000-000000000001", "job_legacy_retried", "attempt-1"}, // the leftover
		{"00000000-0000-4000-8000-000000000002", "job_legacy_retried", "attempt-2"}, // the retry's
		{"00000000-0000-4000-8000-000000000003", "job_legacy_queued", "attempt-1"},
		{"00000000-0000-4000-8000-000000000004", "job_legacy_live", "my-step"},
	} {
		_, err := db.ExecContext(ctx, `INSERT INTO asks (ask_id, job_id, step_id, ask_type, prompt, context_hash,
			context_envelope, status, created_at, deadline_at, payload_hash)
			VALUES (?, ?, ?, 'CLARIFICATION', 'p', 'h', '{}', 'PENDING', ?, ?, 'hash')`, a.id, a.job, a.step, now, now+60_000)
		require.NoError(t, err)
	}
	require.NoError(t, db.Close())

	s, err := Open(ctx, Config{Path: path})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })

	var attempts []int
	rows, err := s.reader.QueryContext(ctx, `SELECT attempt FROM asks ORDER BY ask_id`)
	require.NoError(t, err)
	for rows.Next() {
		var n int
		require.NoError(t, rows.Scan(&n))
		attempts = append(attempts, n)
	}
	require.NoError(t, rows.Err())
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

	// Should a pending ask of an earlier attempt exist all the same, the
	// next start closes it.
	_, err = s.writer.ExecContext(ctx, `INSERT INTO asks (ask_id, job_id, step_id, ask_type, prompt, context_hash,
		context_envelope, status, created_at, deadline_at, payload_hash, attempt)
		VALUES ('00000000-0000-4000-8000-000000000005', 'job_legacy_queued', 's', 'CLARIFICATION', 'p', 'h', '{}',
		'PENDING', ?, ?, 'hash', 1)`, now, now+60_000)
	require.NoError(t, err)
	claimed, err := s.JobClaim(ctx, &store.JobClaimParams{Owner: "w2", Now: at, LeaseTTL: time.Minute, Limit: 1})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	require.Equal(t, 2, claimed[0].Attempt)
	ans, err = s.AnswerGet(ctx, &store.AnswerGetParams{AskID: "00000000-0000-4000-8000-000000000005"})
	require.NoError(t, err)
	require.NotNil(t, ans)
	require.Equal(t, relaytype.StatusError, ans.Status)
	require.Contains(t, ans.Error, "the job was retried as attempt 2")
}
