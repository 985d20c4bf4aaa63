package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Times used by reach: a job is inserted at the base time, claimed at
// reachClaim and moved on at reachMove.
const (
	reachClaim = time.Minute
	reachMove  = 90 * time.Second
	reachOwner = "worker-1"
)

// reach inserts job id into an otherwise empty queue and drives it to state
// through the store's own operations, claiming it for reachOwner on the way
// where needed.
func (b *bundle) reach(t testingT, id string, state relaytype.JobState) *relaytype.Job {
	t.Helper()
	job := b.insert(t, jobOpts{ID: id, TTLS: 3600})
	move := func(to relaytype.JobState, reason relaytype.FailReason) *relaytype.Job {
		return b.transition(t, &store.JobTransitionParams{ID: id, To: to, Owner: reachOwner, LeaseTTL: testLeaseTTL, Now: b.at(reachMove), Reason: reason})
	}
	switch state {
	case relaytype.StateQueued:
		return job
	case relaytype.StateCanceled:
		return b.transition(t, &store.JobTransitionParams{ID: id, To: state, Now: b.at(reachMove)})
	case relaytype.StateExpired:
		expired, err := b.store.JobExpire(b.ctx, &store.JobExpireParams{Now: b.at(3601 * time.Second)})
		require.NoError(t, err)
		require.Equal(t, []string{id}, ids(expired))
		return b.get(t, id)
	}
	job = b.claimOne(t, id, reachOwner, b.at(reachClaim))
	switch state {
	case relaytype.StateRunning:
		return job
	case relaytype.StateWaitingOnAnswer, relaytype.StateStale, relaytype.StateSucceeded:
		return move(state, "")
	case relaytype.StateFailed:
		return move(state, relaytype.ReasonExecutorError)
	}
	require.FailNow(t, "reach: unknown state "+string(state))
	return nil
}

