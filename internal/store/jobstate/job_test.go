package jobstate_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/jobstate"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// job returns a job in state with the given attempt of 3, leased to
// "w1" when active.
func job(state relaytype.JobState, attempt int) *relaytype.Job {
	j := &relaytype.Job{
		ID: "job_1", IdempotencyKey: "k", State: state, StateVersion: 5, Attempt: attempt, MaxAttempts: 3,
		Executor: "codex", CreatedAt: t0.Add(-time.Hour), UpdatedAt: t0.Add(-time.Minute), ExpiresAt: t0.Add(time.Hour),
		Project: "/p",
		Spec: relaytype.JobSpec{IdempotencyKey: "k", Task: relaytype.Task{Title: "fix it"},
			Execution: relaytype.Execution{TTLS: 600, MaxAttempts: 3}},
	}
	if attempt > 0 {
		started := t0.Add(-30 * time.Minute)
		j.StartedAt = &started
	}
	if state.Active() || state == relaytype.StateStale {
		lease := t0.Add(time.Minute)
		j.LeaseOwner, j.LeaseExpiresAt = "w1", &lease
	}
	return j
}

func withWebhook(j *relaytype.Job) *relaytype.Job {
	j.Spec.Notify = &relaytype.Notify{Webhook: "https://hooks.example/relay"}
	return j
}

func pending(id string, attempt int) *jobstate.StoredAsk {
	return &jobstate.StoredAsk{Record: &relaytype.AskRecord{AskID: id, JobID: "job_1", StepID: "step-" + id,
		Status: relaytype.StatusPending}, PayloadHash: "h-" + id, Attempt: attempt}
}

func closedIDs(ws []*jobstate.AnswerWrite) []string {
	var ids []string
	for _, w := range ws {
		ids = append(ids, w.Answer.AskID)
	}
	return ids
}

func transitionPayload(t *testing.T, ev jobstate.Event) relaytype.TransitionPayload {
	t.Helper()
	require.Equal(t, relaytype.EventTransition, ev.Type)
	raw, err := ev.Encode()
	require.NoError(t, err)
	var p relaytype.TransitionPayload
	require.NoError(t, json.Unmarshal(raw, &p))
	return p
}

func TestTransitionFollowsTheStateMachine(t *testing.T) {
	for _, from := range relaytype.AllStates {
		for _, to := range relaytype.AllStates {
			j := job(from, 1)
			p := &store.JobTransitionParams{ID: j.ID, To: to, Now: t0, Owner: "", LeaseTTL: time.Minute}
			if to == relaytype.StateRunning && (from == relaytype.StateQueued || from == relaytype.StateStale) {
				p.Owner = "w2" // a start needs the new lease holder
			}
			c, err := jobstate.Transition(jobstate.Snapshot{Job: j}, p)
			if !relaytype.CanTransition(from, to) {
				var te *relaytype.TransitionError
				require.ErrorAs(t, err, &te, "%s → %s", from, to)
				require.ErrorIs(t, err, relaytype.ErrIllegalTransition)
				require.Equal(t, relaytype.TransitionError{JobID: j.ID, From: from, To: to}, *te)
				continue
			}
			require.NoError(t, err, "%s → %s", from, to)
			require.Equal(t, to, c.Job.State)
			require.Equal(t, int64(6), c.Job.StateVersion)
			require.Equal(t, int64(5), c.FromVersion)
			require.Equal(t, from, c.From)
			require.Equal(t, t0, c.Job.UpdatedAt)
			require.Len(t, c.Events, 1)
			tp := transitionPayload(t, c.Events[0])
			require.Equal(t, relaytype.TransitionPayload{From: from, To: to, StateVersion: 6, Attempt: c.Job.Attempt,
				Owner: p.Owner}, tp)
			// The input job is left as it was.
			require.Equal(t, from, j.State)
			require.Equal(t, int64(5), j.StateVersion)
		}
	}
}

