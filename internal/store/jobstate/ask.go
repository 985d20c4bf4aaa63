package jobstate

import (
	"fmt"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// AttemptOver reports whether the attempt that posted an ask (askAttempt)
// is over: its job is no longer active or runs another attempt.
func AttemptOver(job *relaytype.Job, askAttempt int) bool {
	return !job.State.Active() || job.Attempt != askAttempt
}

// AnswerEvent returns the "answer" event of answer a.
func AnswerEvent(a *relaytype.AnswerRecord) Event {
	by := ""
	if a.Attestation != nil {
		by = a.Attestation.AnsweredBy
	}
	ev := map[string]any{"askId": a.AskID, "status": a.Status, "answeredBy": by, "error": a.Error}
	if a.Attestation != nil && a.Attestation.CacheHit {
		ev["cacheHit"] = true
	}
	if a.Usage != nil {
		ev["usage"] = a.Usage
	}
	return Event{JobID: a.JobID, Type: relaytype.EventAnswer, Payload: ev}
}

// answerUsage is what answer a adds to its job's sums, nil for nothing.
func answerUsage(a *relaytype.AnswerRecord) *relaytype.Usage {
	if a.Usage == nil {
		return nil
	}
	u := *a.Usage
	if u.InputTokens+u.OutputTokens > 0 || u.CostUSD > 0 {
		return &u
	}
	return nil
}

// writeAnswer returns the write of answer a with hash.
func writeAnswer(a *relaytype.AnswerRecord, hash string) *AnswerWrite {
	return &AnswerWrite{Answer: a, PayloadHash: hash, Usage: answerUsage(a), Event: AnswerEvent(a)}
}

// closeAsk returns the ERROR answer that closes ask a with the text why.
func closeAsk(a *StoredAsk, why string) *AnswerWrite {
	return writeAnswer(&relaytype.AnswerRecord{
		AskID: a.Record.AskID, JobID: a.Record.JobID, StepID: a.Record.StepID,
		Status: relaytype.StatusError, Error: why,
	}, "")
}

// closePending returns the answers that close the PENDING asks of s
// (before transition p) that p ends: all of them when the job ends or its
// attempt ends (STALE), and those of earlier attempts when p starts
// attempt started (0 when p is no start).
func closePending(s Snapshot, p *store.JobTransitionParams, started int) []*AnswerWrite {
	j := s.Job
	var why func(attempt int) string
	switch {
	case p.To.Terminal():
		why = func(int) string { return fmt.Sprintf("job ended %s before the ask was answered", p.To) }
	case p.To == relaytype.StateStale:
		cause := p.Summary
		if cause == "" {
			cause = "its worker stopped"
		}
		next := fmt.Sprintf("the job goes back to the queue for attempt %d", j.Attempt+1)
		if j.Attempt >= j.MaxAttempts {
			next = fmt.Sprintf("the job has used all %d attempts", j.MaxAttempts)
		}
		why = func(attempt int) string {
			return fmt.Sprintf("closed: attempt %d of the job ended (%s) before the ask was answered; %s", attempt, cause, next)
		}
	case started > 0:
		why = func(attempt int) string {
			return fmt.Sprintf("closed: attempt %d of the job ended before the ask was answered; the job was retried as attempt %d", attempt, started)
		}
	default:
		return nil
	}
	var out []*AnswerWrite
	for _, a := range s.Pending {
		if started == 0 || a.Attempt < started {
			out = append(out, closeAsk(a, why(a.Attempt)))
		}
	}
	return out
}

// AskOutcome is the decision on Store.AskInsert.
type AskOutcome struct {
	// Existing, when set, is the stored ask a repeat of the same post
	// returns with created=false; there is nothing to write.
	Existing *relaytype.AskRecord
	// Insert is the new PENDING ask to store, with its "ask" event.
	Insert *StoredAsk
	Event  Event
	// Changes are the job's transitions after the ask is stored (RUNNING
	// → WAITING_ON_ANSWER), in order.
	Changes []*Change
	// Job is the job as it is afterwards.
	Job *relaytype.Job
}

// AskInsert decides Store.AskInsert p. s is the snapshot of the ask's
// job: of existing.Record.JobID when an ask with the id is stored
// (existing), else of p.Ask.JobID. A repeat of a stored ask id by another
// job or with another PayloadHash fails with relaytype.ErrAskConflict; by
// a later attempt of the job with an *store.AttemptOverError (Repost). A
// non-zero p.Attempt that is not the job's attempt (an executor of an
// attempt that is over) fails with an error wrapping store.ErrAttemptOver
// and relaytype.ErrLeaseLost. A new ask of a job that is not active fails
// with relaytype.ErrJobNotActive; otherwise it is stored PENDING, bound to
// the job's current attempt, and a RUNNING job moves to WAITING_ON_ANSWER.
func AskInsert(s Snapshot, existing *StoredAsk, p *store.AskInsertParams) (*AskOutcome, error) {
	a, job := p.Ask, s.Job
	if existing != nil && existing.Record.JobID != a.JobID {
		return nil, fmt.Errorf("ask %s: %w", a.AskID, relaytype.ErrAskConflict)
	}
	if p.Attempt != 0 && p.Attempt != job.Attempt {
		return nil, fmt.Errorf("ask %s of attempt %d of job %s, which is on attempt %d: %w: %w",
			a.AskID, p.Attempt, job.ID, job.Attempt, store.ErrAttemptOver, relaytype.ErrLeaseLost)
	}
	if existing != nil {
		if job.Attempt != existing.Attempt {
			// Another attempt's executor (or a leftover of the dead
			// one) must not take over the dead attempt's ask.
			return nil, &store.AttemptOverError{AskID: a.AskID, JobID: job.ID, Attempt: existing.Attempt,
				JobAttempt: job.Attempt, JobState: job.State, Repost: true}
		}
		if existing.PayloadHash != p.PayloadHash {
			return nil, fmt.Errorf("ask %s: %w", a.AskID, relaytype.ErrAskConflict)
		}
		return &AskOutcome{Existing: existing.Record, Job: job}, nil
	}
	if !job.State.Active() {
		return nil, fmt.Errorf("job %s is %s: %w", job.ID, job.State, relaytype.ErrJobNotActive)
	}
	rec := *a
	rec.Status, rec.CreatedAt, rec.AnsweredAt = relaytype.StatusPending, p.Now, nil
	out := &AskOutcome{
		Insert: &StoredAsk{Record: &rec, PayloadHash: p.PayloadHash, Attempt: job.Attempt},
		Event: Event{JobID: a.JobID, Type: relaytype.EventAsk, Payload: map[string]any{
			"askId": a.AskID, "askType": a.AskType, "stepId": a.StepID, "attempt": job.Attempt, "roleId": a.RoleID,
			"route": a.Route, "contextHash": a.ContextHash, "deadlineAt": a.DeadlineAt,
		}},
		Job: job,
	}
	if job.State == relaytype.StateRunning {
		c, err := Transition(s, &store.JobTransitionParams{
			ID: job.ID, To: relaytype.StateWaitingOnAnswer, Now: p.Now, Summary: "waiting for the answer to ask " + a.AskID,
		})
		if err != nil {
			return nil, err
		}
		out.Changes, out.Job = []*Change{c}, c.Job
	}
	return out, nil
}

// DeferOutcome is the decision on Store.AskDefer: the ask's route and
// deadline from now on, and the "ask_deferred" event.
type DeferOutcome struct {
	Route      string
	DeadlineAt time.Time
	Event      Event
}

// Defer decides Store.AskDefer p of ask a: a PENDING ask takes the new
// route and the later of its deadline and p.DeadlineAt; an ask that is no
// longer PENDING fails with relaytype.ErrAnswerConflict.
func Defer(a *relaytype.AskRecord, p *store.AskDeferParams) (*DeferOutcome, error) {
	if a.Status != relaytype.StatusPending {
		return nil, fmt.Errorf("ask %s is %s, not PENDING: %w", a.AskID, a.Status, relaytype.ErrAnswerConflict)
	}
	deadline := a.DeadlineAt
	if p.DeadlineAt.After(deadline) {
		deadline = p.DeadlineAt
	}
	return &DeferOutcome{Route: p.Route, DeadlineAt: deadline, Event: Event{JobID: a.JobID, Type: relaytype.EventAskDeferred,
		Payload: map[string]any{"askId": a.AskID, "from": a.Route, "route": p.Route, "deadlineAt": deadline, "reason": p.Reason}}}, nil
}

// AnswerOutcome is the decision on Store.AnswerInsert.
type AnswerOutcome struct {
	// Existing, when set, is the stored answer a repeat of the same post
	// returns with created=false; there is nothing to write.
	Existing *relaytype.AnswerRecord
	// Write, when set, is the answer to store: the posted one, or the
	// ERROR that closes a PENDING ask whose attempt is over (then Refuse
	// is set).
	Write *AnswerWrite
	// Changes are the job's transitions after the answer, in order.
	Changes []*Change
	// Job is the job as it is afterwards (with the answer's usage).
	Job *relaytype.Job
	// Refuse, when set, is the error AnswerInsert returns once the
	// writes are committed (an *store.AttemptOverError).
	Refuse error
}

// Created reports whether the outcome stores the posted answer.
func (o *AnswerOutcome) Created() bool { return o.Write != nil && o.Refuse == nil }

// Answer decides Store.AnswerInsert p to ask, whose stored answer is
// existing (nil when it has none); s is the snapshot of the ask's job.
// An answer naming another job is a *relaytype.RequestError; a repeat
// with the stored PayloadHash returns the stored answer. Any other answer
// to an ask whose attempt is over is refused with an
// *store.AttemptOverError (Refuse), after closing the ask if it is still
// PENDING; another answer to an answered ask fails with
// relaytype.ErrAnswerConflict. Otherwise the answer is stored with its
// usage; then a non-ANSWERED status fails the job (REJECTED → POLICY,
// TIMEOUT → TIMEOUT, ERROR → EXECUTOR_ERROR) and an ANSWERED one returns
// a WAITING_ON_ANSWER job with no other PENDING ask of its current
// attempt to RUNNING.
func Answer(s Snapshot, ask *StoredAsk, existing *StoredAnswer, p *store.AnswerInsertParams) (*AnswerOutcome, error) {
	a, job := p.Answer, s.Job
	if a.JobID != ask.Record.JobID {
		return nil, &relaytype.RequestError{Field: "job_id",
			Message: fmt.Sprintf("ask %s belongs to job %s, not %s", ask.Record.AskID, ask.Record.JobID, a.JobID)}
	}
	if existing != nil && existing.PayloadHash == p.PayloadHash {
		return &AnswerOutcome{Existing: existing.Record, Job: job}, nil
	}
	if AttemptOver(job, ask.Attempt) {
		out := &AnswerOutcome{Job: job, Refuse: &store.AttemptOverError{AskID: ask.Record.AskID, JobID: job.ID,
			Attempt: ask.Attempt, JobAttempt: job.Attempt, JobState: job.State}}
		if existing == nil {
			// Only an ask stored before asks were bound to attempts can
			// still be pending here: close it as its attempt's end would
			// have, and refuse the answer all the same.
			out.Write = closeAsk(ask, fmt.Sprintf("closed: attempt %d of the job ended before the ask was answered", ask.Attempt))
		}
		return out, nil
	}
	if existing != nil {
		return nil, fmt.Errorf("ask %s was answered %s: %w", a.AskID, existing.Record.Status, relaytype.ErrAnswerConflict)
	}
	w := writeAnswer(a, p.PayloadHash)
	job = cloneJob(job)
	if w.Usage != nil {
		addUsage(&job.Usage, w.Usage)
	}
	var pending []*StoredAsk
	for _, x := range s.Pending {
		if x.Record.AskID != a.AskID {
			pending = append(pending, x)
		}
	}
	s = Snapshot{Job: job, Pending: pending, Artifacts: s.Artifacts}
	out := &AnswerOutcome{Write: w, Job: job}
	var next *store.JobTransitionParams
	if reason := a.Status.FailReason(); reason != "" {
		msg := fmt.Sprintf("ask %s was answered %s", a.AskID, a.Status)
		if a.Error != "" {
			msg += ": " + a.Error
		}
		next = &store.JobTransitionParams{ID: job.ID, To: relaytype.StateFailed, Now: p.Now, Reason: reason, Summary: msg}
	} else if job.State == relaytype.StateWaitingOnAnswer && !hasPending(pending, job.Attempt) {
		next = &store.JobTransitionParams{ID: job.ID, To: relaytype.StateRunning, Now: p.Now, Summary: "all asks answered"}
	}
	if next != nil {
		c, err := Transition(s, next)
		if err != nil {
			return nil, err
		}
		out.Changes, out.Job = []*Change{c}, c.Job
	}
	return out, nil
}

// hasPending reports whether one of pending belongs to attempt.
func hasPending(pending []*StoredAsk, attempt int) bool {
	for _, a := range pending {
		if a.Attempt == attempt {
			return true
		}
	}
	return false
}
