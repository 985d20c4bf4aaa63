package storetest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// exerciseFencing checks fenced writes (see store's Fenced writes): a
// worker's heartbeat, transition, release, log event or ask that names an
// attempt (and lease) that is no longer the job's is refused with
// relaytype.ErrLeaseLost and changes nothing.
func exerciseFencing(t *testing.T, newStore func(t *testing.T) store.Store) {
	// The relay's lease lapses, the sweeper requeues the job, and the same
	// relay (one Owner name) claims it again as attempt 2: its leftover
	// worker of attempt 1 can no longer write anything, and attempt 2's
	// worker can.
	t.Run("SameOwnerNextAttempt", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		const id, owner = "job_fence", "relay-1"
		b.insert(t, jobOpts{ID: id, MaxAttempts: 3, TTLS: 3600})
		first := b.claimOne(t, id, owner, b.at(time.Minute))
		require.Equal(t, 1, first.Attempt)
		rescued, err := b.store.JobRescue(b.ctx, &store.JobRescueParams{Now: b.at(time.Minute + testLeaseTTL)})
		require.NoError(t, err)
		require.Equal(t, []string{id}, ids(rescued))
		require.Equal(t, relaytype.StateQueued, rescued[0].State)

		// While the job waits in the queue, attempt 1's worker cannot
		// start it again by moving it to RUNNING.
		queued := b.snap(t, id)
		_, err = b.store.JobTransition(b.ctx, &store.JobTransitionParams{ID: id, To: relaytype.StateRunning, Owner: owner,
			Attempt: 1, LeaseTTL: testLeaseTTL, Now: b.at(2 * time.Minute)})
		requireErrorIs(t, err, relaytype.ErrLeaseLost)
		b.requireUnchanged(t, id, queued)

		second := b.claimOne(t, id, owner, b.at(3*time.Minute))
		require.Equal(t, 2, second.Attempt)
		require.Equal(t, owner, second.LeaseOwner)
		at := b.at(3*time.Minute + 10*time.Second)
		before := b.snap(t, id)

		refused := func(what string, err error) {
			t.Helper()
			requireErrorIs(t, err, relaytype.ErrLeaseLost)
			require.Equal(t, relaytype.CodeLeaseLost, relaytype.CodeOf(err), what)
			b.requireUnchanged(t, id, before)
			require.Empty(t, b.pendingIDs(t, id), what)
		}
		_, err = b.store.JobHeartbeat(b.ctx, &store.JobHeartbeatParams{ID: id, Owner: owner, Attempt: 1, Now: at, LeaseTTL: time.Hour})
		refused("heartbeat", err)
		for _, to := range []relaytype.JobState{relaytype.StateSucceeded, relaytype.StateFailed, relaytype.StateWaitingOnAnswer, relaytype.StateStale} {
			_, err = b.store.JobTransition(b.ctx, &store.JobTransitionParams{ID: id, To: to, Owner: owner, Attempt: 1,
				LeaseTTL: testLeaseTTL, Now: at, Reason: relaytype.ReasonExecutorError, Summary: "attempt 1 ended",
				Artifacts: []*relaytype.Artifact{testArtifact(id, relaytype.ArtifactPatch, "attempt-1", at)}})
			refused("transition to "+string(to), err)
		}
		_, err = b.store.JobRelease(b.ctx, &store.JobReleaseParams{ID: id, Owner: owner, Attempt: 1, Now: at, Summary: "shutdown"})
		refused("release", err)
		_, err = b.store.EventAppend(b.ctx, &store.EventAppendParams{JobID: id, Type: relaytype.EventLog,
			Payload: json.RawMessage(`{"line":"from attempt 1"}`), Now: at, Owner: owner, Attempt: 1})
		refused("log event", err)
		ask := b.newAsk(id, time.Hour)
		ask.CreatedAt, ask.DeadlineAt = at, at.Add(time.Hour)
		_, _, _, err = b.store.AskInsert(b.ctx, &store.AskInsertParams{Ask: ask, Attempt: 1, PayloadHash: "h", Now: at})
		requireErrorIs(t, err, store.ErrAttemptOver)
		refused("ask", err)
		_, err = b.store.AskGet(b.ctx, &store.AskGetParams{AskID: ask.AskID})
		requireErrorIs(t, err, relaytype.ErrAskNotFound)

		// Attempt 2's worker writes as usual.
		job, err := b.store.JobHeartbeat(b.ctx, &store.JobHeartbeatParams{ID: id, Owner: owner, Attempt: 2, Now: at, LeaseTTL: testLeaseTTL})
		require.NoError(t, err)
		requireTime(t, at.Add(testLeaseTTL), job.LeaseExpiresAt, "LeaseExpiresAt")
		ev, err := b.store.EventAppend(b.ctx, &store.EventAppendParams{JobID: id, Type: relaytype.EventLog,
			Payload: json.RawMessage(`{"line":"from attempt 2"}`), Now: at, Owner: owner, Attempt: 2})
		require.NoError(t, err)
		require.Equal(t, relaytype.EventLog, ev.Type)
		rec, created, job, err := b.store.AskInsert(b.ctx, &store.AskInsertParams{Ask: ask, Attempt: 2, PayloadHash: "h", Now: at})
		require.NoError(t, err)
		require.True(t, created)
		require.Equal(t, relaytype.StateWaitingOnAnswer, job.State)
		_, _, job, err = b.store.AnswerInsert(b.ctx, b.answerAt(rec, relaytype.StatusAnswered, "yes", at.Add(time.Second)))
		require.NoError(t, err)
		require.Equal(t, relaytype.StateRunning, job.State)
		job, err = b.store.JobTransition(b.ctx, &store.JobTransitionParams{ID: id, To: relaytype.StateSucceeded, Owner: owner,
			Attempt: 2, Now: at.Add(2 * time.Second)})
		require.NoError(t, err)
		require.Equal(t, relaytype.StateSucceeded, job.State)
		require.Equal(t, 2, job.Attempt)
		requireChain(t, job, b.transitions(t, id))
	})

	t.Run("Heartbeat", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.reach(t, "job_fence_hb", relaytype.StateWaitingOnAnswer)
		before := b.snap(t, "job_fence_hb")
		for _, attempt := range []int{2, -1} {
			_, err := b.store.JobHeartbeat(b.ctx, &store.JobHeartbeatParams{ID: "job_fence_hb", Owner: reachOwner, Attempt: attempt,
				Now: b.at(reachMove + time.Second), LeaseTTL: testLeaseTTL})
			requireErrorIs(t, err, relaytype.ErrLeaseLost)
			b.requireUnchanged(t, "job_fence_hb", before)
		}
		for _, attempt := range []int{1, 0} { // its attempt, or no fence
			job, err := b.store.JobHeartbeat(b.ctx, &store.JobHeartbeatParams{ID: "job_fence_hb", Owner: reachOwner, Attempt: attempt,
				Now: b.at(reachMove + time.Second), LeaseTTL: testLeaseTTL})
			require.NoError(t, err)
			require.Equal(t, relaytype.StateWaitingOnAnswer, job.State)
		}
	})

	t.Run("TransitionAndRelease", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		const id = "job_fence_tr"
		b.reach(t, id, relaytype.StateRunning)
		before := b.snap(t, id)
		now := b.at(reachMove + time.Second)
		_, err := b.store.JobTransition(b.ctx, &store.JobTransitionParams{ID: id, To: relaytype.StateSucceeded, Owner: reachOwner, Attempt: 2, Now: now})
		requireErrorIs(t, err, relaytype.ErrLeaseLost)
		b.requireUnchanged(t, id, before)
		_, err = b.store.JobRelease(b.ctx, &store.JobReleaseParams{ID: id, Owner: reachOwner, Attempt: 2, Now: now})
		requireErrorIs(t, err, relaytype.ErrLeaseLost)
		b.requireUnchanged(t, id, before)
		job, err := b.store.JobRelease(b.ctx, &store.JobReleaseParams{ID: id, Owner: reachOwner, Attempt: 1, Now: now, Summary: "shutdown"})
		require.NoError(t, err)
		require.Equal(t, relaytype.StateStale, job.State)
	})

	// EventAppend with an owner or attempt needs the job active, leased to
	// the owner, at the attempt; without them it appends to any job.
	t.Run("EventAppend", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		const id = "job_fence_ev"
		b.reach(t, id, relaytype.StateRunning)
		now := b.at(reachMove + time.Second)
		appendAs := func(owner string, attempt int) error {
			_, err := b.store.EventAppend(b.ctx, &store.EventAppendParams{JobID: id, Type: relaytype.EventLog,
				Payload: json.RawMessage(`{"line":"x"}`), Now: now, Owner: owner, Attempt: attempt})
			return err
		}
		before := b.snap(t, id)
		for _, w := range []struct {
			owner   string
			attempt int
		}{{"intruder", 1}, {reachOwner, 2}, {"intruder", 0}, {"", 2}} {
			requireErrorIs(t, appendAs(w.owner, w.attempt), relaytype.ErrLeaseLost)
			b.requireUnchanged(t, id, before)
		}
		require.NoError(t, appendAs(reachOwner, 1))
		require.NoError(t, appendAs(reachOwner, 0))
		require.NoError(t, appendAs("", 1))
		require.Len(t, b.events(t, id), before.events+3)

		_, err := b.store.JobRelease(b.ctx, &store.JobReleaseParams{ID: id, Owner: reachOwner, Attempt: 1, Now: now})
		require.NoError(t, err)
		stale := b.snap(t, id)
		requireErrorIs(t, appendAs(reachOwner, 1), relaytype.ErrLeaseLost)
		requireErrorIs(t, appendAs("", 1), relaytype.ErrLeaseLost)
		b.requireUnchanged(t, id, stale)
		require.NoError(t, appendAs("", 0), "an unfenced append is not checked")
		require.Len(t, b.events(t, id), stale.events+1)

		_, err = b.store.EventAppend(b.ctx, &store.EventAppendParams{JobID: "job_missing", Type: relaytype.EventLog, Now: now,
			Owner: reachOwner, Attempt: 1})
		requireErrorIs(t, err, relaytype.ErrJobNotFound)
	})

	t.Run("AskInsert", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		const id = "job_fence_ask"
		b.reach(t, id, relaytype.StateRunning)
		before := b.snap(t, id)
		a := b.newAsk(id, time.Hour)
		_, _, _, err := b.store.AskInsert(b.ctx, &store.AskInsertParams{Ask: a, Attempt: 2, PayloadHash: "h", Now: a.CreatedAt})
		requireErrorIs(t, err, store.ErrAttemptOver)
		requireErrorIs(t, err, relaytype.ErrLeaseLost)
		var over *store.AttemptOverError
		require.False(t, errors.As(err, &over))
		b.requireUnchanged(t, id, before)
		require.Empty(t, b.pendingIDs(t, id))

		rec, created, job, err := b.store.AskInsert(b.ctx, &store.AskInsertParams{Ask: a, Attempt: 1, PayloadHash: "h", Now: a.CreatedAt})
		require.NoError(t, err)
		require.True(t, created)
		require.Equal(t, relaytype.StateWaitingOnAnswer, job.State)
		require.Equal(t, a.AskID, rec.AskID)
		// A repeat names its attempt too.
		_, created, _, err = b.store.AskInsert(b.ctx, &store.AskInsertParams{Ask: a, Attempt: 1, PayloadHash: "h", Now: a.CreatedAt})
		require.NoError(t, err)
		require.False(t, created)
	})
}
