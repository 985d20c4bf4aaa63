package jobstate_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/jobstate"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

func answerParams(askID string, status relaytype.AnswerStatus, hash string) *store.AnswerInsertParams {
	return &store.AnswerInsertParams{Now: t0, PayloadHash: hash, Answer: &relaytype.AnswerRecord{
		AskID: askID, JobID: "job_1", StepID: "step-" + askID, Status: status, Error: "nope",
	}}
}

func TestAnswerDecidesTheJob(t *testing.T) {
	cases := []struct {
		name    string
		state   relaytype.JobState
		status  relaytype.AnswerStatus
		others  []*jobstate.StoredAsk
		to      relaytype.JobState // "" for no change
		reason  relaytype.FailReason
		closing []string
	}{
		{"rejected fails with POLICY", relaytype.StateWaitingOnAnswer, relaytype.StatusRejected,
			[]*jobstate.StoredAsk{pending("a2", 1)}, relaytype.StateFailed, relaytype.ReasonPolicy, []string{"a2"}},
		{"timeout fails with TIMEOUT", relaytype.StateWaitingOnAnswer, relaytype.StatusTimeout, nil,
			relaytype.StateFailed, relaytype.ReasonTimeout, nil},
		{"error fails with EXECUTOR_ERROR", relaytype.StateRunning, relaytype.StatusError, nil,
			relaytype.StateFailed, relaytype.ReasonExecutorError, nil},
		{"the last answer resumes the job", relaytype.StateWaitingOnAnswer, relaytype.StatusAnswered, nil,
			relaytype.StateRunning, "", nil},
		{"another pending ask keeps it waiting", relaytype.StateWaitingOnAnswer, relaytype.StatusAnswered,
			[]*jobstate.StoredAsk{pending("a2", 1)}, "", "", nil},
		// An ask of another attempt cannot be pending in a consistent
		// store; it does not hold the job back either way.
		{"a pending ask of another attempt does not count", relaytype.StateWaitingOnAnswer, relaytype.StatusAnswered,
			[]*jobstate.StoredAsk{pending("a0", 0)}, relaytype.StateRunning, "", nil},
		{"an answer to a running job changes nothing", relaytype.StateRunning, relaytype.StatusAnswered, nil, "", "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ask := pending("a1", 1)
			s := jobstate.Snapshot{Job: withWebhook(job(tc.state, 1)), Pending: append([]*jobstate.StoredAsk{ask}, tc.others...)}
			o, err := jobstate.Answer(s, ask, nil, answerParams("a1", tc.status, "h"))
			require.NoError(t, err)
			require.True(t, o.Created())
			require.Nil(t, o.Refuse)
			require.Equal(t, "a1", o.Write.Answer.AskID)
			require.Equal(t, "h", o.Write.PayloadHash)
			require.Equal(t, relaytype.EventAnswer, o.Write.Event.Type)
			if tc.to == "" {
				require.Empty(t, o.Changes)
				require.Equal(t, tc.state, o.Job.State)
				return
			}
			require.Len(t, o.Changes, 1)
			c := o.Changes[0]
			require.Equal(t, tc.to, c.Job.State)
			require.Equal(t, tc.reason, c.Job.ReasonCode)
			require.Equal(t, c.Job, o.Job)
			// The answered ask is not closed again; the others end with the job.
			require.Equal(t, tc.closing, closedIDs(c.Closes))
			if tc.to == relaytype.StateFailed {
				require.Equal(t, "ask a1 was answered "+string(tc.status)+": nope", c.Job.Summary)
				require.Len(t, c.Outbox, 1)
			} else {
				require.Equal(t, "all asks answered", c.Job.Summary)
			}
		})
	}
}

func TestAnswerAddsItsUsage(t *testing.T) {
	ask := pending("a1", 1)
	j := job(relaytype.StateWaitingOnAnswer, 1)
	j.Usage = relaytype.Usage{InputTokens: 1}
	p := answerParams("a1", relaytype.StatusRejected, "h")
	p.Answer.Usage = &relaytype.Usage{InputTokens: 7, OutputTokens: 3}
	o, err := jobstate.Answer(jobstate.Snapshot{Job: j, Pending: []*jobstate.StoredAsk{ask}}, ask, nil, p)
	require.NoError(t, err)
	require.Equal(t, &relaytype.Usage{InputTokens: 7, OutputTokens: 3}, o.Write.Usage)
	require.Equal(t, relaytype.Usage{InputTokens: 8, OutputTokens: 3}, o.Job.Usage)
	require.Equal(t, 1, j.Usage.InputTokens, "the input job is left as it was")

	p.Answer.Usage = &relaytype.Usage{}
	o, err = jobstate.Answer(jobstate.Snapshot{Job: j, Pending: []*jobstate.StoredAsk{ask}}, ask, nil, p)
	require.NoError(t, err)
	require.Nil(t, o.Write.Usage, "no tokens, nothing to add")
}