// exerciseJobClaim checks claim order, limits, the claimed job's fields,
// that expired jobs are skipped and that concurrent claimers never share a
// job.
func exerciseJobClaim(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("PriorityThenFIFO", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		prios := []relaytype.Priority{relaytype.PriorityP2, relaytype.PriorityP1, relaytype.PriorityP0, relaytype.PriorityP1, relaytype.PriorityP0, relaytype.PriorityP2}
		for i, p := range prios {
			b.insert(t, jobOpts{ID: fmt.Sprintf("job_%c", 'a'+i), Priority: p, At: b.at(time.Duration(i) * time.Second)})
		}
		var got []string
		for range prios {
			got = append(got, ids(b.claim(t, "worker-1", b.at(time.Minute), 1))...)
		}
		require.Equal(t, []string{"job_c", "job_e", "job_b", "job_d", "job_a", "job_f"}, got)
		require.Empty(t, b.claim(t, "worker-1", b.at(time.Minute), 1), "queue drained")
	})

	// Jobs submitted in the same instant run in insert order, whatever
	// their IDs.
	t.Run("SameTimeInInsertOrder", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		for _, id := range []string{"job_tie_c", "job_tie_a", "job_tie_b"} {
			b.insert(t, jobOpts{ID: id})
		}
		var got []string
		for range 3 {
			got = append(got, ids(b.claim(t, "worker-1", b.at(time.Minute), 1))...)
		}
		require.Equal(t, []string{"job_tie_c", "job_tie_a", "job_tie_b"}, got)
	})

	t.Run("Limit", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		for i := range 5 {
			b.insert(t, jobOpts{ID: fmt.Sprintf("job_limit_%d", i), At: b.at(time.Duration(i) * time.Second)})
		}
		first := b.claim(t, "worker-1", b.at(time.Minute), 3)
		require.ElementsMatch(t, []string{"job_limit_0", "job_limit_1", "job_limit_2"}, ids(first))
		second := b.claim(t, "worker-2", b.at(time.Minute), 3)
		require.ElementsMatch(t, []string{"job_limit_3", "job_limit_4"}, ids(second))
		require.Empty(t, b.claim(t, "worker-3", b.at(time.Minute), 3))
	})

	t.Run("ClaimedJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.insert(t, jobOpts{ID: "job_claimed", MaxAttempts: 3})
		now := b.at(time.Minute)
		for _, job := range []*relaytype.Job{b.claimOne(t, "job_claimed", "worker-7", now), b.get(t, "job_claimed")} {
			require.Equal(t, relaytype.StateRunning, job.State)
			require.Equal(t, int64(2), job.StateVersion)
			require.Equal(t, 1, job.Attempt)
			require.Equal(t, 3, job.MaxAttempts)
			require.Equal(t, "worker-7", job.LeaseOwner)
			requireTime(t, now.Add(testLeaseTTL), job.LeaseExpiresAt, "LeaseExpiresAt")
			requireTime(t, now, job.StartedAt, "StartedAt")
			requireTime(t, now, &job.UpdatedAt, "UpdatedAt")
			require.Nil(t, job.FinishedAt)
		}
		trs := b.transitions(t, "job_claimed")
		require.Len(t, trs, 1)
		require.Equal(t, relaytype.StateQueued, trs[0].From)
		require.Equal(t, relaytype.StateRunning, trs[0].To)
		require.Equal(t, int64(2), trs[0].StateVersion)
	})

	t.Run("SkipsExpired", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.insert(t, jobOpts{ID: "job_short", Priority: relaytype.PriorityP0, TTLS: 60})
		b.insert(t, jobOpts{ID: "job_long", Priority: relaytype.PriorityP2, TTLS: 600})
		// ExpiresAt == Now already counts as expired.
		require.Equal(t, []string{"job_long"}, ids(b.claim(t, "worker-1", b.at(60*time.Second), 10)))
		require.Empty(t, b.claim(t, "worker-1", b.at(61*time.Second), 10))
		require.Equal(t, relaytype.StateQueued, b.get(t, "job_short").State, "claim does not expire jobs")
	})

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		const jobs, workers = 40, 8
		for i := range jobs {
			b.insert(t, jobOpts{ID: fmt.Sprintf("job_cc_%02d", i), At: b.at(time.Duration(i) * time.Millisecond)})
		}
		claimed := make([][]*relaytype.Job, workers)
		errs := make([]error, workers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				<-start
				for {
					got, err := b.store.JobClaim(b.ctx, &store.JobClaimParams{
						Owner: fmt.Sprintf("worker-%d", w), Now: b.at(time.Minute), LeaseTTL: testLeaseTTL, Limit: 3,
					})
					if err != nil {
						errs[w] = err
						return
					}
					if len(got) == 0 {
						return
					}
					claimed[w] = append(claimed[w], got...)
				}
			})
		}
		close(start)
		wg.Wait()

		owners := map[string]string{}
		for w := range workers {
			require.NoError(t, errs[w], "worker %d", w)
			for _, job := range claimed[w] {
				owner := fmt.Sprintf("worker-%d", w)
				prev, dup := owners[job.ID]
				require.False(t, dup, "job %s claimed by %s and %s", job.ID, prev, owner)
				owners[job.ID] = owner
				require.Equal(t, owner, job.LeaseOwner)
			}
		}
		require.Len(t, owners, jobs, "every job claimed once")
		for id, owner := range owners {
			job := b.get(t, id)
			require.Equal(t, relaytype.StateRunning, job.State)
			require.Equal(t, owner, job.LeaseOwner)
			require.Equal(t, 1, job.Attempt)
			require.Equal(t, int64(2), job.StateVersion)
		}
	})
}

