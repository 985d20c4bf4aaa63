package storetest

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

var askSeq atomic.Int64

// newAsk returns a PENDING ask record for job with a fresh id.
func (b *bundle) newAsk(job string, deadline time.Duration) *relaytype.AskRecord {
	n := askSeq.Add(1)
	return &relaytype.AskRecord{
		AskID: fmt.Sprintf("00000000-0000-4000-8000-%012d", n), JobID: job, StepID: "attempt-1",
		AskType: relaytype.AskClarification, Prompt: "Which greeting?", ContextHash: "abc",
		ContextEnvelope: json.RawMessage(`{"job_snapshot":{},"role":"default"}`),
		Constraints:     &relaytype.AskConstraints{TimeoutS: 30, AllowedTools: []string{"repo.read"}},
		RoleID:          "clarifier", Route: "orchestrator", Status: relaytype.StatusPending,
		CreatedAt: b.at(2 * time.Minute), DeadlineAt: b.at(2*time.Minute + deadline),
	}
}

func (b *bundle) askInsert(t testingT, a *relaytype.AskRecord, hash string) (*relaytype.AskRecord, bool, *relaytype.Job) {
	t.Helper()
	rec, created, job, err := b.store.AskInsert(b.ctx, &store.AskInsertParams{Ask: a, PayloadHash: hash, Now: a.CreatedAt})
	require.NoError(t, err)
	return rec, created, job
}

func (b *bundle) answer(a *relaytype.AskRecord, status relaytype.AnswerStatus, text string) *store.AnswerInsertParams {
	return &store.AnswerInsertParams{
		Answer:      &relaytype.AnswerRecord{AskID: a.AskID, JobID: a.JobID, StepID: a.StepID, Status: status, AnswerText: text, AnswerJSON: json.RawMessage(`{"pick":1}`)},
		PayloadHash: string(status) + text,
		Now:         b.at(3 * time.Minute),
	}
}

