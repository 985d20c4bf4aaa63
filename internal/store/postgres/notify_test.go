package postgres_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// notifyWait bounds the wait for one notification.
const notifyWait = 15 * time.Second

// expectNotes requires the next notifications on ch to be want, in order.
func expectNotes(t *testing.T, ch <-chan store.Notification, want ...store.Notification) {
	t.Helper()
	for i, w := range want {
		select {
		case n, ok := <-ch:
			require.True(t, ok, "notification %d (%+v): channel closed", i, w)
			require.Equal(t, w, n, "notification %d", i)
		case <-time.After(notifyWait):
			require.FailNow(t, "no notification", "want %d: %+v", i, w)
		}
	}
}

func jobNote(id string, state relaytype.JobState, version int64) store.Notification {
	return store.Notification{Kind: store.NotifyJob, JobID: id, State: state, StateVersion: version}
}

// A listener hears what other Store values on its schema commit, with the
// right kinds and ids, and nothing of its own, of other schemas, or of
// transactions that rolled back.
func TestNotifications(t *testing.T) {
	t.Parallel()
	stores, _ := openShared(t, 2)
	a, b := stores[0], stores[1]
	other := openTest(t) // another schema of the same database
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	fromB, err := a.Listen(ctx)
	require.NoError(t, err)
	toB, err := b.Listen(ctx)
	require.NoError(t, err)

	_, _, err = insert(ctx, other, "job_elsewhere", "key-elsewhere")
	require.NoError(t, err)
	_, _, err = insert(ctx, a, "job_n1", "key-n1")
	require.NoError(t, err)
	expectNotes(t, toB, jobNote("job_n1", relaytype.StateQueued, 1))

	claimed, err := a.JobClaim(ctx, &store.JobClaimParams{Owner: "w", Now: base, LeaseTTL: time.Minute, Limit: 1})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	expectNotes(t, toB, jobNote("job_n1", relaytype.StateRunning, 2))

	// A heartbeat changes no state and tells no one.
	_, err = a.JobHeartbeat(ctx, &store.JobHeartbeatParams{ID: "job_n1", Owner: "w", Attempt: 1, Now: base, LeaseTTL: time.Minute})
	require.NoError(t, err)

	const askID = "00000000-0000-4000-8000-00000000000a"
	_, _, _, err = a.AskInsert(ctx, &store.AskInsertParams{Ask: &relaytype.AskRecord{
		AskID: askID, JobID: "job_n1", StepID: "attempt-1", AskType: relaytype.AskClarification, Prompt: "which?",
		ContextHash: "abc", ContextEnvelope: json.RawMessage(`{}`), Route: "orchestrator", Status: relaytype.StatusPending,
		CreatedAt: base, DeadlineAt: base.Add(time.Hour),
	}, Attempt: 1, PayloadHash: "h", Now: base})
	require.NoError(t, err)
	expectNotes(t, toB,
		store.Notification{Kind: store.NotifyAsk, JobID: "job_n1", AskID: askID},
		jobNote("job_n1", relaytype.StateWaitingOnAnswer, 3))

	_, _, err = a.AskDefer(ctx, &store.AskDeferParams{AskID: askID, Route: "human", DeadlineAt: base.Add(2 * time.Hour), Now: base})
	require.NoError(t, err)
	expectNotes(t, toB, store.Notification{Kind: store.NotifyAsk, JobID: "job_n1", AskID: askID})

	_, _, _, err = a.AnswerInsert(ctx, &store.AnswerInsertParams{Answer: &relaytype.AnswerRecord{
		AskID: askID, JobID: "job_n1", StepID: "attempt-1", Status: relaytype.StatusAnswered, AnswerText: "this"},
		PayloadHash: "a", Now: base.Add(time.Second)})
	require.NoError(t, err)
	expectNotes(t, toB,
		store.Notification{Kind: store.NotifyAsk, JobID: "job_n1", AskID: askID},
		jobNote("job_n1", relaytype.StateRunning, 4))

	_, err = a.EventAppend(ctx, &store.EventAppendParams{JobID: "job_n1", Type: relaytype.EventLog,
		Payload: json.RawMessage(`{"line":"hi"}`), Now: base, Owner: "w", Attempt: 1})
	require.NoError(t, err)
	expectNotes(t, toB, store.Notification{Kind: store.NotifyEvent, JobID: "job_n1"})

	_, err = a.JobTransition(ctx, &store.JobTransitionParams{ID: "job_n1", To: relaytype.StateSucceeded, Owner: "w",
		Attempt: 1, Now: base.Add(2 * time.Second)})
	require.NoError(t, err)
	expectNotes(t, toB, jobNote("job_n1", relaytype.StateSucceeded, 5))

	_, created, err := a.OutboxEnqueue(ctx, &store.OutboxEnqueueParams{Now: base, Message: &store.OutboxMessage{
		ID: "msg_1", JobID: "job_n1", Kind: "test", Target: "https://example.com/hook", Payload: json.RawMessage(`{}`)}})
	require.NoError(t, err)
	require.True(t, created)
	expectNotes(t, toB, store.Notification{Kind: store.NotifyOutbox, JobID: "job_n1"})

	// Rolled back: an illegal transition, a refused fenced write, a
	// repeated enqueue. Nothing is sent; the next notification is the
	// next commit's.
	_, err = a.JobTransition(ctx, &store.JobTransitionParams{ID: "job_n1", To: relaytype.StateRunning, Owner: "w2",
		LeaseTTL: time.Minute, Now: base.Add(3 * time.Second)})
	require.ErrorIs(t, err, relaytype.ErrIllegalTransition)
	_, err = a.EventAppend(ctx, &store.EventAppendParams{JobID: "job_n1", Type: relaytype.EventLog, Now: base, Owner: "w", Attempt: 1})
	require.ErrorIs(t, err, relaytype.ErrLeaseLost)
	_, created, err = a.OutboxEnqueue(ctx, &store.OutboxEnqueueParams{Now: base, Message: &store.OutboxMessage{
		ID: "msg_1", JobID: "job_n1", Kind: "test", Target: "https://example.com/hook", Payload: json.RawMessage(`{}`)}})
	require.NoError(t, err)
	require.False(t, created)
	_, _, err = insert(ctx, a, "job_n2", "key-n2")
	require.NoError(t, err)
	expectNotes(t, toB, jobNote("job_n2", relaytype.StateQueued, 1))

	// A heard none of its own: its first notification is B's.
	_, _, err = insert(ctx, b, "job_n3", "key-n3")
	require.NoError(t, err)
	expectNotes(t, fromB, jobNote("job_n3", relaytype.StateQueued, 1))

	// A release (two transitions in one transaction) and a rescue name
	// the job once, in the state they commit, and the asks they close.
	_, err = b.JobClaim(ctx, &store.JobClaimParams{Owner: "w3", Now: base, LeaseTTL: time.Minute, Limit: 1})
	require.NoError(t, err)
	expectNotes(t, fromB, jobNote("job_n2", relaytype.StateRunning, 2))
	_, err = b.JobRelease(ctx, &store.JobReleaseParams{ID: "job_n2", Owner: "w3", Attempt: 1, Now: base})
	require.NoError(t, err)
	expectNotes(t, fromB, jobNote("job_n2", relaytype.StateStale, 3))
	_, err = b.JobRescue(ctx, &store.JobRescueParams{Now: base})
	require.NoError(t, err)
	expectNotes(t, fromB, jobNote("job_n2", relaytype.StateQueued, 4))

	// When ctx ends, or the store is closed, the channel is closed.
	closed := func(ch <-chan store.Notification) func() bool {
		return func() bool {
			select {
			case _, ok := <-ch:
				return !ok
			default:
				return false
			}
		}
	}
	require.NoError(t, a.Close())
	require.Eventually(t, closed(fromB), notifyWait, 10*time.Millisecond, "the channel is closed with the store")
	cancel()
	require.Eventually(t, closed(toB), notifyWait, 10*time.Millisecond, "the channel is closed when ctx ends")
}

