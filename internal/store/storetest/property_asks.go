package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// modelAsk is what the model expects of one ask.
type modelAsk struct {
	rec *relaytype.AskRecord
	job *modelJob
	// attempt is the job's attempt when it asked.
	attempt int
	// hash is the payload hash the ask was posted with.
	hash string
	// status is PENDING until the ask is answered or closed.
	status relaytype.AnswerStatus
	// answerHash is the payload hash of the stored answer; "" when the
	// store closed the ask.
	answerHash string
	answerText string
}

func (a *modelAsk) pending() bool { return a.status == relaytype.StatusPending }

// endAsks closes the pending asks of j whose attempt is before `before`
// (all of them when before is 0), as the store does when an attempt ends.
func (m *machine) endAsks(j *modelJob, before int) {
	for _, a := range m.asks {
		if a.job == j && a.pending() && (before == 0 || a.attempt < before) {
			a.status, a.answerHash = relaytype.StatusError, ""
		}
	}
}

// pickAsk draws an ask, preferring pending ones.
func (m *machine) pickAsk(t *rapid.T) *modelAsk {
	if len(m.asks) == 0 {
		t.Skip("no asks yet")
	}
	if rapid.IntRange(0, 3).Draw(t, "preferPending") > 0 {
		var pending []*modelAsk
		for _, a := range m.asks {
			if a.pending() {
				pending = append(pending, a)
			}
		}
		if len(pending) > 0 {
			return pending[rapid.IntRange(0, len(pending)-1).Draw(t, "pendingAsk")]
		}
	}
	return m.asks[rapid.IntRange(0, len(m.asks)-1).Draw(t, "ask")]
}

// ask posts a new ask of a random job, as its executor would.
func (m *machine) ask(t *rapid.T) {
	j := m.pick(t)
	n := askSeq.Add(1)
	rec := &relaytype.AskRecord{
		AskID: fmt.Sprintf("00000000-0000-4000-9000-%012d", n), JobID: j.id, StepID: fmt.Sprintf("attempt-%d", j.attempt),
		AskType: relaytype.AskClarification, Prompt: "Which?", ContextHash: "abc",
		ContextEnvelope: json.RawMessage(`{"job_snapshot":{}}`), Route: "orchestrator", Status: relaytype.StatusPending,
		CreatedAt:  m.clock,
		DeadlineAt: m.clock.Add(time.Duration(rapid.IntRange(0, 60).Draw(t, "askDeadlineS")) * time.Second),
	}
	hash := "ask-" + rec.AskID
	m.touched[j.id] = true
	before := m.b.snap(t, j.id)
	_, created, job, err := m.b.store.AskInsert(m.b.ctx, &store.AskInsertParams{Ask: rec, PayloadHash: hash, Now: m.clock})
	if !j.state.Active() {
		requireErrorIs(t, err, relaytype.ErrJobNotActive)
		m.b.requireUnchanged(t, j.id, before)
		return
	}
	require.NoError(t, err, "ask of %s (%s)", j.id, j.state)
	require.True(t, created)
	if j.state == relaytype.StateRunning {
		j.state = relaytype.StateWaitingOnAnswer
		j.version++
	}
	require.Equal(t, j.state, job.State)
	require.Equal(t, j.version, job.StateVersion)
	j.asked = true
	a := &modelAsk{rec: rec, job: j, attempt: j.attempt, hash: hash, status: relaytype.StatusPending}
	m.asks = append(m.asks, a)
	m.askByID[rec.AskID] = a
}

// repost posts an earlier ask again, as a retrying executor (or the next
// attempt with a fixed ask id) would.
func (m *machine) repost(t *rapid.T) {
	a := m.pickAsk(t)
	j := a.job
	m.touched[j.id] = true
	before := m.b.snap(t, j.id)
	_, created, _, err := m.b.store.AskInsert(m.b.ctx, &store.AskInsertParams{Ask: a.rec, PayloadHash: a.hash, Now: m.clock})
	if j.attempt != a.attempt {
		requireAttemptOver(t, err, true)
	} else {
		require.NoError(t, err, "repost of %s within attempt %d of %s", a.rec.AskID, a.attempt, j.id)
		require.False(t, created)
	}
	m.b.requireUnchanged(t, j.id, before)
}