func TestAnswerIdempotencyAndRefusals(t *testing.T) {
	ask := pending("a1", 1)
	answered := &jobstate.StoredAnswer{Record: &relaytype.AnswerRecord{AskID: "a1", JobID: "job_1",
		Status: relaytype.StatusAnswered}, PayloadHash: "h"}
	running := func() jobstate.Snapshot { return jobstate.Snapshot{Job: job(relaytype.StateWaitingOnAnswer, 1)} }

	t.Run("a repeat returns the stored answer", func(t *testing.T) {
		o, err := jobstate.Answer(running(), ask, answered, answerParams("a1", relaytype.StatusAnswered, "h"))
		require.NoError(t, err)
		require.Same(t, answered.Record, o.Existing)
		require.False(t, o.Created())
		require.Nil(t, o.Write)
		require.Empty(t, o.Changes)
	})
	t.Run("a repeat is recognised after the attempt ended", func(t *testing.T) {
		o, err := jobstate.Answer(jobstate.Snapshot{Job: job(relaytype.StateSucceeded, 1)}, ask, answered,
			answerParams("a1", relaytype.StatusAnswered, "h"))
		require.NoError(t, err)
		require.Same(t, answered.Record, o.Existing)
	})
	t.Run("another answer to an answered ask conflicts", func(t *testing.T) {
		_, err := jobstate.Answer(running(), ask, answered, answerParams("a1", relaytype.StatusAnswered, "other"))
		require.ErrorIs(t, err, relaytype.ErrAnswerConflict)
		require.False(t, errors.Is(err, store.ErrAttemptOver))
	})
	t.Run("an answer naming another job", func(t *testing.T) {
		p := answerParams("a1", relaytype.StatusAnswered, "h")
		p.Answer.JobID = "job_2"
		_, err := jobstate.Answer(running(), ask, nil, p)
		var re *relaytype.RequestError
		require.ErrorAs(t, err, &re)
		require.Equal(t, "job_id", re.Field)
	})
	for _, over := range []struct {
		name string
		job  *relaytype.Job
	}{
		{"job ended", job(relaytype.StateCanceled, 1)},
		{"job went stale", job(relaytype.StateStale, 1)},
		{"job started another attempt", job(relaytype.StateRunning, 2)},
	} {
		t.Run("attempt over: "+over.name, func(t *testing.T) {
			require.True(t, jobstate.AttemptOver(over.job, 1))
			o, err := jobstate.Answer(jobstate.Snapshot{Job: over.job}, ask, answered,
				answerParams("a1", relaytype.StatusAnswered, "other"))
			require.NoError(t, err)
			var aoe *store.AttemptOverError
			require.ErrorAs(t, o.Refuse, &aoe)
			require.ErrorIs(t, o.Refuse, relaytype.ErrAnswerConflict)
			require.Equal(t, store.AttemptOverError{AskID: "a1", JobID: "job_1", Attempt: 1,
				JobAttempt: over.job.Attempt, JobState: over.job.State}, *aoe)
			require.Nil(t, o.Write, "an answered ask stays as it is")
			require.False(t, o.Created())

			// A still pending ask of an attempt that is over is closed,
			// and the answer refused all the same.
			o, err = jobstate.Answer(jobstate.Snapshot{Job: over.job}, ask, nil, answerParams("a1", relaytype.StatusAnswered, "h"))
			require.NoError(t, err)
			require.ErrorIs(t, o.Refuse, store.ErrAttemptOver)
			require.False(t, o.Created())
			require.Equal(t, relaytype.StatusError, o.Write.Answer.Status)
			require.Equal(t, "closed: attempt 1 of the job ended before the ask was answered", o.Write.Answer.Error)
			require.Empty(t, o.Changes)
		})
	}
	require.False(t, jobstate.AttemptOver(job(relaytype.StateWaitingOnAnswer, 1), 1))
}

func askParams(jobID string, hash string) *store.AskInsertParams {
	return &store.AskInsertParams{Now: t0, PayloadHash: hash, Ask: &relaytype.AskRecord{
		AskID: "a1", JobID: jobID, StepID: "s1", AskType: relaytype.AskClarification, Route: "runner",
		Status: relaytype.StatusAnswered, DeadlineAt: t0.Add(time.Minute),
	}}
}

