package ask_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/sqlite"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// A job asks, its relay is killed (the lease lapses and the sweeper
// rescues it), and the retry asks again. The leftover ask of the killed
// attempt must neither keep the retry WAITING_ON_ANSWER nor, when its
// deadline passes, fail it; answering it is a conflict.
func TestRetryIsNotHeldOrFailedByAskOfKilledAttempt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	t0 := time.Now().Truncate(time.Millisecond)
	clk := &clock{now: t0}
	// The deadline loop is not started: the test runs its passes.
	svc, err := ask.New(ask.Config{Store: st, Logger: slog.New(slog.DiscardHandler), Now: clk.Now})
	require.NoError(t, err)
	t.Cleanup(svc.Stop)

	const id = "job_killed"
	spec := &relaytype.JobSpec{Repo: relaytype.Repo{Type: "local", Path: "/r"}, Task: relaytype.Task{Title: "t", Description: "d"}, IdempotencyKey: id}
	spec.ApplyDefaults()
	_, _, err = st.JobInsert(ctx, &store.JobInsertParams{ID: id, Spec: spec, Executor: "x", Now: t0})
	require.NoError(t, err)
	claimed, err := st.JobClaim(ctx, &store.JobClaimParams{Owner: "relay-1", Now: t0, LeaseTTL: time.Minute, Limit: 1})
	require.NoError(t, err)
	require.Len(t, claimed, 1)

	old := newAsk(t, id)
	_, _, err = svc.Create(ctx, old)
	require.NoError(t, err)
	job, err := st.JobGet(ctx, &store.JobGetParams{ID: id})
	require.NoError(t, err)
	require.Equal(t, relaytype.StateWaitingOnAnswer, job.State)

	// relay-1 is killed: its lease lapses and the sweeper requeues the job.
	clk.Set(t0.Add(2 * time.Minute))
	rescued, err := st.JobRescue(ctx, &store.JobRescueParams{Now: clk.Now()})
	require.NoError(t, err)
	require.Len(t, rescued, 1)
	require.Equal(t, relaytype.StateQueued, rescued[0].State)
	claimed, err = st.JobClaim(ctx, &store.JobClaimParams{Owner: "relay-2", Now: clk.Now(), LeaseTTL: time.Hour, Limit: 1})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	require.Equal(t, 2, claimed[0].Attempt)

	fresh := newAsk(t, id)
	fresh.StepID = "attempt-2"
	_, _, err = svc.Create(ctx, fresh)
	require.NoError(t, err)
	pending, err := svc.List(ctx, id, relaytype.StatusPending)
	require.NoError(t, err)
	require.Len(t, pending, 1, "only the retry's ask is pending")
	require.Equal(t, fresh.AskID, pending[0].AskID)

	// The old ask's deadline (the default 10 min) passes, the retry's
	// does not: a pass of the deadline loop leaves the job alone.
	clk.Set(t0.Add(11 * time.Minute))
	_, err = ask.Expire(ctx, svc)
	require.NoError(t, err)
	job, err = st.JobGet(ctx, &store.JobGetParams{ID: id})
	require.NoError(t, err)
	require.Equal(t, relaytype.StateWaitingOnAnswer, job.State, "the old ask's deadline must not fail the retry: %s", job.Summary)
	require.Equal(t, 2, job.Attempt)

	// The executor of the killed attempt hears that its ask is closed.
	rec, err := svc.Wait(ctx, old.AskID, time.Second)
	require.NoError(t, err)
	require.NotNil(t, rec)
	require.Equal(t, relaytype.StatusError, rec.Status)
	require.Contains(t, rec.Error, "attempt 1")

	// Answering the retry's ask resumes the job.
	_, created, err := svc.Answer(ctx, &relaytype.Answer{AskID: fresh.AskID, Status: relaytype.StatusAnswered, AnswerText: "hello"})
	require.NoError(t, err)
	require.True(t, created)
	job, err = st.JobGet(ctx, &store.JobGetParams{ID: id})
	require.NoError(t, err)
	require.Equal(t, relaytype.StateRunning, job.State)

	// Answering the old ask is a conflict that names the attempt.
	_, _, err = svc.Answer(ctx, &relaytype.Answer{AskID: old.AskID, Status: relaytype.StatusAnswered, AnswerText: "too late"})
	require.Error(t, err)
	require.Equal(t, relaytype.CodeConflict, relaytype.CodeOf(err))
	require.True(t, errors.Is(err, store.ErrAttemptOver), "got %v", err)
	require.Contains(t, err.Error(), "attempt 1")
	require.Contains(t, err.Error(), "over")

	// Another pass, past every deadline, still fails nothing of the old
	// attempt.
	clk.Set(t0.Add(time.Hour))
	_, err = ask.Expire(ctx, svc)
	require.NoError(t, err)
	job, err = st.JobGet(ctx, &store.JobGetParams{ID: id})
	require.NoError(t, err)
	require.Equal(t, relaytype.StateRunning, job.State)
}
