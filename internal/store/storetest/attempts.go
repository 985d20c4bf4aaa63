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

// askAt posts a fresh ask of job at time at with a deadline after it and
// requires that it was created.
func (b *bundle) askAt(t testingT, job string, at time.Time, deadline time.Duration) (*relaytype.AskRecord, *relaytype.Job) {
	t.Helper()
	a := b.newAsk(job, deadline)
	a.CreatedAt, a.DeadlineAt = at, at.Add(deadline)
	rec, created, j := b.askInsert(t, a, "hash-"+a.AskID)
	require.True(t, created)
	return rec, j
}

// answerAt is b.answer at time at.
func (b *bundle) answerAt(a *relaytype.AskRecord, status relaytype.AnswerStatus, text string, at time.Time) *store.AnswerInsertParams {
	p := b.answer(a, status, text)
	p.Now = at
	return p
}

// requireAskClosed checks that the store answered ask a ERROR with an
// error text containing each of want, and logged the "answer" event.
func (b *bundle) requireAskClosed(t testingT, a *relaytype.AskRecord, want ...string) {
	t.Helper()
	got, err := b.store.AskGet(b.ctx, &store.AskGetParams{AskID: a.AskID})
	require.NoError(t, err)
	require.Equal(t, relaytype.StatusError, got.Status, "ask %s", a.AskID)
	require.NotNil(t, got.AnsweredAt)
	ans, err := b.store.AnswerGet(b.ctx, &store.AnswerGetParams{AskID: a.AskID})
	require.NoError(t, err)
	require.NotNil(t, ans, "ask %s has no answer", a.AskID)
	require.Equal(t, relaytype.StatusError, ans.Status)
	for _, w := range want {
		require.Contains(t, ans.Error, w)
	}
	found := false
	for _, ev := range b.events(t, a.JobID) {
		if ev.Type != relaytype.EventAnswer {
			continue
		}
		var p struct {
			AskID  string                 `json:"askId"`
			Status relaytype.AnswerStatus `json:"status"`
			Error  string                 `json:"error"`
		}
		require.NoError(t, json.Unmarshal(ev.Payload, &p))
		if p.AskID == a.AskID {
			require.False(t, found, "two answer events for ask %s", a.AskID)
			found = true
			require.Equal(t, relaytype.StatusError, p.Status)
			require.Equal(t, ans.Error, p.Error)
		}
	}
	require.True(t, found, "no answer event for ask %s", a.AskID)
}

// requireAttemptOver checks that err refuses an answer (or, repost, an
// ask) because the ask's attempt is over, with the CONFLICT code.
func requireAttemptOver(t testingT, err error, repost bool) {
	t.Helper()
	requireErrorIs(t, err, store.ErrAttemptOver)
	var over *store.AttemptOverError
	require.True(t, errors.As(err, &over), "want a *store.AttemptOverError, got %T", err)
	require.Equal(t, repost, over.Repost)
	if repost {
		requireErrorIs(t, err, relaytype.ErrAskConflict)
	} else {
		requireErrorIs(t, err, relaytype.ErrAnswerConflict)
	}
	require.Equal(t, relaytype.CodeConflict, relaytype.CodeOf(err))
	require.Contains(t, err.Error(), "which is over")
}

// pendingIDs returns the ids of the PENDING asks of a job.
func (b *bundle) pendingIDs(t testingT, job string) []string {
	t.Helper()
	asks, err := b.store.AskList(b.ctx, &store.AskListParams{JobID: job, Status: relaytype.StatusPending})
	require.NoError(t, err)
	out := make([]string, len(asks))
	for i, a := range asks {
		out[i] = a.AskID
	}
	return out
}