// answer answers a random ask: sometimes the same answer again, often an
// ask of an attempt that is over.
func (m *machine) answer(t *rapid.T) {
	a := m.pickAsk(t)
	if a.answerHash != "" && rapid.IntRange(0, 2).Draw(t, "repeatAnswer") == 0 {
		m.answerAsk(t, a, a.status, a.answerText, a.answerHash)
		return
	}
	status := rapid.SampledFrom([]relaytype.AnswerStatus{relaytype.StatusAnswered, relaytype.StatusAnswered,
		relaytype.StatusAnswered, relaytype.StatusRejected, relaytype.StatusTimeout, relaytype.StatusError}).Draw(t, "answerStatus")
	text := rapid.SampledFrom([]string{"yes", "no"}).Draw(t, "answerText")
	m.answerAsk(t, a, status, text, string(status)+"-"+text)
}

// sweepAsks does what the ask service's deadline loop does: AskDue, then
// a TIMEOUT answer to each ask due.
func (m *machine) sweepAsks(t *rapid.T) {
	var want []string
	for _, a := range m.asks {
		if a.pending() && !a.rec.DeadlineAt.After(m.clock) {
			want = append(want, a.rec.AskID)
		}
	}
	due, err := m.b.store.AskDue(m.b.ctx, &store.AskDueParams{Now: m.clock, Limit: 1000})
	require.NoError(t, err)
	got := make([]string, len(due))
	for i, d := range due {
		got[i] = d.AskID
	}
	require.ElementsMatch(t, want, got, "AskDue")
	for _, d := range due {
		m.answerAsk(t, m.askByID[d.AskID], relaytype.StatusTimeout, "", "timeout-"+d.AskID)
	}
}

// answerAsk calls AnswerInsert and checks the outcome against the model.
func (m *machine) answerAsk(t *rapid.T, a *modelAsk, status relaytype.AnswerStatus, text, hash string) {
	j := a.job
	m.touched[j.id] = true
	before := m.b.snap(t, j.id)
	what := fmt.Sprintf("%s answer to ask %s (attempt %d, %s) of %s (%s, attempt %d)", status, a.rec.AskID, a.attempt, a.status, j.id, j.state, j.attempt)
	_, created, job, err := m.b.store.AnswerInsert(m.b.ctx, &store.AnswerInsertParams{
		Answer:      &relaytype.AnswerRecord{AskID: a.rec.AskID, JobID: j.id, StepID: a.rec.StepID, Status: status, AnswerText: text},
		PayloadHash: hash, Now: m.clock,
	})
	switch {
	case a.answerHash != "" && a.answerHash == hash:
		require.NoError(t, err, what)
		require.False(t, created, what)
		m.b.requireUnchanged(t, j.id, before)
		return
	case !j.state.Active() || j.attempt != a.attempt:
		require.False(t, a.pending(), "%s: a pending ask of an attempt that is over", what)
		requireAttemptOver(t, err, false)
		m.b.requireUnchanged(t, j.id, before)
		return
	case !a.pending():
		requireErrorIs(t, err, relaytype.ErrAnswerConflict)
		require.False(t, errors.Is(err, store.ErrAttemptOver), "%s: the attempt is not over: %v", what, err)
		m.b.requireUnchanged(t, j.id, before)
		return
	}
	require.NoError(t, err, what)
	require.True(t, created, what)
	a.status, a.answerHash, a.answerText = status, hash, text
	if reason := status.FailReason(); reason != "" {
		j.state, j.reason, j.finishedAt = relaytype.StateFailed, reason, m.clock
		j.owner, j.leaseExp = "", time.Time{}
		j.version++
		m.endAsks(j, 0)
	} else if j.state == relaytype.StateWaitingOnAnswer && !slices.ContainsFunc(m.asks, func(o *modelAsk) bool {
		return o.job == j && o.pending() && o.attempt == j.attempt
	}) {
		j.state = relaytype.StateRunning
		j.version++
	}
	require.Equal(t, j.state, job.State, what)
	require.Equal(t, j.version, job.StateVersion, what)
}