// exerciseJobHeartbeat checks that heartbeats extend the lease of the owner
// only and never change the state version.
func exerciseJobHeartbeat(t *testing.T, newStore func(t *testing.T) store.Store) {
	heartbeat := func(b *bundle, id, owner string, at time.Time) (*relaytype.Job, error) {
		return b.store.JobHeartbeat(b.ctx, &store.JobHeartbeatParams{ID: id, Owner: owner, Now: at, LeaseTTL: testLeaseTTL})
	}

	for _, state := range []relaytype.JobState{relaytype.StateRunning, relaytype.StateWaitingOnAnswer} {
		t.Run("Extends"+stateName(state), func(t *testing.T) {
			t.Parallel()
			b := setup(t, newStore)
			before := b.reach(t, "job_hb", state)
			eventsBefore := len(b.transitions(t, "job_hb"))

			now := b.at(reachMove + 20*time.Second)
			job, err := heartbeat(b, "job_hb", reachOwner, now)
			require.NoError(t, err)
			for _, j := range []*relaytype.Job{job, b.get(t, "job_hb")} {
				require.Equal(t, state, j.State)
				require.Equal(t, before.StateVersion, j.StateVersion, "a heartbeat is not a transition")
				require.Equal(t, reachOwner, j.LeaseOwner)
				requireTime(t, now.Add(testLeaseTTL), j.LeaseExpiresAt, "LeaseExpiresAt")
				if j.HeartbeatAt != nil {
					requireTime(t, now, j.HeartbeatAt, "HeartbeatAt")
				}
			}
			require.Len(t, b.transitions(t, "job_hb"), eventsBefore)
		})
	}

	t.Run("WrongOwner", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.reach(t, "job_hb", relaytype.StateRunning)
		before := b.snap(t, "job_hb")
		_, err := heartbeat(b, "job_hb", "intruder", b.at(reachMove))
		requireErrorIs(t, err, relaytype.ErrLeaseLost)
		b.requireUnchanged(t, "job_hb", before)
	})

	for _, state := range []relaytype.JobState{relaytype.StateQueued, relaytype.StateSucceeded, relaytype.StateFailed, relaytype.StateCanceled} {
		t.Run("Inactive"+stateName(state), func(t *testing.T) {
			t.Parallel()
			b := setup(t, newStore)
			b.reach(t, "job_hb", state)
			before := b.snap(t, "job_hb")
			_, err := heartbeat(b, "job_hb", reachOwner, b.at(2*reachMove))
			requireErrorIs(t, err, relaytype.ErrLeaseLost)
			b.requireUnchanged(t, "job_hb", before)
		})
	}

	t.Run("UnknownJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		_, err := heartbeat(b, "job_missing", reachOwner, b.now)
		requireErrorIs(t, err, relaytype.ErrJobNotFound, relaytype.ErrLeaseLost)
	})
}

// stateName turns QUEUED or WAITING_ON_ANSWER into Queued or WaitingOnAnswer
// for subtest names.
func stateName(s relaytype.JobState) string {
	out := []byte{}
	upper := true
	for _, c := range []byte(s) {
		switch {
		case c == '_':
			upper = true
		case upper:
			out = append(out, c)
			upper = false
		default:
			out = append(out, c-'A'+'a')
		}
	}
	return string(out)
}