func TestTransitionChecksTheLease(t *testing.T) {
	cases := []struct {
		name  string
		state relaytype.JobState
		owner string
		err   error
	}{
		{"holder", relaytype.StateRunning, "w1", nil},
		{"no owner given", relaytype.StateRunning, "", nil},
		{"another worker", relaytype.StateRunning, "w2", relaytype.ErrLeaseLost},
		{"another worker while waiting", relaytype.StateWaitingOnAnswer, "w2", relaytype.ErrLeaseLost},
		// STALE keeps the last holder but is not active: its lease is over.
		{"former holder of a stale job", relaytype.StateStale, "w1", relaytype.ErrLeaseLost},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := jobstate.Transition(jobstate.Snapshot{Job: job(tc.state, 1)},
				&store.JobTransitionParams{To: relaytype.StateFailed, Owner: tc.owner, Now: t0})
			if tc.err == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.err)
		})
	}
}

func TestClaimCountsAttempts(t *testing.T) {
	cases := []struct {
		name     string
		from     relaytype.JobState
		attempt  int
		owner    string
		ttl      time.Duration
		illegal  bool
		wantFail bool
	}{
		{"first start", relaytype.StateQueued, 0, "w2", time.Minute, false, false},
		{"retry from the queue", relaytype.StateQueued, 1, "w2", time.Minute, false, false},
		{"retry of a stale job", relaytype.StateStale, 2, "w2", time.Minute, false, false},
		{"attempts used up", relaytype.StateQueued, 3, "w2", time.Minute, true, true},
		{"stale with attempts used up", relaytype.StateStale, 3, "w2", time.Minute, true, true},
		{"no owner", relaytype.StateQueued, 0, "", time.Minute, false, true},
		{"no lease ttl", relaytype.StateQueued, 0, "w2", 0, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := job(tc.from, tc.attempt)
			c, err := jobstate.Claim(jobstate.Snapshot{Job: j}, tc.owner, tc.ttl, t0)
			if tc.wantFail {
				require.Error(t, err)
				require.Equal(t, tc.illegal, errors.Is(err, relaytype.ErrIllegalTransition), err)
				return
			}
			require.NoError(t, err)
			require.True(t, c.Claim)
			n := c.Job
			require.Equal(t, relaytype.StateRunning, n.State)
			require.Equal(t, tc.attempt+1, n.Attempt)
			require.Equal(t, tc.owner, n.LeaseOwner)
			require.Equal(t, t0.Add(tc.ttl), *n.LeaseExpiresAt)
			require.Equal(t, t0, *n.HeartbeatAt)
			if tc.attempt == 0 {
				require.Equal(t, t0, *n.StartedAt, "the first start sets StartedAt")
			} else {
				require.Equal(t, *j.StartedAt, *n.StartedAt, "a retry keeps the first StartedAt")
			}
			require.Equal(t, tc.attempt+1, transitionPayload(t, c.Events[0]).Attempt)
		})
	}
}

