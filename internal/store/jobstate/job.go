package jobstate

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// NewJob returns the QUEUED job Store.JobInsert stores for p (state
// version 1, no attempt yet, expiring in the queue after the spec's ttl)
// and its "submitted" event.
func NewJob(p *store.JobInsertParams) (*relaytype.Job, Event) {
	j := &relaytype.Job{
		ID:             p.ID,
		IdempotencyKey: p.Spec.IdempotencyKey,
		State:          relaytype.StateQueued,
		StateVersion:   1,
		Priority:       p.Spec.Execution.Priority,
		MaxAttempts:    p.Spec.Execution.MaxAttempts,
		Executor:       p.Executor,
		BaselineCommit: p.BaselineCommit,
		CreatedAt:      p.Now,
		UpdatedAt:      p.Now,
		ExpiresAt:      queueExpiry(p.Spec, p.Now),
		ParentJobID:    p.ParentJobID,
		Project:        p.Project,
		Host:           p.Host,
		Spec:           *p.Spec,
	}
	return j, Event{JobID: p.ID, Type: relaytype.EventSubmitted, Payload: relaytype.TransitionPayload{
		To: relaytype.StateQueued, StateVersion: 1,
	}}
}

// queueExpiry is when a job that enters the queue at now expires there.
func queueExpiry(spec *relaytype.JobSpec, now time.Time) time.Time {
	return now.Add(time.Duration(spec.Execution.TTLS) * time.Second)
}

// Reuses reports whether Store.JobInsert with p returns the stored job j
// (same idempotency key and project, which the driver's lookup matches)
// instead of inserting a new one: j is not terminal, or SUCCEEDED within
// p.IdempotencyWindow before p.Now. Of several such jobs the newest
// (last inserted) one is returned; FAILED, CANCELED and EXPIRED jobs are
// never reused, so a driver may leave them out of its lookup.
func Reuses(j *relaytype.Job, p *store.JobInsertParams) bool {
	if !j.State.Terminal() {
		return true
	}
	return j.State == relaytype.StateSucceeded && j.FinishedAt != nil &&
		!j.FinishedAt.Before(p.Now.Add(-p.IdempotencyWindow))
}

// Claimable reports whether Store.JobClaim at now may start j: it is
// QUEUED, its ttl in the queue has not run out, and it has attempts left.
// A driver's claim query selects exactly these jobs.
func Claimable(j *relaytype.Job, now time.Time) bool {
	return j.State == relaytype.StateQueued && j.ExpiresAt.After(now) && j.Attempt < j.MaxAttempts
}

// ClaimableBy reports whether the claim p may start j besides
// Claimable: j's project is one of p.Projects (any when nil), j is bound
// to no host or to p.Host, and its executor is one of p.Executors (any
// when nil). An empty, non-nil Projects or Executors claims nothing. A
// driver's claim query selects exactly these jobs.
func ClaimableBy(j *relaytype.Job, p *store.JobClaimParams) bool {
	if p.Projects != nil && !slices.Contains(p.Projects, j.Project) {
		return false
	}
	if j.Host != "" && j.Host != p.Host {
		return false
	}
	return p.Executors == nil || slices.Contains(p.Executors, j.Executor)
}

// Fence checks a worker's write to job j that names its lease (owner)
// and attempt (see store's Fenced writes): j must be active, leased to
// owner when owner is set, and at attempt when attempt is not zero. A
// write that names neither passes. The error wraps
// relaytype.ErrLeaseLost.
func Fence(j *relaytype.Job, owner string, attempt int) error {
	if owner == "" && attempt == 0 {
		return nil
	}
	if !j.State.Active() {
		return fmt.Errorf("job %s is %s: %w", j.ID, j.State, relaytype.ErrLeaseLost)
	}
	return checkLease(j, owner, attempt)
}

// checkLease refuses a write whose owner (when set) does not hold j's
// lease or whose attempt (when not zero) is not j's attempt.
func checkLease(j *relaytype.Job, owner string, attempt int) error {
	if owner != "" && j.LeaseOwner != owner {
		return fmt.Errorf("job %s is held by %q, not %q: %w", j.ID, j.LeaseOwner, owner, relaytype.ErrLeaseLost)
	}
	if attempt != 0 && j.Attempt != attempt {
		return fmt.Errorf("job %s is on attempt %d, not %d: %w", j.ID, j.Attempt, attempt, relaytype.ErrLeaseLost)
	}
	return nil
}

// Rescuable reports whether Store.JobRescue at now handles j: an active
// job whose lease lapsed at or before now, or a STALE job.
func Rescuable(j *relaytype.Job, now time.Time) bool {
	if j.State == relaytype.StateStale {
		return true
	}
	return j.State.Active() && j.LeaseExpiresAt != nil && !j.LeaseExpiresAt.After(now)
}