// exerciseJobTransition checks every edge of the state machine, legal and
// illegal, lease ownership and what terminal transitions record.
func exerciseJobTransition(t *testing.T, newStore func(t *testing.T) store.Store) {
	for _, from := range relaytype.AllStates {
		for _, to := range relaytype.AllStates {
			if !relaytype.CanTransition(from, to) {
				continue
			}
			t.Run("Legal/"+stateName(from)+"To"+stateName(to), func(t *testing.T) {
				t.Parallel()
				b := setup(t, newStore)
				before := b.reach(t, "job_edge", from)
				trsBefore := b.transitions(t, "job_edge")

				now := b.at(5 * time.Minute)
				p := &store.JobTransitionParams{ID: "job_edge", To: to, LeaseTTL: testLeaseTTL, Now: now, Summary: "moved to " + string(to)}
				if to == relaytype.StateFailed {
					p.Reason = relaytype.ReasonTimeout
				}
				// Starting a job outside JobClaim names the new lease holder.
				start := to.Active() && !from.Active()
				if start {
					p.Owner = "worker-new"
				}
				for _, job := range []*relaytype.Job{b.transition(t, p), b.get(t, "job_edge")} {
					require.Equal(t, to, job.State)
					require.Equal(t, before.StateVersion+1, job.StateVersion)
					if !start {
						require.Equal(t, before.Attempt, job.Attempt, "only a claim counts an attempt")
					}
					requireTime(t, now, &job.UpdatedAt, "UpdatedAt")
					switch {
					case to.Terminal():
						requireTime(t, now, job.FinishedAt, "FinishedAt")
						require.Empty(t, job.LeaseOwner, "a terminal job holds no lease")
						require.Nil(t, job.LeaseExpiresAt, "a terminal job holds no lease")
						require.Equal(t, p.Reason, job.ReasonCode)
						require.Equal(t, p.Summary, job.Summary)
					case start:
						require.Equal(t, "worker-new", job.LeaseOwner, "a start takes a lease")
						requireTime(t, now.Add(testLeaseTTL), job.LeaseExpiresAt, "LeaseExpiresAt")
						require.LessOrEqual(t, job.Attempt, job.MaxAttempts)
					case to.Active():
						require.Equal(t, reachOwner, job.LeaseOwner, "the lease stays with its owner")
						requireTime(t, now.Add(testLeaseTTL), job.LeaseExpiresAt, "LeaseExpiresAt")
					}
				}
				trs := b.transitions(t, "job_edge")
				require.Len(t, trs, len(trsBefore)+1, "exactly one transition event")
				last := trs[len(trs)-1]
				require.Equal(t, from, last.From)
				require.Equal(t, to, last.To)
				require.Equal(t, before.StateVersion+1, last.StateVersion)
				requireChain(t, b.get(t, "job_edge"), trs)
			})
		}
	}

	for _, from := range relaytype.AllStates {
		t.Run("Illegal/From"+stateName(from), func(t *testing.T) {
			t.Parallel()
			b := setup(t, newStore)
			b.reach(t, "job_edge", from)
			before := b.snap(t, "job_edge")
			for _, to := range relaytype.AllStates {
				if relaytype.CanTransition(from, to) {
					continue
				}
				_, err := b.store.JobTransition(b.ctx, &store.JobTransitionParams{
					ID: "job_edge", To: to, LeaseTTL: testLeaseTTL, Now: b.at(5 * time.Minute),
					Artifacts: []*relaytype.Artifact{testArtifact("job_edge", relaytype.ArtifactPR, "illegal", b.at(5*time.Minute))},
				})
				requireErrorIs(t, err, relaytype.ErrIllegalTransition)
				var te *relaytype.TransitionError
				require.True(t, errors.As(err, &te), "%s → %s: want a *relaytype.TransitionError, got %T", from, to, err)
				require.Equal(t, from, te.From)
				require.Equal(t, to, te.To)
				b.requireUnchanged(t, "job_edge", before)
			}
		})
	}

	t.Run("OwnedPath", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.reach(t, "job_path", relaytype.StateRunning)
		path := []relaytype.JobState{relaytype.StateWaitingOnAnswer, relaytype.StateRunning, relaytype.StateWaitingOnAnswer, relaytype.StateRunning, relaytype.StateSucceeded}
		for i, to := range path {
			job := b.transition(t, &store.JobTransitionParams{ID: "job_path", To: to, Owner: reachOwner, LeaseTTL: testLeaseTTL, Now: b.at(2*time.Minute + time.Duration(i)*time.Second)})
			require.Equal(t, int64(3+i), job.StateVersion)
		}
		job := b.get(t, "job_path")
		trs := b.transitions(t, "job_path")
		require.Len(t, trs, 1+len(path))
		requireChain(t, job, trs)
	})

	for _, state := range []relaytype.JobState{relaytype.StateRunning, relaytype.StateWaitingOnAnswer} {
		t.Run("WrongOwner/"+stateName(state), func(t *testing.T) {
			t.Parallel()
			b := setup(t, newStore)
			b.reach(t, "job_owned", state)
			before := b.snap(t, "job_owned")
			for _, to := range []relaytype.JobState{relaytype.StateFailed, relaytype.StateCanceled} {
				_, err := b.store.JobTransition(b.ctx, &store.JobTransitionParams{ID: "job_owned", To: to, Owner: "intruder", Now: b.at(2 * time.Minute), Reason: relaytype.ReasonExecutorError})
				requireErrorIs(t, err, relaytype.ErrLeaseLost)
				b.requireUnchanged(t, "job_owned", before)
			}
		})
	}

	// A job that has used its attempts is not started again: the contract
	// fails it instead. The store may refuse the start or not count it, but
	// Attempt never passes MaxAttempts.
	t.Run("AttemptsNeverExceedMax", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.insert(t, jobOpts{ID: "job_spent", MaxAttempts: 1})
		b.claimOne(t, "job_spent", reachOwner, b.at(reachClaim))
		b.transition(t, &store.JobTransitionParams{ID: "job_spent", To: relaytype.StateStale, Now: b.at(reachMove)})
		job, err := b.store.JobTransition(b.ctx, &store.JobTransitionParams{ID: "job_spent", To: relaytype.StateRunning, Owner: "worker-new", LeaseTTL: testLeaseTTL, Now: b.at(2 * time.Minute)})
		if err == nil {
			require.LessOrEqual(t, job.Attempt, job.MaxAttempts, "STALE → RUNNING of a job with no attempts left")
		}
		job = b.get(t, "job_spent")
		require.LessOrEqual(t, job.Attempt, job.MaxAttempts, "STALE → RUNNING of a job with no attempts left")
	})

	t.Run("UnknownJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		_, err := b.store.JobTransition(b.ctx, &store.JobTransitionParams{ID: "job_missing", To: relaytype.StateCanceled, Now: b.now})
		requireErrorIs(t, err, relaytype.ErrJobNotFound)
	})
}