func TestTransitionFields(t *testing.T) {
	t.Run("queued again gets a fresh ttl and no lease", func(t *testing.T) {
		c, err := jobstate.Transition(jobstate.Snapshot{Job: job(relaytype.StateStale, 1)},
			&store.JobTransitionParams{To: relaytype.StateQueued, Now: t0, Summary: "retrying"})
		require.NoError(t, err)
		require.Equal(t, t0.Add(600*time.Second), c.Job.ExpiresAt)
		require.Empty(t, c.Job.LeaseOwner)
		require.Nil(t, c.Job.LeaseExpiresAt)
		require.Equal(t, "retrying", c.Job.Summary)
		require.Equal(t, 1, c.Job.Attempt)
	})
	t.Run("terminal clears the lease and records the outcome", func(t *testing.T) {
		j := job(relaytype.StateRunning, 1)
		j.Summary = "working"
		c, err := jobstate.Transition(jobstate.Snapshot{Job: j}, &store.JobTransitionParams{To: relaytype.StateFailed,
			Now: t0, Reason: relaytype.ReasonExecutorError, Summary: "boom"})
		require.NoError(t, err)
		require.Equal(t, t0, *c.Job.FinishedAt)
		require.Empty(t, c.Job.LeaseOwner)
		require.Nil(t, c.Job.LeaseExpiresAt)
		require.Equal(t, relaytype.ReasonExecutorError, c.Job.ReasonCode)
		require.Equal(t, "boom", c.Job.Summary)
		// A terminal move without a summary clears the old one.
		c, err = jobstate.Transition(jobstate.Snapshot{Job: j}, &store.JobTransitionParams{To: relaytype.StateSucceeded, Now: t0})
		require.NoError(t, err)
		require.Empty(t, c.Job.Summary)
	})
	t.Run("an active move with a lease ttl extends the lease", func(t *testing.T) {
		c, err := jobstate.Transition(jobstate.Snapshot{Job: job(relaytype.StateRunning, 1)},
			&store.JobTransitionParams{To: relaytype.StateWaitingOnAnswer, Now: t0, LeaseTTL: 5 * time.Minute})
		require.NoError(t, err)
		require.Equal(t, t0.Add(5*time.Minute), *c.Job.LeaseExpiresAt)
		require.Equal(t, t0, *c.Job.HeartbeatAt)
		require.Equal(t, "w1", c.Job.LeaseOwner)
	})
	t.Run("usage adds up and the session is recorded", func(t *testing.T) {
		j := job(relaytype.StateRunning, 1)
		j.Usage = relaytype.Usage{InputTokens: 10, OutputTokens: 1, CostUSD: 0.5}
		u := &relaytype.Usage{InputTokens: 5, OutputTokens: 2, CachedInputTokens: 3, CostUSD: 0.25}
		c, err := jobstate.Transition(jobstate.Snapshot{Job: j}, &store.JobTransitionParams{To: relaytype.StateSucceeded,
			Now: t0, Usage: u, SessionID: "sess"})
		require.NoError(t, err)
		require.Equal(t, relaytype.Usage{InputTokens: 15, OutputTokens: 3, CachedInputTokens: 3, CostUSD: 0.75}, c.Job.Usage)
		require.Equal(t, "sess", c.Job.SessionID)
		require.Equal(t, u, transitionPayload(t, c.Events[0]).Usage)
		require.Equal(t, 10, j.Usage.InputTokens, "the input job is left as it was")
	})
	t.Run("artifacts are stored with their events before the transition event", func(t *testing.T) {
		c, err := jobstate.Transition(jobstate.Snapshot{Job: job(relaytype.StateRunning, 1)},
			&store.JobTransitionParams{To: relaytype.StateSucceeded, Now: t0, Artifacts: []*relaytype.Artifact{
				{Kind: relaytype.ArtifactPatch, URI: "u1", Digest: "d1", Size: 1},
				{Kind: relaytype.ArtifactOut, URI: "u2", Digest: "d2", Size: 2, CreatedAt: t0.Add(-time.Second)},
			}})
		require.NoError(t, err)
		require.Len(t, c.Artifacts, 2)
		require.Equal(t, "job_1", c.Artifacts[0].JobID)
		require.Equal(t, t0, c.Artifacts[0].CreatedAt)
		require.Equal(t, t0.Add(-time.Second), c.Artifacts[1].CreatedAt)
		require.Len(t, c.Events, 3)
		require.Equal(t, relaytype.EventArtifact, c.Events[0].Type)
		require.Equal(t, relaytype.EventArtifact, c.Events[1].Type)
		require.Equal(t, relaytype.EventTransition, c.Events[2].Type)
	})
	t.Run("bad artifacts are refused", func(t *testing.T) {
		for _, a := range []*relaytype.Artifact{{Kind: "secrets.txt"}, {Kind: relaytype.ArtifactOut, JobID: "job_2"}} {
			_, err := jobstate.Transition(jobstate.Snapshot{Job: job(relaytype.StateRunning, 1)},
				&store.JobTransitionParams{To: relaytype.StateSucceeded, Now: t0, Artifacts: []*relaytype.Artifact{a}})
			require.Error(t, err)
		}
	})
}

