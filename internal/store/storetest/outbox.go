package storetest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// outboxOf returns the outbox messages of a job.
func (b *bundle) outboxOf(t testingT, jobID string) []*store.OutboxMessage {
	t.Helper()
	msgs, err := b.store.OutboxList(b.ctx, &store.OutboxListParams{JobID: jobID})
	require.NoError(t, err)
	return msgs
}

// outboxClaim claims up to limit messages for owner at time at.
func (b *bundle) outboxClaim(t testingT, owner string, at time.Time, limit int) []*store.OutboxMessage {
	t.Helper()
	msgs, err := b.store.OutboxClaim(b.ctx, &store.OutboxClaimParams{Owner: owner, Now: at, LeaseTTL: testLeaseTTL, Limit: limit})
	require.NoError(t, err)
	return msgs
}

func outboxIDs(msgs []*store.OutboxMessage) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// enqueue stores a generic message due at at.
func (b *bundle) enqueue(t testingT, id, project string, at time.Time) *store.OutboxMessage {
	t.Helper()
	m, created, err := b.store.OutboxEnqueue(b.ctx, &store.OutboxEnqueueParams{Now: at, Message: &store.OutboxMessage{
		ID: id, Project: project, Kind: "test", Target: "https://example.com/" + id, Payload: json.RawMessage(`{"n":1}`),
	}})
	require.NoError(t, err)
	require.True(t, created)
	return m
}