// exerciseJobRescue checks that lapsed leases are requeued or failed and
// live ones are left alone.
func exerciseJobRescue(t *testing.T, newStore func(t *testing.T) store.Store) {
	rescue := func(t *testing.T, b *bundle, at time.Duration) []*relaytype.Job {
		t.Helper()
		jobs, err := b.store.JobRescue(b.ctx, &store.JobRescueParams{Now: b.at(at)})
		require.NoError(t, err)
		return jobs
	}
	// requireTail checks the job's event chain and that its last
	// transitions are want.
	requireTail := func(t *testing.T, b *bundle, id string, want ...relaytype.JobState) {
		t.Helper()
		trs := b.transitions(t, id)
		requireChain(t, b.get(t, id), trs)
		require.GreaterOrEqual(t, len(trs), len(want)-1)
		tail := trs[len(trs)-len(want)+1:]
		for i, tr := range tail {
			require.Equal(t, want[i], tr.From, "transition %d of tail", i)
			require.Equal(t, want[i+1], tr.To, "transition %d of tail", i)
		}
	}

	t.Run("Requeue", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.insert(t, jobOpts{ID: "job_lapsed", MaxAttempts: 3})
		b.claimOne(t, "job_lapsed", "worker-1", b.at(time.Minute))

		require.Empty(t, rescue(t, b, time.Minute+testLeaseTTL-time.Second), "lease still live")
		require.Equal(t, relaytype.StateRunning, b.get(t, "job_lapsed").State)

		got := rescue(t, b, time.Minute+testLeaseTTL+time.Second)
		require.Equal(t, []string{"job_lapsed"}, ids(got))
		require.Equal(t, relaytype.StateQueued, got[0].State)
		job := b.get(t, "job_lapsed")
		require.Equal(t, relaytype.StateQueued, job.State)
		require.Equal(t, 1, job.Attempt, "the attempt is counted at the next claim")
		require.Empty(t, job.LeaseOwner, "a queued job holds no lease")
		require.Nil(t, job.LeaseExpiresAt, "a queued job holds no lease")
		require.Nil(t, job.FinishedAt)
		requireTail(t, b, "job_lapsed", relaytype.StateRunning, relaytype.StateStale, relaytype.StateQueued)

		job = b.claimOne(t, "job_lapsed", "worker-2", b.at(5*time.Minute))
		require.Equal(t, 2, job.Attempt)
		require.Equal(t, "worker-2", job.LeaseOwner)
	})

	t.Run("FailAfterMaxAttempts", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.insert(t, jobOpts{ID: "job_doomed", MaxAttempts: 2})
		b.claimOne(t, "job_doomed", "worker-1", b.at(time.Minute))
		require.Equal(t, relaytype.StateQueued, rescue(t, b, 2*time.Minute)[0].State)
		b.claimOne(t, "job_doomed", "worker-1", b.at(3*time.Minute))

		got := rescue(t, b, 4*time.Minute)
		require.Equal(t, []string{"job_doomed"}, ids(got))
		require.Equal(t, relaytype.StateFailed, got[0].State)
		job := b.get(t, "job_doomed")
		require.Equal(t, relaytype.StateFailed, job.State)
		require.Equal(t, relaytype.ReasonInternalError, job.ReasonCode)
		require.Equal(t, 2, job.Attempt)
		requireTime(t, b.at(4*time.Minute), job.FinishedAt, "FinishedAt")
		require.Empty(t, job.LeaseOwner)
		require.Nil(t, job.LeaseExpiresAt)
		requireTail(t, b, "job_doomed", relaytype.StateRunning, relaytype.StateStale, relaytype.StateFailed)
		require.Empty(t, b.claim(t, "worker-1", b.at(5*time.Minute), 10), "a failed job is not claimed again")
	})

	t.Run("MaxAttemptsOne", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.insert(t, jobOpts{ID: "job_once", MaxAttempts: 1})
		b.claimOne(t, "job_once", "worker-1", b.at(time.Minute))
		got := rescue(t, b, 2*time.Minute)
		require.Equal(t, []string{"job_once"}, ids(got))
		require.Equal(t, relaytype.StateFailed, b.get(t, "job_once").State)
	})

	t.Run("LiveLeasesUntouched", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.insert(t, jobOpts{ID: "job_early", Priority: relaytype.PriorityP0})
		b.insert(t, jobOpts{ID: "job_beating", Priority: relaytype.PriorityP1})
		b.insert(t, jobOpts{ID: "job_late", Priority: relaytype.PriorityP2})
		b.claimOne(t, "job_early", "worker-1", b.at(time.Minute))
		b.claimOne(t, "job_beating", "worker-3", b.at(time.Minute))
		b.claimOne(t, "job_late", "worker-2", b.at(time.Minute+20*time.Second))
		_, err := b.store.JobHeartbeat(b.ctx, &store.JobHeartbeatParams{ID: "job_beating", Owner: "worker-3", Now: b.at(time.Minute + 20*time.Second), LeaseTTL: testLeaseTTL})
		require.NoError(t, err)
		late, beating := b.snap(t, "job_late"), b.snap(t, "job_beating")

		got := rescue(t, b, time.Minute+40*time.Second)
		require.Equal(t, []string{"job_early"}, ids(got))
		b.requireUnchanged(t, "job_late", late)
		b.requireUnchanged(t, "job_beating", beating)
	})

	t.Run("WaitingOnAnswer", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.reach(t, "job_waiting", relaytype.StateWaitingOnAnswer)
		got := rescue(t, b, reachMove+testLeaseTTL+time.Second)
		require.Equal(t, []string{"job_waiting"}, ids(got))
		require.Equal(t, relaytype.StateQueued, got[0].State)
		job := b.get(t, "job_waiting")
		require.Equal(t, relaytype.StateQueued, job.State)
		require.Equal(t, 1, job.Attempt)
		require.Empty(t, job.LeaseOwner)
		requireTail(t, b, "job_waiting", relaytype.StateStale, relaytype.StateQueued)
	})

	t.Run("NothingToDo", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		require.Empty(t, rescue(t, b, time.Hour))
		b.insert(t, jobOpts{ID: "job_queued", TTLS: 60})
		require.Empty(t, rescue(t, b, time.Hour), "queued jobs hold no lease")
		require.Equal(t, relaytype.StateQueued, b.get(t, "job_queued").State)
	})
}