func exerciseAsks(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("InsertMovesJobToWaiting", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.reach(t, "job_ask1", relaytype.StateRunning)
		a := b.newAsk("job_ask1", time.Minute)
		rec, created, job := b.askInsert(t, a, "h1")
		require.True(t, created)
		require.Equal(t, relaytype.StateWaitingOnAnswer, job.State)
		require.Equal(t, relaytype.StatusPending, rec.Status)
		require.Equal(t, a.Prompt, rec.Prompt)
		require.JSONEq(t, string(a.ContextEnvelope), string(rec.ContextEnvelope))
		require.Equal(t, a.Constraints, rec.Constraints)
		require.Equal(t, "clarifier", rec.RoleID)
		require.Equal(t, "orchestrator", rec.Route)
		require.True(t, a.DeadlineAt.Equal(rec.DeadlineAt))
		requireChain(t, job, b.transitions(t, "job_ask1"))

		// A second ask while waiting keeps the job waiting.
		_, created, job = b.askInsert(t, b.newAsk("job_ask1", time.Minute), "h2")
		require.True(t, created)
		require.Equal(t, relaytype.StateWaitingOnAnswer, job.State)

		got, err := b.store.AskGet(b.ctx, &store.AskGetParams{AskID: a.AskID})
		require.NoError(t, err)
		require.Equal(t, rec.AskID, got.AskID)
		pending, err := b.store.AskList(b.ctx, &store.AskListParams{JobID: "job_ask1", Status: relaytype.StatusPending})
		require.NoError(t, err)
		require.Len(t, pending, 2)
		require.Equal(t, a.AskID, pending[0].AskID, "oldest first")

		var kinds []string
		for _, e := range b.events(t, "job_ask1") {
			kinds = append(kinds, e.Type)
		}
		require.Contains(t, kinds, relaytype.EventAsk)
	})

	t.Run("DeferSetsRouteAndLaterDeadline", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.reach(t, "job_defer", relaytype.StateRunning)
		a := b.newAsk("job_defer", time.Minute)
		a.Route = "runner"
		b.askInsert(t, a, "h")
		later := a.DeadlineAt.Add(time.Hour)
		rec, job, err := b.store.AskDefer(b.ctx, &store.AskDeferParams{AskID: a.AskID, Route: "orchestrator",
			DeadlineAt: later, Reason: "provider down", Now: b.at(3 * time.Minute)})
		require.NoError(t, err)
		require.Equal(t, "orchestrator", rec.Route)
		require.True(t, later.Equal(rec.DeadlineAt))
		require.Equal(t, relaytype.StatusPending, rec.Status)
		require.Equal(t, relaytype.StateWaitingOnAnswer, job.State)
		due, err := b.store.AskDue(b.ctx, &store.AskDueParams{Now: a.DeadlineAt.Add(time.Second)})
		require.NoError(t, err)
		require.Empty(t, due, "the old deadline no longer applies")
		next, err := b.store.AskNextDeadline(b.ctx)
		require.NoError(t, err)
		require.True(t, later.Equal(next))

		// An earlier deadline never shortens the ask.
		rec, _, err = b.store.AskDefer(b.ctx, &store.AskDeferParams{AskID: a.AskID, Route: "orchestrator",
			DeadlineAt: a.DeadlineAt, Now: b.at(4 * time.Minute)})
		require.NoError(t, err)
		require.True(t, later.Equal(rec.DeadlineAt))

		var deferred []*relaytype.Event
		for _, e := range b.events(t, "job_defer") {
			if e.Type == relaytype.EventAskDeferred {
				deferred = append(deferred, e)
			}
		}
		require.Len(t, deferred, 2)
		require.Contains(t, string(deferred[0].Payload), `"reason":"provider down"`)
		require.Contains(t, string(deferred[0].Payload), `"from":"runner"`)

		// An answered ask is not deferred.
		_, _, _, err = b.store.AnswerInsert(b.ctx, b.answer(a, relaytype.StatusAnswered, "hi"))
		require.NoError(t, err)
		before := b.snap(t, "job_defer")
		_, _, err = b.store.AskDefer(b.ctx, &store.AskDeferParams{AskID: a.AskID, Route: "orchestrator", DeadlineAt: later, Now: b.at(5 * time.Minute)})
		requireErrorIs(t, err, relaytype.ErrAnswerConflict)
		b.requireUnchanged(t, "job_defer", before)
		_, _, err = b.store.AskDefer(b.ctx, &store.AskDeferParams{AskID: "00000000-0000-4000-8000-999999999998", Route: "orchestrator", Now: b.at(5 * time.Minute)})
		requireErrorIs(t, err, relaytype.ErrAskNotFound)
	})

	t.Run("InsertIdempotentOrConflict", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.reach(t, "job_ask2", relaytype.StateRunning)
		a := b.newAsk("job_ask2", time.Minute)
		b.askInsert(t, a, "same")
		before := b.snap(t, "job_ask2")
		again, created, _ := b.askInsert(t, a, "same")
		require.False(t, created)
		require.Equal(t, a.AskID, again.AskID)
		b.requireUnchanged(t, "job_ask2", before)
		_, _, _, err := b.store.AskInsert(b.ctx, &store.AskInsertParams{Ask: a, PayloadHash: "other", Now: a.CreatedAt})
		requireErrorIs(t, err, relaytype.ErrAskConflict)
		b.requireUnchanged(t, "job_ask2", before)
	})

	t.Run("InsertNeedsActiveJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.insert(t, jobOpts{ID: "job_ask3"})
		_, _, _, err := b.store.AskInsert(b.ctx, &store.AskInsertParams{Ask: b.newAsk("job_ask3", time.Minute), PayloadHash: "h", Now: b.at(time.Minute)})
		requireErrorIs(t, err, relaytype.ErrJobNotActive)
		_, _, _, err = b.store.AskInsert(b.ctx, &store.AskInsertParams{Ask: b.newAsk("job_nope", time.Minute), PayloadHash: "h", Now: b.at(time.Minute)})
		requireErrorIs(t, err, relaytype.ErrJobNotFound)
		_, err = b.store.AskGet(b.ctx, &store.AskGetParams{AskID: "00000000-0000-4000-8000-999999999999"})
		requireErrorIs(t, err, relaytype.ErrAskNotFound)
		_, err = b.store.AnswerGet(b.ctx, &store.AnswerGetParams{AskID: "00000000-0000-4000-8000-999999999999"})
		requireErrorIs(t, err, relaytype.ErrAskNotFound)
	})

	t.Run("AnswerResumesJobWhenNothingPending", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.reach(t, "job_ask4", relaytype.StateRunning)
		a1, _, _ := b.askInsert(t, b.newAsk("job_ask4", time.Minute), "1")
		a2, _, _ := b.askInsert(t, b.newAsk("job_ask4", time.Minute), "2")
		none, err := b.store.AnswerGet(b.ctx, &store.AnswerGetParams{AskID: a1.AskID})
		require.NoError(t, err)
		require.Nil(t, none)

		ans, created, job, err := b.store.AnswerInsert(b.ctx, b.answer(a1, relaytype.StatusAnswered, "hi"))
		require.NoError(t, err)
		require.True(t, created)
		require.Equal(t, relaytype.StateWaitingOnAnswer, job.State, "a2 still pending")
		require.Equal(t, "hi", ans.AnswerText)
		require.JSONEq(t, `{"pick":1}`, string(ans.AnswerJSON))

		_, _, job, err = b.store.AnswerInsert(b.ctx, b.answer(a2, relaytype.StatusAnswered, "yo"))
		require.NoError(t, err)
		require.Equal(t, relaytype.StateRunning, job.State)
		requireChain(t, job, b.transitions(t, "job_ask4"))

		got, err := b.store.AskGet(b.ctx, &store.AskGetParams{AskID: a1.AskID})
		require.NoError(t, err)
		require.Equal(t, relaytype.StatusAnswered, got.Status)
		require.NotNil(t, got.AnsweredAt)

		// The same answer again is idempotent, another one a conflict.
		before := b.snap(t, "job_ask4")
		again, created, _, err := b.store.AnswerInsert(b.ctx, b.answer(a1, relaytype.StatusAnswered, "hi"))
		require.NoError(t, err)
		require.False(t, created)
		require.Equal(t, "hi", again.AnswerText)
		_, _, _, err = b.store.AnswerInsert(b.ctx, b.answer(a1, relaytype.StatusAnswered, "bye"))
		requireErrorIs(t, err, relaytype.ErrAnswerConflict)
		b.requireUnchanged(t, "job_ask4", before)
	})

	for _, tc := range []struct {
		status relaytype.AnswerStatus
		reason relaytype.FailReason
	}{
		{relaytype.StatusRejected, relaytype.ReasonPolicy},
		{relaytype.StatusTimeout, relaytype.ReasonTimeout},
		{relaytype.StatusError, relaytype.ReasonExecutorError},
	} {
		t.Run("AnswerFailsJob/"+string(tc.status), func(t *testing.T) {
			t.Parallel()
			b := setup(t, newStore)
			id := "job_fail_" + string(tc.status)
			b.reach(t, id, relaytype.StateRunning)
			a1, _, _ := b.askInsert(t, b.newAsk(id, time.Minute), "1")
			a2, _, _ := b.askInsert(t, b.newAsk(id, time.Minute), "2")
			_, _, job, err := b.store.AnswerInsert(b.ctx, b.answer(a1, tc.status, ""))
			require.NoError(t, err)
			require.Equal(t, relaytype.StateFailed, job.State)
			require.Equal(t, tc.reason, job.ReasonCode)
			require.Contains(t, job.Summary, a1.AskID)
			requireChain(t, job, b.transitions(t, id))
			// The job's other pending ask was closed with it.
			other, err := b.store.AnswerGet(b.ctx, &store.AnswerGetParams{AskID: a2.AskID})
			require.NoError(t, err)
			require.NotNil(t, other)
			require.Equal(t, relaytype.StatusError, other.Status)
			pending, err := b.store.AskList(b.ctx, &store.AskListParams{Status: relaytype.StatusPending})
			require.NoError(t, err)
			require.Empty(t, pending)
		})
	}

	t.Run("JobEndClosesPendingAsks", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.reach(t, "job_ask5", relaytype.StateRunning)
		a, _, _ := b.askInsert(t, b.newAsk("job_ask5", time.Minute), "1")
		job := b.transition(t, &store.JobTransitionParams{ID: "job_ask5", To: relaytype.StateCanceled, Now: b.at(4 * time.Minute)})
		require.Equal(t, relaytype.StateCanceled, job.State)
		ans, err := b.store.AnswerGet(b.ctx, &store.AnswerGetParams{AskID: a.AskID})
		require.NoError(t, err)
		require.Equal(t, relaytype.StatusError, ans.Status)
		require.Contains(t, ans.Error, "CANCELED")
		// A late answer to a closed ask is a conflict and changes nothing.
		_, _, _, err = b.store.AnswerInsert(b.ctx, b.answer(a, relaytype.StatusAnswered, "late"))
		requireErrorIs(t, err, relaytype.ErrAnswerConflict)
	})

	t.Run("DueAndNextDeadline", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		next, err := b.store.AskNextDeadline(b.ctx)
		require.NoError(t, err)
		require.True(t, next.IsZero())
		b.reach(t, "job_ask6", relaytype.StateRunning)
		early, _, _ := b.askInsert(t, b.newAsk("job_ask6", time.Minute), "1")
		late, _, _ := b.askInsert(t, b.newAsk("job_ask6", time.Hour), "2")
		next, err = b.store.AskNextDeadline(b.ctx)
		require.NoError(t, err)
		require.True(t, early.DeadlineAt.Equal(next))
		due, err := b.store.AskDue(b.ctx, &store.AskDueParams{Now: early.DeadlineAt})
		require.NoError(t, err)
		require.Len(t, due, 1)
		require.Equal(t, early.AskID, due[0].AskID)
		_, _, _, err = b.store.AnswerInsert(b.ctx, b.answer(early, relaytype.StatusAnswered, "x"))
		require.NoError(t, err)
		next, err = b.store.AskNextDeadline(b.ctx)
		require.NoError(t, err)
		require.True(t, late.DeadlineAt.Equal(next))
	})
}