func TestTransitionClosesTheAsksOfAnAttemptThatEnds(t *testing.T) {
	asks := []*jobstate.StoredAsk{pending("a1", 1), pending("a2", 2), pending("a3", 2)}
	cases := []struct {
		name   string
		from   relaytype.JobState
		to     relaytype.JobState
		closed []string
		text   string
	}{
		{"to STALE closes all", relaytype.StateRunning, relaytype.StateStale, []string{"a1", "a2", "a3"},
			"closed: attempt 2 of the job ended (worker gone) before the ask was answered; the job goes back to the queue for attempt 3"},
		{"terminal closes all", relaytype.StateWaitingOnAnswer, relaytype.StateCanceled, []string{"a1", "a2", "a3"},
			"job ended CANCELED before the ask was answered"},
		{"a start closes earlier attempts' asks", relaytype.StateStale, relaytype.StateRunning, []string{"a1", "a2", "a3"},
			"closed: attempt 2 of the job ended before the ask was answered; the job was retried as attempt 3"},
		{"to WAITING closes none", relaytype.StateRunning, relaytype.StateWaitingOnAnswer, nil, ""},
		{"back to RUNNING closes none", relaytype.StateWaitingOnAnswer, relaytype.StateRunning, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &store.JobTransitionParams{To: tc.to, Now: t0, Summary: "worker gone"}
			if tc.to == relaytype.StateRunning && tc.from == relaytype.StateStale {
				p.Owner, p.LeaseTTL, p.Summary = "w2", time.Minute, ""
			}
			c, err := jobstate.Transition(jobstate.Snapshot{Job: job(tc.from, 2), Pending: asks}, p)
			require.NoError(t, err)
			require.Equal(t, tc.closed, closedIDs(c.Closes))
			for _, w := range c.Closes {
				require.Equal(t, relaytype.StatusError, w.Answer.Status)
				require.Equal(t, "job_1", w.Answer.JobID)
				require.Equal(t, "step-"+w.Answer.AskID, w.Answer.StepID)
				require.Empty(t, w.PayloadHash)
				require.Nil(t, w.Usage)
				require.Equal(t, relaytype.EventAnswer, w.Event.Type)
			}
			if tc.text != "" {
				require.Equal(t, tc.text, c.Closes[2].Answer.Error)
			}
		})
	}
	t.Run("a start keeps asks of its own attempt", func(t *testing.T) {
		// Defensive: only asks of attempts before the one that starts.
		c, err := jobstate.Transition(jobstate.Snapshot{Job: job(relaytype.StateQueued, 1),
			Pending: []*jobstate.StoredAsk{pending("a1", 1), pending("a2", 2)}},
			&store.JobTransitionParams{To: relaytype.StateRunning, Owner: "w2", LeaseTTL: time.Minute, Now: t0})
		require.NoError(t, err)
		require.Equal(t, []string{"a1"}, closedIDs(c.Closes))
	})
	t.Run("STALE on the last attempt says so", func(t *testing.T) {
		c, err := jobstate.Transition(jobstate.Snapshot{Job: job(relaytype.StateRunning, 3), Pending: []*jobstate.StoredAsk{pending("a1", 3)}},
			&store.JobTransitionParams{To: relaytype.StateStale, Now: t0})
		require.NoError(t, err)
		require.Equal(t, "closed: attempt 3 of the job ended (its worker stopped) before the ask was answered; the job has used all 3 attempts",
			c.Closes[0].Answer.Error)
	})
}

