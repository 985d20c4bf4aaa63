package relay_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// A graceful stop while a job waits on an answer hands the job back at
// once (not when its lease lapses) and closes its ask, which the stopped
// executor will never read; the next relay runs it as attempt 2.
func TestStopReleasesJobWaitingOnAnswer(t *testing.T) {
	t.Parallel()
	const askID = "00000000-0000-4000-8000-00000000a5c1"
	asked := make(chan struct{})
	var st store.Store // set before the relay starts
	b := setup(t, &funcHandler{HandleFunc: func(ctx context.Context, j *relaytype.Job) relay.Outcome {
		if j.Attempt > 1 {
			return succeed(ctx, j)
		}
		// The executor asks (as POST /asks would) and waits.
		now := time.Now()
		_, _, _, err := st.AskInsert(ctx, &store.AskInsertParams{PayloadHash: "h", Now: now, Ask: &relaytype.AskRecord{
			AskID: askID, JobID: j.ID, StepID: "attempt-1", AskType: relaytype.AskClarification, Prompt: "Which?",
			ContextHash: "abc", ContextEnvelope: json.RawMessage(`{"job_snapshot":{}}`), Route: "orchestrator",
			Status: relaytype.StatusPending, CreatedAt: now, DeadlineAt: now.Add(time.Hour),
		}})
		if err != nil {
			return relay.Outcome{State: relaytype.StateFailed, Reason: relaytype.ReasonInternalError, Summary: err.Error()}
		}
		close(asked)
		<-ctx.Done()
		return relay.Outcome{}
	}}, func(c *relay.Config) {
		// A lapse would take an hour: only the release can explain STALE.
		c.LeaseTTL = time.Hour
		c.HeartbeatInterval = time.Minute
	})
	st = b.store
	require.NoError(t, b.relay.Start(context.Background()))
	j, _, err := b.relay.Submit(context.Background(), spec("stop-waiting", ""))
	require.NoError(t, err)
	select {
	case <-asked:
	case <-time.After(10 * time.Second):
		t.Fatal("the job never asked")
	}
	waiting, err := b.relay.Get(context.Background(), j.ID)
	require.NoError(t, err)
	require.Equal(t, relaytype.StateWaitingOnAnswer, waiting.State)

	b.relay.Stop()
	got, err := b.relay.Get(context.Background(), j.ID)
	require.NoError(t, err)
	require.Equal(t, relaytype.StateStale, got.State, "released at once: %s", got.Summary)
	require.Equal(t, 1, got.Attempt)
	a, err := b.store.AskGet(context.Background(), &store.AskGetParams{AskID: askID})
	require.NoError(t, err)
	require.Equal(t, relaytype.StatusError, a.Status, "the stopped attempt's ask is closed")
	ans, err := b.store.AnswerGet(context.Background(), &store.AnswerGetParams{AskID: askID})
	require.NoError(t, err)
	require.Contains(t, ans.Error, "attempt 1")
	require.Contains(t, ans.Error, "relay shut down")

	evs, err := b.relay.Events(context.Background(), j.ID, 0, 0)
	require.NoError(t, err)
	var states []relaytype.JobState
	for _, e := range evs {
		if e.Type == relaytype.EventTransition {
			var p relaytype.TransitionPayload
			require.NoError(t, jsonUnmarshal(e.Payload, &p))
			states = append(states, p.To)
		}
	}
	require.Equal(t, []relaytype.JobState{relaytype.StateRunning, relaytype.StateWaitingOnAnswer,
		relaytype.StateRunning, relaytype.StateStale}, states)

	// The next relay on the store requeues and runs it.
	next, err := relay.New(relay.Config{Store: b.store, Handler: &funcHandler{HandleFunc: succeed},
		Artifacts: relay.ArtifactDir{Root: t.TempDir()}, Logger: quiet})
	require.NoError(t, err)
	require.NoError(t, next.Start(context.Background()))
	t.Cleanup(next.Stop)
	final := waitState(t, next, j.ID, relaytype.StateSucceeded)
	require.Equal(t, 2, final.Attempt)
}