func TestAskInsert(t *testing.T) {
	t.Run("an ask of a running job makes it wait", func(t *testing.T) {
		o, err := jobstate.AskInsert(jobstate.Snapshot{Job: job(relaytype.StateRunning, 2)}, nil, askParams("job_1", "h"))
		require.NoError(t, err)
		require.Nil(t, o.Existing)
		require.Equal(t, 2, o.Insert.Attempt, "bound to the job's current attempt")
		require.Equal(t, "h", o.Insert.PayloadHash)
		require.Equal(t, relaytype.StatusPending, o.Insert.Record.Status)
		require.Equal(t, t0, o.Insert.Record.CreatedAt)
		require.Equal(t, relaytype.EventAsk, o.Event.Type)
		raw, err := o.Event.Encode()
		require.NoError(t, err)
		var ev map[string]any
		require.NoError(t, json.Unmarshal(raw, &ev))
		require.Equal(t, float64(2), ev["attempt"])
		require.Len(t, o.Changes, 1)
		require.Equal(t, relaytype.StateWaitingOnAnswer, o.Job.State)
		require.Equal(t, "waiting for the answer to ask a1", o.Job.Summary)
	})
	t.Run("a waiting job keeps waiting", func(t *testing.T) {
		o, err := jobstate.AskInsert(jobstate.Snapshot{Job: job(relaytype.StateWaitingOnAnswer, 1)}, nil, askParams("job_1", "h"))
		require.NoError(t, err)
		require.Empty(t, o.Changes)
		require.Equal(t, relaytype.StateWaitingOnAnswer, o.Job.State)
	})
	for _, state := range []relaytype.JobState{relaytype.StateQueued, relaytype.StateStale, relaytype.StateSucceeded} {
		_, err := jobstate.AskInsert(jobstate.Snapshot{Job: job(state, 1)}, nil, askParams("job_1", "h"))
		require.ErrorIs(t, err, relaytype.ErrJobNotActive, state)
	}
	stored := &jobstate.StoredAsk{Record: &relaytype.AskRecord{AskID: "a1", JobID: "job_1"}, PayloadHash: "h", Attempt: 1}
	t.Run("a repeat returns the stored ask", func(t *testing.T) {
		o, err := jobstate.AskInsert(jobstate.Snapshot{Job: job(relaytype.StateWaitingOnAnswer, 1)}, stored, askParams("job_1", "h"))
		require.NoError(t, err)
		require.Same(t, stored.Record, o.Existing)
		require.Nil(t, o.Insert)
		require.Empty(t, o.Changes)
	})
	t.Run("repeat refusals", func(t *testing.T) {
		_, err := jobstate.AskInsert(jobstate.Snapshot{Job: job(relaytype.StateWaitingOnAnswer, 1)}, stored, askParams("job_1", "other"))
		require.ErrorIs(t, err, relaytype.ErrAskConflict)
		require.False(t, errors.Is(err, store.ErrAttemptOver))
		_, err = jobstate.AskInsert(jobstate.Snapshot{Job: job(relaytype.StateWaitingOnAnswer, 1)}, stored, askParams("job_2", "h"))
		require.ErrorIs(t, err, relaytype.ErrAskConflict)
		_, err = jobstate.AskInsert(jobstate.Snapshot{Job: job(relaytype.StateRunning, 2)}, stored, askParams("job_1", "h"))
		var aoe *store.AttemptOverError
		require.ErrorAs(t, err, &aoe)
		require.True(t, aoe.Repost)
		require.ErrorIs(t, err, relaytype.ErrAskConflict)
		require.Equal(t, 2, aoe.JobAttempt)
	})
}

func TestDefer(t *testing.T) {
	a := &relaytype.AskRecord{AskID: "a1", JobID: "job_1", Status: relaytype.StatusPending, Route: "runner",
		DeadlineAt: t0.Add(time.Hour)}
	d, err := jobstate.Defer(a, &store.AskDeferParams{AskID: "a1", Route: "orchestrator", DeadlineAt: t0.Add(time.Minute), Now: t0})
	require.NoError(t, err)
	require.Equal(t, "orchestrator", d.Route)
	require.Equal(t, t0.Add(time.Hour), d.DeadlineAt, "an earlier deadline is ignored")
	require.Equal(t, relaytype.EventAskDeferred, d.Event.Type)
	d, err = jobstate.Defer(a, &store.AskDeferParams{AskID: "a1", Route: "human", DeadlineAt: t0.Add(2 * time.Hour), Now: t0})
	require.NoError(t, err)
	require.Equal(t, t0.Add(2*time.Hour), d.DeadlineAt)

	a.Status = relaytype.StatusAnswered
	_, err = jobstate.Defer(a, &store.AskDeferParams{AskID: "a1", Route: "human", Now: t0})
	require.ErrorIs(t, err, relaytype.ErrAnswerConflict)
}