// release hands a random job back as a shutting-down worker would.
func (m *machine) release(t *rapid.T) {
	j := m.pick(t)
	owner := ""
	if rapid.IntRange(0, 4).Draw(t, "releaseAsOwner") > 0 {
		owner = m.drawOwner(t, j)
	}
	ok, lost := m.ownerOutcome(j, owner, relaytype.StateStale)
	m.touched[j.id] = true
	before := m.b.snap(t, j.id)
	job, err := m.b.store.JobRelease(m.b.ctx, &store.JobReleaseParams{ID: j.id, Owner: owner, Now: m.clock, Summary: "shutdown"})
	what := fmt.Sprintf("release of %s (%s, owner %q) by %q", j.id, j.state, j.owner, owner)
	if err != nil {
		switch {
		case !j.state.Active():
			requireErrorIs(t, err, relaytype.ErrIllegalTransition)
		default:
			require.True(t, lost, "%s: %v", what, err)
			requireErrorIs(t, err, relaytype.ErrLeaseLost)
		}
		m.b.requireUnchanged(t, j.id, before)
		return
	}
	require.True(t, j.state.Active() && ok, "%s succeeded", what)
	j.version++
	if j.state == relaytype.StateWaitingOnAnswer {
		j.version++
	}
	j.state, j.staleAt, j.owner, j.leaseExp = relaytype.StateStale, m.clock, "", time.Time{}
	m.endAsks(j, 0)
	require.Equal(t, j.state, job.State, what)
	require.Equal(t, j.version, job.StateVersion, what)
}

// checkAsks compares the pending asks with the model and checks the
// invariants that bind asks to attempts.
func (m *machine) checkAsks(t *rapid.T, jobs map[string]*relaytype.Job) {
	pending, err := m.b.store.AskList(m.b.ctx, &store.AskListParams{Status: relaytype.StatusPending, Limit: 1000})
	require.NoError(t, err)
	var want, got []string
	var next time.Time
	for _, a := range m.asks {
		if a.pending() {
			want = append(want, a.rec.AskID)
			if next.IsZero() || a.rec.DeadlineAt.Before(next) {
				next = a.rec.DeadlineAt
			}
		}
	}
	waiting := map[string]bool{}
	for _, p := range pending {
		got = append(got, p.AskID)
		a, ok := m.askByID[p.AskID]
		require.True(t, ok, "unknown pending ask %s", p.AskID)
		job := jobs[a.job.id]
		require.True(t, job.State.Active() && job.Attempt == a.attempt,
			"ask %s of attempt %d is PENDING, but job %s is %s on attempt %d", p.AskID, a.attempt, job.ID, job.State, job.Attempt)
		waiting[job.ID] = true
	}
	require.ElementsMatch(t, want, got, "pending asks")
	for _, job := range jobs {
		if job.State == relaytype.StateWaitingOnAnswer {
			require.True(t, waiting[job.ID], "job %s is WAITING_ON_ANSWER on attempt %d with no pending ask of it", job.ID, job.Attempt)
		}
	}
	gotNext, err := m.b.store.AskNextDeadline(m.b.ctx)
	require.NoError(t, err)
	if next.IsZero() {
		require.True(t, gotNext.IsZero(), "AskNextDeadline: want zero, got %s", gotNext)
	} else {
		requireTime(t, next, &gotNext, "AskNextDeadline")
	}
}

// checkAllAsks compares every ask's status with the model.
func (m *machine) checkAllAsks(t *rapid.T) {
	all, err := m.b.store.AskList(m.b.ctx, &store.AskListParams{Limit: 1000})
	require.NoError(t, err)
	require.Len(t, all, len(m.asks))
	for _, got := range all {
		a := m.askByID[got.AskID]
		require.NotNil(t, a, "unknown ask %s", got.AskID)
		require.Equal(t, a.status, got.Status, "ask %s", got.AskID)
	}
}