func TestOutboxOnlyForTerminalStatesWithAWebhook(t *testing.T) {
	for _, to := range []relaytype.JobState{relaytype.StateSucceeded, relaytype.StateFailed, relaytype.StateCanceled,
		relaytype.StateExpired, relaytype.StateStale, relaytype.StateWaitingOnAnswer} {
		for _, hook := range []bool{false, true} {
			j := job(relaytype.StateRunning, 1)
			if hook {
				withWebhook(j)
			}
			stored := []*relaytype.Artifact{{JobID: "job_1", Kind: relaytype.ArtifactLogs, Digest: "old", Size: 9}}
			c, err := jobstate.Transition(jobstate.Snapshot{Job: j, Artifacts: stored}, &store.JobTransitionParams{
				To: to, Now: t0, Artifacts: []*relaytype.Artifact{{Kind: relaytype.ArtifactPatch, Digest: "new", Size: 3}}})
			require.NoError(t, err)
			if !hook || !to.Terminal() {
				require.Empty(t, c.Outbox, "%s webhook=%v", to, hook)
				continue
			}
			require.Len(t, c.Outbox, 1, "%s", to)
			m := c.Outbox[0]
			require.Equal(t, store.OutboxKindWebhook, m.Kind)
			require.Equal(t, "https://hooks.example/relay", m.Target)
			require.Equal(t, store.OutboxMessageID("job_1", store.OutboxKindWebhook, m.Target, string(to)), m.ID)
			var n store.JobNotification
			require.NoError(t, json.Unmarshal(m.Payload, &n))
			require.Equal(t, to, n.Data.State)
			require.Equal(t, t0, n.Timestamp)
			// The notification lists the stored artifacts and the new ones, by kind.
			require.Equal(t, []store.JobNotificationArtifact{
				{Kind: relaytype.ArtifactLogs, Digest: "old", Size: 9},
				{Kind: relaytype.ArtifactPatch, Digest: "new", Size: 3},
			}, n.Data.Artifacts)
		}
	}
}

func TestRescue(t *testing.T) {
	type step struct {
		to     relaytype.JobState
		reason relaytype.FailReason
	}
	cases := []struct {
		name    string
		state   relaytype.JobState
		attempt int
		steps   []step
	}{
		{"running with attempts left is requeued", relaytype.StateRunning, 1,
			[]step{{relaytype.StateStale, ""}, {relaytype.StateQueued, ""}}},
		{"waiting passes through RUNNING", relaytype.StateWaitingOnAnswer, 2,
			[]step{{relaytype.StateRunning, ""}, {relaytype.StateStale, ""}, {relaytype.StateQueued, ""}}},
		{"stale is requeued", relaytype.StateStale, 1, []step{{relaytype.StateQueued, ""}}},
		{"last attempt fails", relaytype.StateRunning, 3,
			[]step{{relaytype.StateStale, ""}, {relaytype.StateFailed, relaytype.ReasonInternalError}}},
		{"stale on its last attempt fails", relaytype.StateStale, 3,
			[]step{{relaytype.StateFailed, relaytype.ReasonInternalError}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := withWebhook(job(tc.state, tc.attempt))
			s := jobstate.Snapshot{Job: j}
			want := []string(nil)
			if tc.state != relaytype.StateStale {
				// A STALE job's asks were closed when it went STALE.
				s.Pending, want = []*jobstate.StoredAsk{pending("a1", tc.attempt)}, []string{"a1"}
			}
			changes, err := jobstate.Rescue(s, t0)
			require.NoError(t, err)
			require.Len(t, changes, len(tc.steps))
			version := j.StateVersion
			var closed []string
			for i, c := range changes {
				require.Equal(t, tc.steps[i].to, c.Job.State)
				require.Equal(t, tc.steps[i].reason, c.Job.ReasonCode)
				require.Equal(t, version, c.FromVersion, "each change follows the one before")
				version = c.Job.StateVersion
				closed = append(closed, closedIDs(c.Closes)...)
				require.Equal(t, c.Job.State.Terminal(), len(c.Outbox) == 1)
			}
			// The attempt's ask is closed exactly once, when the attempt ends.
			require.Equal(t, want, closed)
			last := changes[len(changes)-1].Job
			require.Equal(t, tc.attempt, last.Attempt)
			if last.State == relaytype.StateQueued {
				require.Empty(t, last.LeaseOwner)
				require.Equal(t, t0.Add(600*time.Second), last.ExpiresAt)
				require.Equal(t, fmt.Sprintf(`retrying after lease of "w1" lapsed on attempt %d of 3`, tc.attempt), last.Summary)
			} else {
				require.Equal(t, `worker lost the job on each of 3 attempts (lease of "w1" lapsed on attempt 3 of 3)`, last.Summary)
			}
		})
	}
}