// A listener whose connection is killed reconnects by itself, tells its
// receiver to resync, and goes on delivering.
func TestListenReconnectsAndResyncs(t *testing.T) {
	t.Parallel()
	stores, url := openShared(t, 2)
	a, b := stores[0], stores[1]
	ctx := t.Context()
	ch, err := b.Listen(ctx)
	require.NoError(t, err)

	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(context.Background())
	// The listener's backend, found by the LISTEN it ran on its schema's
	// channel.
	listenerPID := func() int {
		var pid int
		err := admin.QueryRow(ctx, `SELECT pid FROM pg_stat_activity
			WHERE application_name = 'mcp-task-relay listener' AND query LIKE 'LISTEN %' || current_schema() || '%'`).Scan(&pid)
		if err != nil {
			return 0
		}
		return pid
	}
	first := listenerPID()
	require.NotZero(t, first)

	_, _, err = insert(ctx, a, "job_r1", "key-r1")
	require.NoError(t, err)
	expectNotes(t, ch, jobNote("job_r1", relaytype.StateQueued, 1))

	var killed bool
	require.NoError(t, admin.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, first).Scan(&killed))
	require.True(t, killed)
	expectNotes(t, ch, store.Notification{Kind: store.NotifyResync})
	second := listenerPID()
	require.NotZero(t, second)
	require.NotEqual(t, first, second, "a new connection")

	_, _, err = insert(ctx, a, "job_r2", "key-r2")
	require.NoError(t, err)
	expectNotes(t, ch, jobNote("job_r2", relaytype.StateQueued, 1))
}