// exerciseOutbox checks that terminal transitions enqueue a job's
// notifications exactly once and in the same transaction, and the
// deliverer's side: claims under a lease, acknowledgement, retries with a
// due time, giving up, and the lease rules of each.
func exerciseOutbox(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("TerminalTransitionEnqueuesOnce", func(t *testing.T) {
		t.Parallel()
		for _, st := range []relaytype.JobState{relaytype.StateQueued, relaytype.StateRunning, relaytype.StateWaitingOnAnswer, relaytype.StateStale} {
			b := setup(t, newStore)
			id := "job_ob_" + string(st)
			b.reach(t, id, st)
			require.Empty(t, b.outboxOf(t, id), "a %s job has no notification", st)
		}
		for _, st := range []relaytype.JobState{relaytype.StateSucceeded, relaytype.StateFailed, relaytype.StateCanceled, relaytype.StateExpired} {
			b := setup(t, newStore)
			id := "job_ob_" + string(st)
			job := b.reach(t, id, st)
			msgs := b.outboxOf(t, id)
			require.Len(t, msgs, 1, "a %s job has exactly one notification", st)
			m := msgs[0]
			require.Equal(t, store.OutboxKindWebhook, m.Kind)
			require.Equal(t, job.Spec.Notify.Webhook, m.Target)
			require.Equal(t, store.OutboxPending, m.Status)
			require.Equal(t, 0, m.Attempts)
			require.Equal(t, store.OutboxMessageID(id, store.OutboxKindWebhook, m.Target, string(st)), m.ID)
			require.True(t, job.UpdatedAt.Equal(m.CreatedAt), "enqueued at the transition's time")
			require.True(t, job.UpdatedAt.Equal(m.NextAttemptAt), "due at once")
			var n store.JobNotification
			require.NoError(t, json.Unmarshal(m.Payload, &n))
			require.Equal(t, "job."+map[relaytype.JobState]string{relaytype.StateSucceeded: "succeeded", relaytype.StateFailed: "failed",
				relaytype.StateCanceled: "canceled", relaytype.StateExpired: "expired"}[st], n.Type)
			require.Equal(t, id, n.Data.JobID)
			require.Equal(t, st, n.Data.State)
			require.Equal(t, job.ReasonCode, n.Data.ReasonCode)
			require.Equal(t, job.Attempt, n.Data.Attempt)
			require.NotNil(t, n.Data.FinishedAt)
			require.True(t, job.FinishedAt.Equal(*n.Data.FinishedAt))
			// A terminal job cannot end again, so nothing is enqueued twice.
			_, err := b.store.JobTransition(b.ctx, &store.JobTransitionParams{ID: id, To: relaytype.StateCanceled, Now: b.at(time.Hour)})
			require.Error(t, err)
			require.Len(t, b.outboxOf(t, id), 1)
		}
	})

	t.Run("PayloadCarriesArtifactsAndNoURL", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.insert(t, jobOpts{ID: "job_ob_arts"})
		b.claimOne(t, "job_ob_arts", "w1", b.at(time.Second))
		digest := "sha256:" + fmt.Sprintf("%064x", 7)
		b.transition(t, &store.JobTransitionParams{ID: "job_ob_arts", To: relaytype.StateFailed, Owner: "w1", Now: b.at(time.Minute),
			Reason: relaytype.ReasonExecutorError, Summary: "push to https://user:pw@git.example.com/x.git failed",
			Artifacts: []*relaytype.Artifact{{Kind: relaytype.ArtifactLogs, URI: relaytype.ArtifactURI("job_ob_arts", relaytype.ArtifactLogs), Digest: digest, Size: 42}}})
		msgs := b.outboxOf(t, "job_ob_arts")
		require.Len(t, msgs, 1)
		require.NotContains(t, string(msgs[0].Payload), "://", "the payload holds no URL")
		var n store.JobNotification
		require.NoError(t, json.Unmarshal(msgs[0].Payload, &n))
		require.Equal(t, relaytype.ReasonExecutorError, n.Data.ReasonCode)
		require.Equal(t, "push to [url] failed", n.Data.Summary)
		require.Equal(t, []store.JobNotificationArtifact{{Kind: relaytype.ArtifactLogs, Digest: digest, Size: 42}}, n.Data.Artifacts)
	})

	t.Run("OtherTerminalPaths", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		// A rejected answer fails the job.
		b.reach(t, "job_ob_ans", relaytype.StateRunning)
		a := b.newAsk("job_ob_ans", time.Minute)
		b.askInsert(t, a, "h")
		_, _, job, err := b.store.AnswerInsert(b.ctx, b.answer(a, relaytype.StatusRejected, "no"))
		require.NoError(t, err)
		require.Equal(t, relaytype.StateFailed, job.State)
		require.Len(t, b.outboxOf(t, "job_ob_ans"), 1)
		// A job whose lease lapsed on its last attempt is failed by rescue.
		b.insert(t, jobOpts{ID: "job_ob_rescue", MaxAttempts: 1})
		b.claimOne(t, "job_ob_rescue", "w1", b.at(time.Second))
		rescued, err := b.store.JobRescue(b.ctx, &store.JobRescueParams{Now: b.at(time.Hour)})
		require.NoError(t, err)
		require.Equal(t, []string{"job_ob_rescue"}, ids(rescued))
		require.Equal(t, relaytype.StateFailed, rescued[0].State)
		require.Len(t, b.outboxOf(t, "job_ob_rescue"), 1)
		// A job without notify.webhook enqueues nothing.
		p := b.insertParams(jobOpts{ID: "job_ob_quiet"})
		p.Spec.Notify = nil
		_, _, err = b.store.JobInsert(b.ctx, p)
		require.NoError(t, err)
		b.transition(t, &store.JobTransitionParams{ID: "job_ob_quiet", To: relaytype.StateCanceled, Now: b.at(time.Second)})
		require.Empty(t, b.outboxOf(t, "job_ob_quiet"))
	})

	t.Run("EnqueueIsIdempotent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		m := b.enqueue(t, "msg_a", "p1", b.now)
		require.Equal(t, store.OutboxPending, m.Status)
		require.JSONEq(t, `{"n":1}`, string(m.Payload))
		again, created, err := b.store.OutboxEnqueue(b.ctx, &store.OutboxEnqueueParams{Now: b.at(time.Hour), Message: &store.OutboxMessage{
			ID: "msg_a", Kind: "test", Target: "https://example.com/other", Payload: json.RawMessage(`{}`)}})
		require.NoError(t, err)
		require.False(t, created)
		require.Equal(t, "https://example.com/msg_a", again.Target)
		require.True(t, b.now.Equal(again.CreatedAt))
	})

	t.Run("ClaimLeaseAck", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.enqueue(t, "msg_1", "p1", b.now)
		b.enqueue(t, "msg_2", "p2", b.at(time.Second))
		b.enqueue(t, "msg_later", "p1", b.at(time.Hour))

		// Nothing is due before it was enqueued; a project filter applies.
		none, err := b.store.OutboxClaim(b.ctx, &store.OutboxClaimParams{Owner: "a", Now: b.at(2 * time.Second), LeaseTTL: testLeaseTTL, Limit: 10, Projects: []string{}})
		require.NoError(t, err)
		require.Empty(t, none)
		got, err := b.store.OutboxClaim(b.ctx, &store.OutboxClaimParams{Owner: "a", Now: b.at(2 * time.Second), LeaseTTL: testLeaseTTL, Limit: 10, Projects: []string{"p2"}})
		require.NoError(t, err)
		require.Equal(t, []string{"msg_2"}, outboxIDs(got))
		require.Equal(t, 1, got[0].Attempts)
		require.Equal(t, "a", got[0].LeaseOwner)
		requireTime(t, b.at(2*time.Second+testLeaseTTL), got[0].LeaseExpiresAt, "lease expiry")

		got = b.outboxClaim(t, "a", b.at(2*time.Second), 10)
		require.Equal(t, []string{"msg_1"}, outboxIDs(got), "due messages only, leased ones excluded")
		// A second deliverer gets nothing while the leases hold.
		require.Empty(t, b.outboxClaim(t, "b", b.at(3*time.Second), 10))
		next, err := b.store.OutboxNextDue(b.ctx)
		require.NoError(t, err)
		require.True(t, b.at(2*time.Second+testLeaseTTL).Equal(next), "next due is the end of the leases: %s", next)

		// Once the lease lapses another deliverer takes over; the first
		// one's acknowledgement is refused.
		got = b.outboxClaim(t, "b", b.at(2*time.Second+testLeaseTTL), 1)
		require.Equal(t, []string{"msg_1"}, outboxIDs(got))
		require.Equal(t, 2, got[0].Attempts)
		requireErrorIs(t, b.store.OutboxAck(b.ctx, &store.OutboxAckParams{ID: "msg_1", Owner: "a", Now: b.at(time.Minute)}), store.ErrOutboxLeaseLost)
		require.NoError(t, b.store.OutboxAck(b.ctx, &store.OutboxAckParams{ID: "msg_1", Owner: "b", Now: b.at(time.Minute)}))
		requireErrorIs(t, b.store.OutboxAck(b.ctx, &store.OutboxAckParams{ID: "msg_1", Owner: "b", Now: b.at(time.Minute)}), store.ErrOutboxLeaseLost)
		requireErrorIs(t, b.store.OutboxAck(b.ctx, &store.OutboxAckParams{ID: "msg_none", Owner: "b", Now: b.at(time.Minute)}), store.ErrOutboxNotFound)

		msgs, err := b.store.OutboxList(b.ctx, &store.OutboxListParams{Status: store.OutboxDelivered})
		require.NoError(t, err)
		require.Equal(t, []string{"msg_1"}, outboxIDs(msgs))
		require.Empty(t, msgs[0].LeaseOwner)
		requireTime(t, b.at(time.Minute), msgs[0].DoneAt, "delivered at")
		// Delivered messages are never claimed again.
		require.Equal(t, []string{"msg_2"}, outboxIDs(b.outboxClaim(t, "c", b.at(30*time.Minute), 10)))
		// msg_2's new lease lapses unacknowledged: it is due again.
		require.Equal(t, []string{"msg_2", "msg_later"}, outboxIDs(b.outboxClaim(t, "c", b.at(2*time.Hour), 10)))
	})

	t.Run("RetryBackoff", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.enqueue(t, "msg_r", "", b.now)
		require.Len(t, b.outboxClaim(t, "a", b.now, 1), 1)
		requireErrorIs(t, b.store.OutboxRetry(b.ctx, &store.OutboxRetryParams{ID: "msg_r", Owner: "b", Now: b.at(time.Second),
			NextAttemptAt: b.at(time.Minute), Error: "x"}), store.ErrOutboxLeaseLost)
		require.NoError(t, b.store.OutboxRetry(b.ctx, &store.OutboxRetryParams{ID: "msg_r", Owner: "a", Now: b.at(time.Second),
			NextAttemptAt: b.at(time.Minute), Error: "HTTP 500"}))
		next, err := b.store.OutboxNextDue(b.ctx)
		require.NoError(t, err)
		require.True(t, b.at(time.Minute).Equal(next), "next due %s", next)
		require.Empty(t, b.outboxClaim(t, "a", b.at(time.Minute-time.Millisecond), 1), "not due before its retry time")
		got := b.outboxClaim(t, "b", b.at(time.Minute), 1)
		require.Len(t, got, 1)
		require.Equal(t, 2, got[0].Attempts)
		require.Equal(t, "HTTP 500", got[0].LastError)
		require.Equal(t, store.OutboxPending, got[0].Status)
		require.NoError(t, b.store.OutboxAck(b.ctx, &store.OutboxAckParams{ID: "msg_r", Owner: "b", Now: b.at(time.Minute)}))
		next, err = b.store.OutboxNextDue(b.ctx)
		require.NoError(t, err)
		require.True(t, next.IsZero(), "nothing pending")
	})

	t.Run("GiveUp", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.enqueue(t, "msg_g", "", b.now)
		require.Len(t, b.outboxClaim(t, "a", b.now, 1), 1)
		require.NoError(t, b.store.OutboxGiveUp(b.ctx, &store.OutboxGiveUpParams{ID: "msg_g", Owner: "a", Now: b.at(time.Second), Error: "too old"}))
		msgs, err := b.store.OutboxList(b.ctx, &store.OutboxListParams{Status: store.OutboxExpired})
		require.NoError(t, err)
		require.Equal(t, []string{"msg_g"}, outboxIDs(msgs))
		require.Equal(t, "too old", msgs[0].LastError)
		requireTime(t, b.at(time.Second), msgs[0].DoneAt, "given up at")
		require.Empty(t, b.outboxClaim(t, "a", b.at(48*time.Hour), 1), "an expired message is never claimed")
		requireErrorIs(t, b.store.OutboxRetry(b.ctx, &store.OutboxRetryParams{ID: "msg_g", Owner: "a", Now: b.at(time.Minute),
			NextAttemptAt: b.at(time.Hour)}), store.ErrOutboxLeaseLost)
	})
}