func TestReleaseAndExpire(t *testing.T) {
	t.Run("release of a waiting job", func(t *testing.T) {
		s := jobstate.Snapshot{Job: job(relaytype.StateWaitingOnAnswer, 1), Pending: []*jobstate.StoredAsk{pending("a1", 1)}}
		changes, err := jobstate.Release(s, &store.JobReleaseParams{Owner: "w1", Now: t0, Summary: "shutdown"})
		require.NoError(t, err)
		require.Len(t, changes, 2)
		require.Equal(t, relaytype.StateRunning, changes[0].Job.State)
		require.Empty(t, changes[0].Closes)
		require.Equal(t, relaytype.StateStale, changes[1].Job.State)
		require.Equal(t, []string{"a1"}, closedIDs(changes[1].Closes))
		require.Contains(t, changes[1].Closes[0].Answer.Error, "(shutdown)")
	})
	t.Run("release refusals", func(t *testing.T) {
		_, err := jobstate.Release(jobstate.Snapshot{Job: job(relaytype.StateQueued, 0)}, &store.JobReleaseParams{Now: t0})
		var te *relaytype.TransitionError
		require.ErrorAs(t, err, &te)
		require.Equal(t, relaytype.StateStale, te.To)
		_, err = jobstate.Release(jobstate.Snapshot{Job: job(relaytype.StateRunning, 1)}, &store.JobReleaseParams{Owner: "w2", Now: t0})
		require.ErrorIs(t, err, relaytype.ErrLeaseLost)
	})
	t.Run("expire", func(t *testing.T) {
		c, err := jobstate.Expire(jobstate.Snapshot{Job: withWebhook(job(relaytype.StateQueued, 0))}, t0)
		require.NoError(t, err)
		require.Equal(t, relaytype.StateExpired, c.Job.State)
		require.Equal(t, "not started within its ttl of 600s", c.Job.Summary)
		require.Len(t, c.Outbox, 1)
	})
}

func TestSelectionRules(t *testing.T) {
	queued := job(relaytype.StateQueued, 0)
	require.True(t, jobstate.Claimable(queued, t0))
	require.False(t, jobstate.Claimable(queued, queued.ExpiresAt), "ttl over at its end")
	require.False(t, jobstate.Expired(queued, t0))
	require.True(t, jobstate.Expired(queued, queued.ExpiresAt))
	used := job(relaytype.StateQueued, 3)
	require.False(t, jobstate.Claimable(used, t0), "no attempts left")
	require.False(t, jobstate.Claimable(job(relaytype.StateStale, 1), t0))

	running := job(relaytype.StateRunning, 1)
	require.False(t, jobstate.Rescuable(running, t0))
	require.True(t, jobstate.Rescuable(running, *running.LeaseExpiresAt))
	require.True(t, jobstate.Rescuable(job(relaytype.StateStale, 1), t0))
	require.False(t, jobstate.Rescuable(queued, t0.Add(24*time.Hour)))

	at, ok := jobstate.WakeAt(queued)
	require.True(t, ok)
	require.Equal(t, queued.ExpiresAt, at)
	at, ok = jobstate.WakeAt(running)
	require.True(t, ok)
	require.Equal(t, *running.LeaseExpiresAt, at)
	stale := job(relaytype.StateStale, 1)
	at, ok = jobstate.WakeAt(stale)
	require.True(t, ok)
	require.Equal(t, stale.UpdatedAt, at)
	_, ok = jobstate.WakeAt(job(relaytype.StateSucceeded, 1))
	require.False(t, ok)
}