// Expired reports whether Store.JobExpire at now expires j: it is QUEUED
// and its ttl in the queue ended at or before now.
func Expired(j *relaytype.Job, now time.Time) bool {
	return j.State == relaytype.StateQueued && !j.ExpiresAt.After(now)
}

// WakeAt returns when JobRescue or JobExpire next has work for j (the end
// of its queue ttl or lease, or at once, as of its last update, for a
// STALE job), and false when neither ever has.
func WakeAt(j *relaytype.Job) (time.Time, bool) {
	switch {
	case j.State == relaytype.StateQueued:
		return j.ExpiresAt, true
	case j.State.Active() && j.LeaseExpiresAt != nil:
		return *j.LeaseExpiresAt, true
	case j.State == relaytype.StateStale:
		return j.UpdatedAt, true
	}
	return time.Time{}, false
}

// Transition decides transition p of the job of s (Store.JobTransition).
// It refuses an edge relaytype.CanTransition does not allow with a
// *relaytype.TransitionError, and a non-empty Owner that does not hold
// the lease of an active job with an error wrapping
// relaytype.ErrLeaseLost, as is a non-zero Attempt that is not the job's
// (the fence of the lease: see store's Fenced writes). A start (QUEUED or
// STALE → RUNNING) is a claim: it needs Owner and LeaseTTL, counts the
// attempt, makes Owner the lease holder and is refused with
// relaytype.ErrIllegalTransition once the job has used MaxAttempts; a
// non-zero Attempt of a start must be the attempt it starts (so a worker
// of an attempt that is over cannot start the job again by moving it to
// RUNNING). A move to QUEUED clears the lease and restarts
// the queue ttl; a terminal move clears the lease and sets FinishedAt,
// ReasonCode and Summary. A start closes the PENDING asks of earlier
// attempts, a move to STALE or to a terminal state all of them; a
// terminal move enqueues the job's notifications (store.TerminalMessages).
func Transition(s Snapshot, p *store.JobTransitionParams) (*Change, error) {
	j := s.Job
	if !relaytype.CanTransition(j.State, p.To) {
		return nil, &relaytype.TransitionError{JobID: j.ID, From: j.State, To: p.To}
	}
	claim := p.To == relaytype.StateRunning && (j.State == relaytype.StateQueued || j.State == relaytype.StateStale)
	switch {
	case claim:
		if p.Attempt != 0 && p.Attempt != j.Attempt+1 {
			return nil, fmt.Errorf("start job %s: it would start attempt %d, not %d: %w", j.ID, j.Attempt+1, p.Attempt, relaytype.ErrLeaseLost)
		}
	case p.Owner != "" && !j.State.Active():
		return nil, fmt.Errorf("job %s is %s, no longer held by %q: %w", j.ID, j.State, p.Owner, relaytype.ErrLeaseLost)
	default:
		if err := checkLease(j, p.Owner, p.Attempt); err != nil {
			return nil, err
		}
	}
	now := p.Now
	n := cloneJob(j)
	n.State, n.StateVersion, n.UpdatedAt = p.To, j.StateVersion+1, now
	switch {
	case p.To.Terminal():
		n.FinishedAt, n.LeaseOwner, n.LeaseExpiresAt = timePtr(now), "", nil
		n.ReasonCode, n.Summary = p.Reason, p.Summary
	case p.To == relaytype.StateQueued:
		// A retry waits in the queue for a fresh ttl: its age since submit
		// is not the queueing delay the ttl bounds.
		n.LeaseOwner, n.LeaseExpiresAt = "", nil
		n.ExpiresAt = queueExpiry(&j.Spec, now)
	case claim:
		if j.Attempt >= j.MaxAttempts {
			return nil, fmt.Errorf("start job %s: it has used all %d attempts: %w", j.ID, j.MaxAttempts, relaytype.ErrIllegalTransition)
		}
		if p.Owner == "" || p.LeaseTTL <= 0 {
			return nil, fmt.Errorf("start job %s: a lease owner and TTL are required", j.ID)
		}
		n.Attempt++
		if n.StartedAt == nil {
			n.StartedAt = timePtr(now)
		}
		n.LeaseOwner, n.LeaseExpiresAt, n.HeartbeatAt = p.Owner, timePtr(now.Add(p.LeaseTTL)), timePtr(now)
	case p.To.Active() && p.LeaseTTL > 0:
		n.LeaseExpiresAt, n.HeartbeatAt = timePtr(now.Add(p.LeaseTTL)), timePtr(now)
	}
	if p.Summary != "" && !p.To.Terminal() {
		n.Summary = p.Summary
	}
	if u := p.Usage; u != nil {
		addUsage(&n.Usage, u)
	}
	if p.SessionID != "" {
		n.SessionID = p.SessionID
	}
	c := &Change{From: j.State, FromVersion: j.StateVersion, Job: n, Claim: claim}
	for _, a := range p.Artifacts {
		stored, ev, err := artifact(j.ID, a, now)
		if err != nil {
			return nil, err
		}
		c.Artifacts = append(c.Artifacts, stored)
		c.Events = append(c.Events, ev)
		if b, ok := p.Contents[a.Kind]; ok {
			if c.Contents == nil {
				c.Contents = map[relaytype.ArtifactKind][]byte{}
			}
			c.Contents[a.Kind] = b
		}
	}
	c.Events = append(c.Events, Event{JobID: j.ID, Type: relaytype.EventTransition, Payload: relaytype.TransitionPayload{
		From: j.State, To: p.To, StateVersion: n.StateVersion, Attempt: n.Attempt,
		Reason: p.Reason, Summary: p.Summary, Owner: p.Owner, Usage: p.Usage,
	}})
	started := 0
	if claim {
		started = n.Attempt
	}
	c.Closes = closePending(s, p, started)
	if p.To.Terminal() && Notifies(n) {
		msgs, err := store.TerminalMessages(n, mergeArtifacts(s.Artifacts, c.Artifacts))
		if err != nil {
			return nil, err
		}
		c.Outbox = msgs
	}
	return c, nil
}