// exerciseJobExpire checks that only QUEUED jobs past their TTL expire.
func exerciseJobExpire(t *testing.T, newStore func(t *testing.T) store.Store) {
	b := setup(t, newStore)
	b.insert(t, jobOpts{ID: "job_old", TTLS: 60, Priority: relaytype.PriorityP1})
	b.insert(t, jobOpts{ID: "job_young", TTLS: 600, Priority: relaytype.PriorityP1})
	b.insert(t, jobOpts{ID: "job_running", TTLS: 60, Priority: relaytype.PriorityP0})
	b.insert(t, jobOpts{ID: "job_canceled", TTLS: 60, Priority: relaytype.PriorityP2})
	b.claimOne(t, "job_running", "worker-1", b.at(30*time.Second))
	b.transition(t, &store.JobTransitionParams{ID: "job_canceled", To: relaytype.StateCanceled, Now: b.at(30 * time.Second)})
	untouched := map[string]snapshot{}
	for _, id := range []string{"job_young", "job_running", "job_canceled"} {
		untouched[id] = b.snap(t, id)
	}

	expired, err := b.store.JobExpire(b.ctx, &store.JobExpireParams{Now: b.at(59 * time.Second)})
	require.NoError(t, err)
	require.Empty(t, expired, "TTL not over yet")

	now := b.at(61 * time.Second)
	expired, err = b.store.JobExpire(b.ctx, &store.JobExpireParams{Now: now})
	require.NoError(t, err)
	require.Equal(t, []string{"job_old"}, ids(expired))
	require.Equal(t, relaytype.StateExpired, expired[0].State)

	job := b.get(t, "job_old")
	require.Equal(t, relaytype.StateExpired, job.State)
	require.Equal(t, int64(2), job.StateVersion)
	requireTime(t, now, job.FinishedAt, "FinishedAt")
	trs := b.transitions(t, "job_old")
	require.Len(t, trs, 1)
	require.Equal(t, relaytype.TransitionPayload{From: relaytype.StateQueued, To: relaytype.StateExpired, StateVersion: 2},
		relaytype.TransitionPayload{From: trs[0].From, To: trs[0].To, StateVersion: trs[0].StateVersion})
	for id, before := range untouched {
		b.requireUnchanged(t, id, before)
	}

	expired, err = b.store.JobExpire(b.ctx, &store.JobExpireParams{Now: b.at(time.Hour)})
	require.NoError(t, err)
	require.Equal(t, []string{"job_young"}, ids(expired), "an expired job does not expire twice")
}