func exerciseUsageAndCache(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("AnswerUsageSumsOnJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.reach(t, "job_use", relaytype.StateRunning)
		a1, _, _ := b.askInsert(t, b.newAsk("job_use", time.Minute), "1")
		a2, _, _ := b.askInsert(t, b.newAsk("job_use", time.Minute), "2")
		p := b.answer(a1, relaytype.StatusAnswered, "x")
		p.Answer.Usage = &relaytype.Usage{InputTokens: 120, OutputTokens: 30}
		ans, _, _, err := b.store.AnswerInsert(b.ctx, p)
		require.NoError(t, err)
		require.Equal(t, &relaytype.Usage{InputTokens: 120, OutputTokens: 30}, ans.Usage)
		p = b.answer(a2, relaytype.StatusAnswered, "y")
		p.Answer.Usage = &relaytype.Usage{InputTokens: 80, OutputTokens: 5}
		_, _, job, err := b.store.AnswerInsert(b.ctx, p)
		require.NoError(t, err)
		require.Equal(t, relaytype.Usage{InputTokens: 200, OutputTokens: 35}, job.Usage)
		require.Equal(t, relaytype.Usage{InputTokens: 200, OutputTokens: 35}, b.get(t, "job_use").Usage)
	})

	t.Run("ExecutorUsageSessionAndParent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		b.reach(t, "job_exec", relaytype.StateRunning)
		job := b.transition(t, &store.JobTransitionParams{ID: "job_exec", To: relaytype.StateSucceeded, Owner: reachOwner,
			Now: b.at(3 * time.Minute), SessionID: "sess-1",
			Usage: &relaytype.Usage{InputTokens: 10, OutputTokens: 2, CachedInputTokens: 4, CostUSD: 0.25}})
		require.Equal(t, "sess-1", job.SessionID)
		require.Equal(t, relaytype.Usage{InputTokens: 10, OutputTokens: 2, CachedInputTokens: 4, CostUSD: 0.25}, job.Usage)
		trs := b.transitions(t, "job_exec")
		require.Equal(t, job.Usage, *trs[len(trs)-1].Usage, "the final transition event carries the run's usage")

		p := b.insertParams(jobOpts{ID: "job_child", Key: "child"})
		p.ParentJobID = "job_exec"
		child, created, err := b.store.JobInsert(b.ctx, p)
		require.NoError(t, err)
		require.True(t, created)
		require.Equal(t, "job_exec", child.ParentJobID)
		require.Equal(t, "job_exec", b.get(t, "job_child").ParentJobID)
	})

	t.Run("DecisionCache", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)
		got, err := b.store.DecisionGet(b.ctx, &store.DecisionGetParams{Key: "k", Now: b.now})
		require.NoError(t, err)
		require.Nil(t, got)
		ans := &relaytype.Answer{Status: relaytype.StatusAnswered, AnswerJSON: json.RawMessage(`{"decision":"ALLOW"}`),
			Attestation: &relaytype.Attestation{RoleID: "policy_decider", Model: "m"}}
		require.NoError(t, b.store.DecisionPut(b.ctx, &store.DecisionPutParams{Key: "k", Answer: ans, Now: b.now, ExpiresAt: b.at(time.Hour)}))
		got, err = b.store.DecisionGet(b.ctx, &store.DecisionGetParams{Key: "k", Now: b.at(time.Minute)})
		require.NoError(t, err)
		require.NotNil(t, got)
		require.JSONEq(t, `{"decision":"ALLOW"}`, string(got.AnswerJSON))
		require.Equal(t, "m", got.Attestation.Model)
		got, err = b.store.DecisionGet(b.ctx, &store.DecisionGetParams{Key: "k", Now: b.at(time.Hour)})
		require.NoError(t, err)
		require.Nil(t, got, "expired at its ttl")
		// Replacing refreshes the entry.
		ans.AnswerJSON = json.RawMessage(`{"decision":"DENY"}`)
		require.NoError(t, b.store.DecisionPut(b.ctx, &store.DecisionPutParams{Key: "k", Answer: ans, Now: b.at(2 * time.Hour), ExpiresAt: b.at(3 * time.Hour)}))
		got, err = b.store.DecisionGet(b.ctx, &store.DecisionGetParams{Key: "k", Now: b.at(2 * time.Hour)})
		require.NoError(t, err)
		require.JSONEq(t, `{"decision":"DENY"}`, string(got.AnswerJSON))
	})
}