func addUsage(sum *relaytype.Usage, u *relaytype.Usage) {
	sum.InputTokens += u.InputTokens
	sum.OutputTokens += u.OutputTokens
	sum.CachedInputTokens += u.CachedInputTokens
	sum.CostUSD += u.CostUSD
}

// artifact validates an artifact stored with a transition of job jobID at
// now and returns it as stored, with its "artifact" event.
func artifact(jobID string, a *relaytype.Artifact, now time.Time) (*relaytype.Artifact, Event, error) {
	if a.JobID != "" && a.JobID != jobID {
		return nil, Event{}, fmt.Errorf("artifact for job %s stored with job %s", a.JobID, jobID)
	}
	if !a.Kind.Valid() {
		return nil, Event{}, fmt.Errorf("artifact kind %q is not one of %v", a.Kind, relaytype.ArtifactKinds)
	}
	stored := *a
	stored.JobID = jobID
	if stored.CreatedAt.IsZero() {
		stored.CreatedAt = now
	}
	return &stored, Event{JobID: jobID, Type: relaytype.EventArtifact, Payload: map[string]any{
		"kind": a.Kind, "uri": a.URI, "digest": a.Digest, "size": a.Size,
	}}, nil
}

// mergeArtifacts returns the job's artifacts after added are stored over
// stored (one per kind), ordered by kind.
func mergeArtifacts(stored, added []*relaytype.Artifact) []*relaytype.Artifact {
	byKind := map[relaytype.ArtifactKind]*relaytype.Artifact{}
	for _, a := range stored {
		byKind[a.Kind] = a
	}
	for _, a := range added {
		byKind[a.Kind] = a
	}
	out := make([]*relaytype.Artifact, 0, len(byKind))
	for _, a := range byKind {
		out = append(out, a)
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Kind < out[k].Kind })
	return out
}

// Claim decides the start of the job of s by owner under a lease of
// leaseTTL at now (Store.JobClaim picks the jobs, Claimable).
func Claim(s Snapshot, owner string, leaseTTL time.Duration, now time.Time) (*Change, error) {
	return Transition(s, &store.JobTransitionParams{
		ID: s.Job.ID, To: relaytype.StateRunning, Owner: owner, LeaseTTL: leaseTTL, Now: now,
	})
}

// Heartbeat returns the job of Store.JobHeartbeat p as it is after its
// lease is extended, or an error wrapping relaytype.ErrLeaseLost when j is
// not active, its lease belongs to someone else, or p.Attempt is not zero
// and not j's attempt. A heartbeat changes no
// state: StateVersion stays, no event is appended; a driver writes
// LeaseExpiresAt and HeartbeatAt.
func Heartbeat(j *relaytype.Job, p *store.JobHeartbeatParams) (*relaytype.Job, error) {
	if !j.State.Active() || j.LeaseOwner != p.Owner {
		return nil, fmt.Errorf("heartbeat job %s (%s, held by %q): %w", j.ID, j.State, j.LeaseOwner, relaytype.ErrLeaseLost)
	}
	if err := checkLease(j, "", p.Attempt); err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	n := cloneJob(j)
	n.LeaseExpiresAt, n.HeartbeatAt = timePtr(p.Now.Add(p.LeaseTTL)), timePtr(p.Now)
	return n, nil
}