// exerciseJobNextWake checks that the next wake-up is the earliest queued
// TTL or active lease end, and zero when there is none.
func exerciseJobNextWake(t *testing.T, newStore func(t *testing.T) store.Store) {
	b := setup(t, newStore)
	requireWake := func(want time.Duration) {
		t.Helper()
		got, err := b.store.JobNextWake(b.ctx)
		require.NoError(t, err)
		if want < 0 {
			require.True(t, got.IsZero(), "want no wake-up, got %s", got)
			return
		}
		requireTime(t, b.at(want), &got, "next wake")
	}

	requireWake(-1)
	b.insert(t, jobOpts{ID: "job_a", TTLS: 600, Priority: relaytype.PriorityP2})
	requireWake(600 * time.Second)
	b.insert(t, jobOpts{ID: "job_b", TTLS: 300, Priority: relaytype.PriorityP0})
	requireWake(300 * time.Second)

	b.claimOne(t, "job_b", "worker-1", b.at(10*time.Second))
	requireWake(10*time.Second + testLeaseTTL)
	_, err := b.store.JobHeartbeat(b.ctx, &store.JobHeartbeatParams{ID: "job_b", Owner: "worker-1", Now: b.at(20 * time.Second), LeaseTTL: testLeaseTTL})
	require.NoError(t, err)
	requireWake(20*time.Second + testLeaseTTL)
	b.transition(t, &store.JobTransitionParams{ID: "job_b", To: relaytype.StateWaitingOnAnswer, Owner: "worker-1", LeaseTTL: testLeaseTTL, Now: b.at(25 * time.Second)})
	requireWake(25*time.Second + testLeaseTTL)
	b.transition(t, &store.JobTransitionParams{ID: "job_b", To: relaytype.StateCanceled, Now: b.at(30 * time.Second)})
	requireWake(600 * time.Second)

	b.transition(t, &store.JobTransitionParams{ID: "job_a", To: relaytype.StateCanceled, Now: b.at(40 * time.Second)})
	requireWake(-1)
}