func TestHeartbeat(t *testing.T) {
	j := job(relaytype.StateWaitingOnAnswer, 1)
	n, err := jobstate.Heartbeat(j, &store.JobHeartbeatParams{Owner: "w1", Now: t0, LeaseTTL: time.Minute})
	require.NoError(t, err)
	require.Equal(t, t0.Add(time.Minute), *n.LeaseExpiresAt)
	require.Equal(t, t0, *n.HeartbeatAt)
	require.Equal(t, j.StateVersion, n.StateVersion)
	for _, bad := range []*relaytype.Job{job(relaytype.StateRunning, 1), job(relaytype.StateStale, 1)} {
		owner := "w2"
		if bad.State == relaytype.StateStale {
			owner = "w1"
		}
		_, err := jobstate.Heartbeat(bad, &store.JobHeartbeatParams{Owner: owner, Now: t0, LeaseTTL: time.Minute})
		require.ErrorIs(t, err, relaytype.ErrLeaseLost)
	}
}

func TestNewJobAndIdempotency(t *testing.T) {
	p := &store.JobInsertParams{ID: "job_9", Executor: "codex", Now: t0, IdempotencyWindow: time.Hour, Project: "/p",
		Spec: &relaytype.JobSpec{IdempotencyKey: "k", Execution: relaytype.Execution{TTLS: 60, MaxAttempts: 2}}}
	j, ev := jobstate.NewJob(p)
	require.Equal(t, relaytype.StateQueued, j.State)
	require.Equal(t, int64(1), j.StateVersion)
	require.Equal(t, 0, j.Attempt)
	require.Equal(t, 2, j.MaxAttempts)
	require.Equal(t, t0.Add(time.Minute), j.ExpiresAt)
	require.Equal(t, relaytype.EventSubmitted, ev.Type)
	require.Equal(t, relaytype.TransitionPayload{To: relaytype.StateQueued, StateVersion: 1}, ev.Payload)

	finished := func(state relaytype.JobState, ago time.Duration) *relaytype.Job {
		j := job(state, 1)
		at := t0.Add(-ago)
		j.FinishedAt = &at
		return j
	}
	cases := []struct {
		name string
		job  *relaytype.Job
		want bool
	}{
		{"queued", job(relaytype.StateQueued, 0), true},
		{"running", job(relaytype.StateRunning, 1), true},
		{"stale", job(relaytype.StateStale, 1), true},
		{"succeeded within the window", finished(relaytype.StateSucceeded, time.Hour), true},
		{"succeeded before the window", finished(relaytype.StateSucceeded, time.Hour+time.Millisecond), false},
		{"failed", finished(relaytype.StateFailed, 0), false},
		{"canceled", finished(relaytype.StateCanceled, 0), false},
		{"expired", finished(relaytype.StateExpired, 0), false},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, jobstate.Reuses(tc.job, p), tc.name)
	}
}

func TestEventEncode(t *testing.T) {
	raw, err := jobstate.Event{Type: "log"}.Encode()
	require.NoError(t, err)
	require.Nil(t, raw)
	raw, err = jobstate.Event{Type: "log", Payload: json.RawMessage(`{"a":1}`)}.Encode()
	require.NoError(t, err)
	require.JSONEq(t, `{"a":1}`, string(raw))
	raw, err = jobstate.Event{Type: "x", Payload: map[string]any{"k": "v"}}.Encode()
	require.NoError(t, err)
	require.JSONEq(t, `{"k":"v"}`, string(raw))
	_, err = jobstate.Event{Type: "x", Payload: func() {}}.Encode()
	require.Error(t, err)
}