// exerciseAskAttempts checks that asks are bound to the attempt that
// posted them: an attempt that ends closes its pending asks, and an ask of
// an attempt that is over can neither be answered nor fail, hold up or be
// taken over by the job's next attempt.
func exerciseAskAttempts(t *testing.T, newStore func(t *testing.T) store.Store) {
	// A job asks, its relay dies (the lease lapses, the sweeper rescues
	// it), the retry asks again: the leftover ask neither keeps the job
	// waiting nor fails it, and answering it is a conflict.
	t.Run("RetryIsNotHeldOrFailedByOldAsk", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		const id = "job_retry_ask"
		b.insert(t, jobOpts{ID: id, MaxAttempts: 3, TTLS: 3600})
		b.claimOne(t, id, "worker-1", b.at(time.Minute))
		old, job := b.askAt(t, id, b.at(time.Minute+10*time.Second), 10*time.Minute)
		require.Equal(t, relaytype.StateWaitingOnAnswer, job.State)

		rescued, err := b.store.JobRescue(b.ctx, &store.JobRescueParams{Now: b.at(time.Minute + testLeaseTTL + time.Second)})
		require.NoError(t, err)
		require.Equal(t, []string{id}, ids(rescued))
		require.Equal(t, relaytype.StateQueued, rescued[0].State)
		b.requireAskClosed(t, old, "attempt 1", "lapsed", "attempt 2")
		require.Empty(t, b.pendingIDs(t, id), "the rescue closed the dead attempt's ask")

		job = b.claimOne(t, id, "worker-2", b.at(3*time.Minute))
		require.Equal(t, 2, job.Attempt)
		fresh, job := b.askAt(t, id, b.at(3*time.Minute+10*time.Second), time.Hour)
		require.Equal(t, relaytype.StateWaitingOnAnswer, job.State)
		require.Equal(t, []string{fresh.AskID}, b.pendingIDs(t, id))
		// Each ask records the attempt that posted it.
		require.Equal(t, 1, old.Attempt)
		require.Equal(t, 2, fresh.Attempt)
		for _, a := range []*relaytype.AskRecord{old, fresh} {
			got, err := b.store.AskGet(b.ctx, &store.AskGetParams{AskID: a.AskID})
			require.NoError(t, err)
			require.Equal(t, a.Attempt, got.Attempt, "ask %s", a.AskID)
		}

		// The old ask's deadline passes: the sweeper finds nothing due,
		// and its TIMEOUT (had it read the ask before the retry) changes
		// nothing.
		due, err := b.store.AskDue(b.ctx, &store.AskDueParams{Now: old.DeadlineAt.Add(time.Second)})
		require.NoError(t, err)
		require.Empty(t, due)
		before := b.snap(t, id)
		_, _, _, err = b.store.AnswerInsert(b.ctx, b.answerAt(old, relaytype.StatusTimeout, "", old.DeadlineAt))
		requireAttemptOver(t, err, false)
		b.requireUnchanged(t, id, before)
		// Nor does the orchestrator's late answer to the old ask.
		_, _, _, err = b.store.AnswerInsert(b.ctx, b.answerAt(old, relaytype.StatusAnswered, "late", old.DeadlineAt))
		requireAttemptOver(t, err, false)
		b.requireUnchanged(t, id, before)

		// Answering the live ask resumes the job.
		_, created, job, err := b.store.AnswerInsert(b.ctx, b.answerAt(fresh, relaytype.StatusAnswered, "yes", b.at(4*time.Minute)))
		require.NoError(t, err)
		require.True(t, created)
		require.Equal(t, relaytype.StateRunning, job.State)
		require.Equal(t, 2, job.Attempt)
		requireChain(t, job, b.transitions(t, id))
	})

	// A job whose relay shuts down while it waits on an answer is handed
	// back at once, its attempt's asks closed.
	t.Run("ReleaseWaitingJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		const id = "job_release_wait"
		b.insert(t, jobOpts{ID: id, MaxAttempts: 2, TTLS: 3600})
		b.claimOne(t, id, reachOwner, b.at(time.Minute))
		a1, _ := b.askAt(t, id, b.at(time.Minute+time.Second), time.Hour)
		a2, job := b.askAt(t, id, b.at(time.Minute+2*time.Second), time.Hour)
		require.Equal(t, relaytype.StateWaitingOnAnswer, job.State)

		before := b.snap(t, id)
		_, err := b.store.JobRelease(b.ctx, &store.JobReleaseParams{ID: id, Owner: "intruder", Now: b.at(80 * time.Second), Summary: "x"})
		requireErrorIs(t, err, relaytype.ErrLeaseLost)
		b.requireUnchanged(t, id, before)
		require.Len(t, b.pendingIDs(t, id), 2)

		now := b.at(80 * time.Second)
		job, err = b.store.JobRelease(b.ctx, &store.JobReleaseParams{ID: id, Owner: reachOwner, Now: now, Summary: "relay shut down during the run"})
		require.NoError(t, err)
		for _, j := range []*relaytype.Job{job, b.get(t, id)} {
			require.Equal(t, relaytype.StateStale, j.State)
			require.Equal(t, before.version(t)+2, j.StateVersion)
			require.Equal(t, 1, j.Attempt)
			requireTime(t, now, &j.UpdatedAt, "UpdatedAt")
		}
		_, err = b.store.JobHeartbeat(b.ctx, &store.JobHeartbeatParams{ID: id, Owner: reachOwner, Now: now, LeaseTTL: testLeaseTTL})
		requireErrorIs(t, err, relaytype.ErrLeaseLost)
		trs := b.transitions(t, id)
		requireChain(t, job, trs)
		tail := trs[len(trs)-2:]
		require.Equal(t, relaytype.StateWaitingOnAnswer, tail[0].From)
		require.Equal(t, relaytype.StateRunning, tail[0].To)
		require.Equal(t, relaytype.StateStale, tail[1].To)
		for _, a := range []*relaytype.AskRecord{a1, a2} {
			b.requireAskClosed(t, a, "attempt 1", "relay shut down during the run", "attempt 2")
		}
		require.Empty(t, b.pendingIDs(t, id))
		next, err := b.store.AskNextDeadline(b.ctx)
		require.NoError(t, err)
		require.True(t, next.IsZero(), "no deadline of a closed ask is left")
		_, _, _, err = b.store.AnswerInsert(b.ctx, b.answerAt(a1, relaytype.StatusAnswered, "late", b.at(2*time.Minute)))
		requireAttemptOver(t, err, false)

		// The next sweep requeues it; the next claim is attempt 2.
		wake, err := b.store.JobNextWake(b.ctx)
		require.NoError(t, err)
		require.False(t, wake.After(now), "a STALE job is due for the sweep at once")
		rescued, err := b.store.JobRescue(b.ctx, &store.JobRescueParams{Now: now})
		require.NoError(t, err)
		require.Equal(t, []string{id}, ids(rescued))
		require.Equal(t, relaytype.StateQueued, rescued[0].State)
		require.Equal(t, 2, b.claimOne(t, id, "worker-2", b.at(2*time.Minute)).Attempt)
	})

	t.Run("ReleaseRunningJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		const id = "job_release_run"
		before := b.reach(t, id, relaytype.StateRunning)
		job, err := b.store.JobRelease(b.ctx, &store.JobReleaseParams{ID: id, Owner: reachOwner, Now: b.at(reachMove), Summary: "stop"})
		require.NoError(t, err)
		require.Equal(t, relaytype.StateStale, job.State)
		require.Equal(t, before.StateVersion+1, job.StateVersion, "one transition")
		requireChain(t, job, b.transitions(t, id))
		// Without an owner, the lease is not checked.
		b.reach(t, "job_release_any", relaytype.StateRunning)
		job, err = b.store.JobRelease(b.ctx, &store.JobReleaseParams{ID: "job_release_any", Now: b.at(reachMove)})
		require.NoError(t, err)
		require.Equal(t, relaytype.StateStale, job.State)
	})

	for _, state := range []relaytype.JobState{relaytype.StateQueued, relaytype.StateStale, relaytype.StateSucceeded, relaytype.StateCanceled} {
		t.Run("ReleaseInactive/"+stateName(state), func(t *testing.T) {
			t.Parallel()
			b := setup(t, newStore)
			b.reach(t, "job_release_no", state)
			before := b.snap(t, "job_release_no")
			_, err := b.store.JobRelease(b.ctx, &store.JobReleaseParams{ID: "job_release_no", Now: b.at(5 * time.Minute)})
			requireErrorIs(t, err, relaytype.ErrIllegalTransition)
			var te *relaytype.TransitionError
			require.True(t, errors.As(err, &te), "want a *relaytype.TransitionError, got %T", err)
			require.Equal(t, state, te.From)
			require.Equal(t, relaytype.StateStale, te.To)
			b.requireUnchanged(t, "job_release_no", before)
		})
	}

	t.Run("ReleaseUnknownJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		_, err := b.store.JobRelease(b.ctx, &store.JobReleaseParams{ID: "job_missing", Now: b.now})
		requireErrorIs(t, err, relaytype.ErrJobNotFound)
	})

	// The worker's own path (the executor finished with asks pending, or
	// a dead relay's job reclaimed step by step) ends the attempt too.
	t.Run("StaleTransitionClosesAsks", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		const id = "job_stale_steps"
		b.reach(t, id, relaytype.StateRunning)
		a, _ := b.askAt(t, id, b.at(reachMove), time.Hour)
		job := b.transition(t, &store.JobTransitionParams{ID: id, To: relaytype.StateRunning, Owner: reachOwner, Now: b.at(reachMove + time.Second)})
		require.Equal(t, []string{a.AskID}, b.pendingIDs(t, id), "the attempt goes on")
		_, _, j2, err := b.store.AnswerInsert(b.ctx, b.answerAt(a, relaytype.StatusAnswered, "ok", b.at(reachMove+2*time.Second)))
		require.NoError(t, err, "an ask of the running attempt can still be answered")
		require.Equal(t, relaytype.StateRunning, j2.State)
		require.Equal(t, job.StateVersion, j2.StateVersion)

		a2, _ := b.askAt(t, id, b.at(reachMove+3*time.Second), time.Hour)
		b.transition(t, &store.JobTransitionParams{ID: id, To: relaytype.StateRunning, Owner: reachOwner, Now: b.at(reachMove + 4*time.Second)})
		b.transition(t, &store.JobTransitionParams{ID: id, To: relaytype.StateStale, Owner: reachOwner, Now: b.at(reachMove + 5*time.Second), Summary: "the relay that ran the job is gone"})
		b.requireAskClosed(t, a2, "attempt 1", "the relay that ran the job is gone")
		ans, err := b.store.AnswerGet(b.ctx, &store.AnswerGetParams{AskID: a.AskID})
		require.NoError(t, err)
		require.Equal(t, relaytype.StatusAnswered, ans.Status, "an answered ask stays answered")

		// A start outside JobClaim is attempt 2; the old ask stays closed.
		job = b.transition(t, &store.JobTransitionParams{ID: id, To: relaytype.StateRunning, Owner: "worker-2", LeaseTTL: testLeaseTTL, Now: b.at(3 * time.Minute)})
		require.Equal(t, 2, job.Attempt)
		_, _, _, err = b.store.AnswerInsert(b.ctx, b.answerAt(a2, relaytype.StatusRejected, "", b.at(3*time.Minute)))
		requireAttemptOver(t, err, false)
		require.Equal(t, relaytype.StateRunning, b.get(t, id).State)
	})

	// The last attempt's asks say that no retry follows.
	t.Run("LastAttempt", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		const id = "job_last_ask"
		b.insert(t, jobOpts{ID: id, MaxAttempts: 1, TTLS: 3600})
		b.claimOne(t, id, "worker-1", b.at(time.Minute))
		a, _ := b.askAt(t, id, b.at(time.Minute+time.Second), time.Hour)
		rescued, err := b.store.JobRescue(b.ctx, &store.JobRescueParams{Now: b.at(5 * time.Minute)})
		require.NoError(t, err)
		require.Equal(t, relaytype.StateFailed, rescued[0].State)
		b.requireAskClosed(t, a, "attempt 1", "all 1 attempts")
		_, _, _, err = b.store.AnswerInsert(b.ctx, b.answerAt(a, relaytype.StatusAnswered, "late", b.at(6*time.Minute)))
		requireAttemptOver(t, err, false)
		requireChain(t, b.get(t, id), b.transitions(t, id))
	})

	// An ask id of a dead attempt cannot be taken over by the next one,
	// even with the same payload; within its attempt a repeat is still
	// idempotent.
	t.Run("RepostInNewAttempt", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		const id = "job_repost"
		b.insert(t, jobOpts{ID: id, MaxAttempts: 2, TTLS: 3600})
		b.claimOne(t, id, reachOwner, b.at(time.Minute))
		a := b.newAsk(id, time.Hour)
		a.CreatedAt, a.DeadlineAt = b.at(time.Minute+time.Second), b.at(time.Hour)
		b.askInsert(t, a, "same")
		_, created, _ := b.askInsert(t, a, "same")
		require.False(t, created, "a repeat within the attempt is idempotent")

		_, err := b.store.JobRelease(b.ctx, &store.JobReleaseParams{ID: id, Owner: reachOwner, Now: b.at(80 * time.Second)})
		require.NoError(t, err)
		// While the job is STALE no ask is accepted at all.
		_, _, _, err = b.store.AskInsert(b.ctx, &store.AskInsertParams{Ask: b.newAsk(id, time.Hour), PayloadHash: "n", Now: b.at(85 * time.Second)})
		requireErrorIs(t, err, relaytype.ErrJobNotActive)
		_, err = b.store.JobRescue(b.ctx, &store.JobRescueParams{Now: b.at(90 * time.Second)})
		require.NoError(t, err)
		b.claimOne(t, id, "worker-2", b.at(2*time.Minute))
		before := b.snap(t, id)
		_, _, _, err = b.store.AskInsert(b.ctx, &store.AskInsertParams{Ask: a, PayloadHash: "same", Now: b.at(2*time.Minute + time.Second)})
		requireAttemptOver(t, err, true)
		b.requireUnchanged(t, id, before)
		b.requireAskClosed(t, a, "attempt 1")
	})

	// A job that ends keeps answering a late answer to an ask of its last
	// attempt with a conflict, as before.
	t.Run("EndedJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		const id = "job_ended_ask"
		b.reach(t, id, relaytype.StateRunning)
		a, _ := b.askAt(t, id, b.at(reachMove), time.Hour)
		b.transition(t, &store.JobTransitionParams{ID: id, To: relaytype.StateCanceled, Now: b.at(2 * time.Minute)})
		b.requireAskClosed(t, a, "CANCELED")
		before := b.snap(t, id)
		_, _, _, err := b.store.AnswerInsert(b.ctx, b.answerAt(a, relaytype.StatusTimeout, "", b.at(3*time.Minute)))
		requireAttemptOver(t, err, false)
		b.requireUnchanged(t, id, before)
	})
}

// version returns the stateVersion recorded in a snapshot.
func (s snapshot) version(t testingT) int64 {
	t.Helper()
	var j relaytype.Job
	require.NoError(t, json.Unmarshal([]byte(s.job), &j))
	return j.StateVersion
}