// chain applies Transition to s for each of steps in turn, each on the
// job and pending asks the previous one left.
func chain(s Snapshot, steps []*store.JobTransitionParams) ([]*Change, error) {
	var out []*Change
	for _, p := range steps {
		c, err := Transition(s, p)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
		s = s.after(c)
	}
	return out, nil
}

// after returns s as it is after change c.
func (s Snapshot) after(c *Change) Snapshot {
	closed := map[string]bool{}
	for _, w := range c.Closes {
		closed[w.Answer.AskID] = true
	}
	var pending []*StoredAsk
	for _, a := range s.Pending {
		if !closed[a.Record.AskID] {
			pending = append(pending, a)
		}
	}
	return Snapshot{Job: c.Job, Pending: pending, Artifacts: mergeArtifacts(s.Artifacts, c.Artifacts)}
}

// Release decides Store.JobRelease p of the job of s: an active job goes
// to STALE, a WAITING_ON_ANSWER one through RUNNING (two changes, in
// order), closing the attempt's PENDING asks. A job that is not active is
// refused with a *relaytype.TransitionError, a non-empty Owner that does
// not hold the lease or a non-zero Attempt that is not the job's with an
// error wrapping relaytype.ErrLeaseLost.
func Release(s Snapshot, p *store.JobReleaseParams) ([]*Change, error) {
	j := s.Job
	if !j.State.Active() {
		return nil, &relaytype.TransitionError{JobID: j.ID, From: j.State, To: relaytype.StateStale}
	}
	if err := checkLease(j, p.Owner, p.Attempt); err != nil {
		return nil, err
	}
	var steps []*store.JobTransitionParams
	// WAITING_ON_ANSWER has no edge to STALE: the job is running again
	// for an instant, in the release's transaction only.
	if j.State == relaytype.StateWaitingOnAnswer {
		steps = append(steps, &store.JobTransitionParams{
			ID: j.ID, To: relaytype.StateRunning, Owner: p.Owner, Now: p.Now, Summary: p.Summary,
		})
	}
	steps = append(steps, &store.JobTransitionParams{
		ID: j.ID, To: relaytype.StateStale, Owner: p.Owner, Now: p.Now, Summary: p.Summary,
	})
	return chain(s, steps)
}

// Rescue decides Store.JobRescue at now for the job of s (Rescuable): it
// walks legal edges only, WAITING_ON_ANSWER → RUNNING → STALE (closing
// the attempt's PENDING asks), then QUEUED for another attempt, or FAILED
// with INTERNAL_ERROR once the job has used MaxAttempts. A STALE job
// starts at STALE.
func Rescue(s Snapshot, now time.Time) ([]*Change, error) {
	j := s.Job
	lapsed := fmt.Sprintf("lease of %q lapsed on attempt %d of %d", j.LeaseOwner, j.Attempt, j.MaxAttempts)
	var steps []*store.JobTransitionParams
	state := j.State
	if state == relaytype.StateWaitingOnAnswer {
		steps = append(steps, &store.JobTransitionParams{ID: j.ID, To: relaytype.StateRunning, Now: now, Summary: lapsed})
		state = relaytype.StateRunning
	}
	if state == relaytype.StateRunning {
		steps = append(steps, &store.JobTransitionParams{ID: j.ID, To: relaytype.StateStale, Now: now, Summary: lapsed})
	}
	if j.Attempt >= j.MaxAttempts {
		steps = append(steps, &store.JobTransitionParams{ID: j.ID, To: relaytype.StateFailed, Now: now,
			Reason:  relaytype.ReasonInternalError,
			Summary: fmt.Sprintf("worker lost the job on each of %d attempts (%s)", j.MaxAttempts, lapsed)})
	} else {
		steps = append(steps, &store.JobTransitionParams{ID: j.ID, To: relaytype.StateQueued, Now: now,
			Summary: "retrying after " + lapsed})
	}
	return chain(s, steps)
}

// Expire decides Store.JobExpire at now for the job of s (Expired): it
// goes to EXPIRED with a summary naming its ttl.
func Expire(s Snapshot, now time.Time) (*Change, error) {
	j := s.Job
	return Transition(s, &store.JobTransitionParams{
		ID: j.ID, To: relaytype.StateExpired, Now: now,
		Summary: fmt.Sprintf("not started within its ttl of %ds", j.Spec.Execution.TTLS),
	})
}

// ExpireAll is Expire in the shape of Rescue, for a driver's sweep loop.
func ExpireAll(s Snapshot, now time.Time) ([]*Change, error) {
	c, err := Expire(s, now)
	if err != nil {
		return nil, err
	}
	return []*Change{c}, nil
}
