// Package store defines the persistence seam of the relay: one method per
// query, each taking a *Params struct and returning relaytype values, in the
// manner of River's driver interface. Implementations live in the sqlite
// and postgres subpackages; storetest holds the conformance suite every
// implementation runs.
//
// Every method that changes a job's state validates the transition with
// relaytype.CanTransition, increments stateVersion and appends the audit
// event in one transaction, so the store is the single source of truth of
// the job state machine. The rules themselves live in jobstate, as pure
// functions every implementation calls; an implementation only loads the
// rows they need and writes what they decide.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Store is the persistence interface of the relay.
type Store interface {
	// JobInsert stores a new QUEUED job and its "submitted" event, unless a
	// job with the same idempotency key is not terminal or SUCCEEDED within
	// IdempotencyWindow: then that job is returned with created=false.
	// Concurrent inserts with one key yield one job.
	JobInsert(ctx context.Context, p *JobInsertParams) (job *relaytype.Job, created bool, err error)
	// JobGet returns one job or an error wrapping relaytype.ErrJobNotFound.
	JobGet(ctx context.Context, p *JobGetParams) (*relaytype.Job, error)
	// JobList returns a page of jobs, newest first, and the total count.
	JobList(ctx context.Context, p *JobListParams) ([]*relaytype.Job, int, error)
	// JobClaim moves up to Limit QUEUED jobs that are unexpired (ExpiresAt
	// after Now) and have attempts left to RUNNING under a lease held by
	// Owner, highest priority first then oldest first, incrementing each
	// job's attempt. Only jobs of Projects and Executors (each: any when
	// nil, none when empty) that are bound to no host or to Host are
	// claimed. Like every start of an attempt, it closes any ask of an
	// earlier attempt still PENDING (see Attempts and asks).
	JobClaim(ctx context.Context, p *JobClaimParams) ([]*relaytype.Job, error)
	// JobHeartbeat extends the lease of an active job held by Owner. It
	// returns an error wrapping relaytype.ErrLeaseLost when the job is no
	// longer active, the lease belongs to someone else, or a non-zero
	// Attempt is not the job's (see Fenced writes).
	JobHeartbeat(ctx context.Context, p *JobHeartbeatParams) (*relaytype.Job, error)
	// JobTransition moves one job to another state, storing Artifacts in the
	// same transaction. Illegal transitions return a
	// *relaytype.TransitionError; a non-empty Owner that does not hold the
	// lease of an active job returns an error wrapping
	// relaytype.ErrLeaseLost, as does a non-zero Attempt that is not the
	// job's (see Fenced writes). A start (QUEUED or STALE → RUNNING) is a
	// claim: Owner and LeaseTTL are required, Owner becomes the lease
	// holder, the attempt is counted (a non-zero Attempt must name the
	// attempt it starts), and a job that has used MaxAttempts is refused
	// with ErrIllegalTransition. A move to QUEUED clears the lease
	// and gives the job a fresh ttl in the queue. A start, a move to STALE
	// and a move to a terminal state close the job's PENDING asks in the
	// same transaction (see Attempts and asks). A move to a terminal
	// state inserts the job's notifications into the outbox in the same
	// transaction (see The outbox).
	JobTransition(ctx context.Context, p *JobTransitionParams) (*relaytype.Job, error)
	// JobRelease hands an active job its worker abandons (a shutdown) back
	// for a retry at once: the job goes to STALE, a WAITING_ON_ANSWER job
	// passing through RUNNING (two transition events), and the attempt's
	// PENDING asks are closed, all in one transaction. A non-empty Owner
	// that does not hold the lease, or a non-zero Attempt that is not the
	// job's, returns an error wrapping relaytype.ErrLeaseLost; a job that
	// is not active returns a *relaytype.TransitionError. Either changes
	// nothing.
	JobRelease(ctx context.Context, p *JobReleaseParams) (*relaytype.Job, error)
	// JobRescue handles jobs whose lease lapsed at or before Now, and jobs
	// left in STALE: each becomes STALE (an active WAITING_ON_ANSWER job
	// passes through RUNNING, and the attempt's PENDING asks are closed)
	// and is then requeued for another attempt, or FAILED with
	// INTERNAL_ERROR once it has used MaxAttempts. It returns the jobs it
	// changed in their new state.
	JobRescue(ctx context.Context, p *JobRescueParams) ([]*relaytype.Job, error)
	// JobExpire moves QUEUED jobs whose ExpiresAt is at or before Now to
	// EXPIRED.
	JobExpire(ctx context.Context, p *JobExpireParams) ([]*relaytype.Job, error)
	// JobNextWake returns the earliest time at which JobRescue or JobExpire
	// has work (a lease or queue ttl ending, or a STALE job), which may be
	// in the past, or the zero time if there is none.
	JobNextWake(ctx context.Context) (time.Time, error)

	// EventAppend appends a non-transition event (log line, note) to a job.
	// With Owner or Attempt set it is a worker's fenced write (see Fenced
	// writes): a job that is not active, not leased to Owner or not at
	// Attempt fails with an error wrapping relaytype.ErrLeaseLost.
	EventAppend(ctx context.Context, p *EventAppendParams) (*relaytype.Event, error)
	// EventList returns a job's events with ID > AfterID in ID order.
	EventList(ctx context.Context, p *EventListParams) ([]*relaytype.Event, error)

	// ArtifactList returns a job's artifacts ordered by kind.
	ArtifactList(ctx context.Context, p *ArtifactListParams) ([]*relaytype.Artifact, error)
	// ArtifactGet returns one artifact or an error wrapping
	// relaytype.ErrArtifactNotFound.
	ArtifactGet(ctx context.Context, p *ArtifactGetParams) (*relaytype.Artifact, error)

	// AskInsert stores a PENDING ask of an active job, bound to the job's
	// current attempt, appends its "ask" event and moves a RUNNING job to
	// WAITING_ON_ANSWER, in one transaction. It returns the job as it is
	// afterwards. A repeated ask id with the same PayloadHash returns the
	// stored ask with created=false; with another payload it fails with
	// relaytype.ErrAskConflict; an ask id stored by an earlier attempt
	// fails with an *AttemptOverError (ErrAttemptOver, ErrAskConflict).
	// A non-zero Attempt that is not the job's (an executor of an attempt
	// that is over) fails with an error wrapping ErrAttemptOver and
	// relaytype.ErrLeaseLost, storing nothing. A job that is not RUNNING
	// or WAITING_ON_ANSWER fails with relaytype.ErrJobNotActive.
	AskInsert(ctx context.Context, p *AskInsertParams) (ask *relaytype.AskRecord, created bool, job *relaytype.Job, err error)
	// AskGet returns one ask or an error wrapping relaytype.ErrAskNotFound.
	AskGet(ctx context.Context, p *AskGetParams) (*relaytype.AskRecord, error)
	// AskList returns asks oldest first, filtered by job and status.
	AskList(ctx context.Context, p *AskListParams) ([]*relaytype.AskRecord, error)
	// AskDue returns PENDING asks whose deadline is at or before Now.
	// They all belong to the current attempt of an active job: the asks
	// of an attempt that is over are closed when it ends.
	AskDue(ctx context.Context, p *AskDueParams) ([]*relaytype.AskRecord, error)
	// AskNextDeadline returns the earliest deadline of a PENDING ask, or
	// the zero time if there is none.
	AskNextDeadline(ctx context.Context) (time.Time, error)
	// AskDefer hands a PENDING ask to another answerer: it sets the ask's
	// route and deadline (a deadline before the stored one is ignored)
	// and appends its "ask_deferred" event, in one transaction, and
	// returns the ask and its job as they are afterwards. An ask that is
	// no longer PENDING fails with an error wrapping
	// relaytype.ErrAnswerConflict and changes nothing.
	AskDefer(ctx context.Context, p *AskDeferParams) (*relaytype.AskRecord, *relaytype.Job, error)
	// AnswerInsert stores the answer to a PENDING ask of the current
	// attempt of an active job, marks the ask with the answer's status
	// and appends the "answer" event; then a non-ANSWERED status fails
	// the job (REJECTED → POLICY, TIMEOUT → TIMEOUT, ERROR →
	// EXECUTOR_ERROR) and an ANSWERED one returns a WAITING_ON_ANSWER job
	// with no other pending ask of its current attempt to RUNNING, all in
	// one transaction. A second answer with the same PayloadHash returns
	// the stored one with created=false. Any other answer to an ask whose
	// attempt is over (the job ended, went STALE or QUEUED, or started
	// another attempt) fails with an *AttemptOverError, which wraps
	// ErrAttemptOver and relaytype.ErrAnswerConflict and changes no job;
	// another answer to an answered ask of the current attempt fails with
	// relaytype.ErrAnswerConflict. The answer's token usage is added to
	// the job's in the same transaction.
	AnswerInsert(ctx context.Context, p *AnswerInsertParams) (answer *relaytype.AnswerRecord, created bool, job *relaytype.Job, err error)
	// AnswerGet returns the answer to an ask, nil if it has none yet, or
	// an error wrapping relaytype.ErrAskNotFound.
	AnswerGet(ctx context.Context, p *AnswerGetParams) (*relaytype.AnswerRecord, error)

	// DecisionGet returns the cached answer under Key if it has not
	// expired at Now (counting a hit), or nil.
	DecisionGet(ctx context.Context, p *DecisionGetParams) (*relaytype.Answer, error)
	// DecisionPut caches an answer under Key until ExpiresAt, replacing an
	// older entry.
	DecisionPut(ctx context.Context, p *DecisionPutParams) error

	// OutboxEnqueue stores a PENDING message due at Now (see The
	// outbox). A message whose ID is already stored is left as it is and
	// returned with created=false. Messages about a job's end need no
	// call: the terminal transition inserts them (TerminalMessages).
	OutboxEnqueue(ctx context.Context, p *OutboxEnqueueParams) (msg *OutboxMessage, created bool, err error)
	// OutboxClaim leases up to Limit PENDING messages that are due
	// (NextAttemptAt at or before Now) and not leased (or whose lease
	// lapsed at or before Now) to Owner until Now+LeaseTTL, oldest due
	// first, counting an attempt on each.
	OutboxClaim(ctx context.Context, p *OutboxClaimParams) ([]*OutboxMessage, error)
	// OutboxAck marks a message Owner holds DELIVERED. A message that is
	// not PENDING or is leased to someone else (or no one) fails with
	// ErrOutboxLeaseLost and changes nothing; an unknown one with
	// ErrOutboxNotFound.
	OutboxAck(ctx context.Context, p *OutboxAckParams) error
	// OutboxRetry releases a message Owner holds after a failed attempt:
	// it stays PENDING, due at NextAttemptAt, with Error recorded. Errors
	// as OutboxAck.
	OutboxRetry(ctx context.Context, p *OutboxRetryParams) error
	// OutboxGiveUp marks a message Owner holds EXPIRED with Error
	// recorded; it is never claimed again. Errors as OutboxAck.
	OutboxGiveUp(ctx context.Context, p *OutboxGiveUpParams) error
	// OutboxList returns messages oldest first, filtered by job and
	// status.
	OutboxList(ctx context.Context, p *OutboxListParams) ([]*OutboxMessage, error)
	// OutboxNextDue returns the earliest time at which a PENDING message
	// becomes claimable (its due time, or the end of its lease), which may
	// be in the past, or the zero time if there is none.
	OutboxNextDue(ctx context.Context) (time.Time, error)

	// Close releases the store's resources.
	Close() error
}

// Attempts and asks
//
// Every ask belongs to the attempt of its job that posted it (the job's
// Attempt when AskInsert stored it). An attempt ends when its job goes to
// STALE (release, lapsed lease, dead relay), to a terminal state, or,
// defensively, when the job starts a new attempt; the transaction that
// ends it answers each of the attempt's PENDING asks with ERROR, an error
// text naming the attempt and why it ended, and the ask's "answer" event.
// So no ask of an attempt that is over is ever PENDING, a
// WAITING_ON_ANSWER job always has a PENDING ask of its current attempt
// when it got there through AskInsert, and an ask's deadline can only
// fail the attempt that asked it.

// Fenced writes
//
// Several relays may share a store. A relay whose lease lapsed (it
// stalled, or lost the network) may still hold a worker that believes it
// runs the job while another relay runs its next attempt. Every write a
// worker makes therefore names its lease (Owner) and attempt (Attempt):
// heartbeat, transition, release, log events and, through the job token,
// asks. The store checks both under the job's lock and refuses a write
// whose lease or attempt is no longer the job's with an error wrapping
// relaytype.ErrLeaseLost, changing nothing; so a relay that lost its
// lease can never overwrite the new holder's work.

// ErrAttemptOver is wrapped by errors about an ask whose attempt of its
// job is over.
var ErrAttemptOver = errors.New("the job attempt that posted the ask is over")

// AttemptOverError refuses an answer to, or a repeat of, an ask whose
// attempt is over. Its code is relaytype.CodeConflict; it matches
// ErrAttemptOver and relaytype.ErrAnswerConflict (AnswerInsert) or
// relaytype.ErrAskConflict (AskInsert, Repost).
type AttemptOverError struct {
	AskID string
	JobID string
	// Attempt is the attempt that posted the ask.
	Attempt int
	// JobAttempt and JobState are the job's now.
	JobAttempt int
	JobState   relaytype.JobState
	// Repost is true when a later attempt posted the ask id again.
	Repost bool
}

func (e *AttemptOverError) Error() string {
	now := "the job is " + string(e.JobState)
	if e.JobAttempt != e.Attempt {
		now += fmt.Sprintf(" on attempt %d", e.JobAttempt)
	}
	what := "its answer is refused"
	if e.Repost {
		what = "a new attempt must post a new ask id"
	}
	return fmt.Sprintf("ask %s belongs to attempt %d of job %s, which is over (%s): %s",
		e.AskID, e.Attempt, e.JobID, now, what)
}

// Code returns relaytype.CodeConflict.
func (e *AttemptOverError) Code() relaytype.ErrorCode { return relaytype.CodeConflict }

// Is makes errors.Is match ErrAttemptOver, and relaytype.ErrAskConflict
// for a repost or relaytype.ErrAnswerConflict for an answer.
func (e *AttemptOverError) Is(target error) bool {
	switch target {
	case ErrAttemptOver:
		return true
	case relaytype.ErrAskConflict:
		return e.Repost
	case relaytype.ErrAnswerConflict:
		return !e.Repost
	}
	return false
}

// JobInsertParams are the inputs of Store.JobInsert.
type JobInsertParams struct {
	ID                string
	Spec              *relaytype.JobSpec
	Executor          string
	BaselineCommit    string
	Now               time.Time
	IdempotencyWindow time.Duration
	// ParentJobID links a follow-up to the job it continues.
	ParentJobID string
	// Project is the project the job belongs to; idempotency keys are
	// scoped to it.
	Project string
	// Host, when set, is the only host whose relays may claim the job (a
	// local repository exists only there). Stored with the job.
	Host string
}

// JobGetParams are the inputs of Store.JobGet.
type JobGetParams struct {
	ID string
}

// JobListParams are the inputs of Store.JobList.
type JobListParams struct {
	// State filters by state when non-empty.
	State relaytype.JobState
	// Project, when not nil, keeps only the jobs of that project.
	Project *string
	Limit   int
	Offset  int
}

// JobClaimParams are the inputs of Store.JobClaim.
type JobClaimParams struct {
	// Projects, when not nil, claims only jobs of these projects (none
	// when empty).
	Projects []string
	// Host is the claiming relay's host: jobs bound to another host are
	// left alone.
	Host string
	// Executors, when not nil, claims only jobs whose executor is one of
	// these (none when empty).
	Executors []string
	Owner     string
	Now       time.Time
	LeaseTTL  time.Duration
	Limit     int
}

// JobHeartbeatParams are the inputs of Store.JobHeartbeat.
type JobHeartbeatParams struct {
	ID    string
	Owner string
	// Attempt, when not zero, must be the job's attempt (the fence of
	// Owner's lease: see Fenced writes).
	Attempt  int
	Now      time.Time
	LeaseTTL time.Duration
}

// JobTransitionParams are the inputs of Store.JobTransition.
type JobTransitionParams struct {
	ID string
	To relaytype.JobState
	// Owner, when set, must hold the job's lease.
	Owner string
	// Attempt, when not zero, must be the job's attempt (see Fenced
	// writes).
	Attempt int
	// LeaseTTL, when moving to an active state, sets the lease expiry.
	LeaseTTL  time.Duration
	Now       time.Time
	Reason    relaytype.FailReason
	Summary   string
	Artifacts []*relaytype.Artifact
	// Usage, when set, is added to the job's token and cost sums.
	Usage *relaytype.Usage
	// SessionID, when set, records the executor's agent session.
	SessionID string
	// Contents are the bytes of Artifacts, by kind, for a store that
	// keeps them (ArtifactContents); others ignore them.
	Contents map[relaytype.ArtifactKind][]byte
}

// JobReleaseParams are the inputs of Store.JobRelease.
type JobReleaseParams struct {
	ID string
	// Owner, when set, must hold the job's lease.
	Owner string
	// Attempt, when not zero, must be the job's attempt (see Fenced
	// writes).
	Attempt int
	Now     time.Time
	// Summary says why the job is released; it is the transitions'
	// summary and part of the closed asks' error text.
	Summary string
}

// JobRescueParams are the inputs of Store.JobRescue.
type JobRescueParams struct {
	Now time.Time
}

// JobExpireParams are the inputs of Store.JobExpire.
type JobExpireParams struct {
	Now time.Time
}

// EventAppendParams are the inputs of Store.EventAppend.
type EventAppendParams struct {
	JobID   string
	Type    string
	Payload json.RawMessage
	Now     time.Time
	// Owner and Attempt, when set, fence a worker's write (see Fenced
	// writes): the job must be active, leased to Owner, at Attempt.
	Owner   string
	Attempt int
}

// EventListParams are the inputs of Store.EventList.
type EventListParams struct {
	JobID   string
	AfterID int64
	// Limit caps the number of events; zero means no cap.
	Limit int
}

// ArtifactListParams are the inputs of Store.ArtifactList.
type ArtifactListParams struct {
	JobID string
}

// ArtifactGetParams are the inputs of Store.ArtifactGet.
type ArtifactGetParams struct {
	JobID string
	Kind  relaytype.ArtifactKind
}

// AskInsertParams are the inputs of Store.AskInsert.
type AskInsertParams struct {
	Ask *relaytype.AskRecord
	// Attempt, when not zero, must be the job's attempt: an executor of
	// an attempt that is over cannot ask in the name of the next one
	// (the error wraps ErrAttemptOver and relaytype.ErrLeaseLost).
	Attempt int
	// PayloadHash identifies the posted payload for idempotency.
	PayloadHash string
	Now         time.Time
}

// AskGetParams are the inputs of Store.AskGet.
type AskGetParams struct {
	AskID string
}

// AskListParams are the inputs of Store.AskList.
type AskListParams struct {
	// JobID filters by job when non-empty.
	JobID string
	// Status filters by status when non-empty.
	Status relaytype.AnswerStatus
	// Limit caps the number of asks; zero means 1000.
	Limit int
}

// AskDueParams are the inputs of Store.AskDue.
type AskDueParams struct {
	Now   time.Time
	Limit int
}

// AskDeferParams are the inputs of Store.AskDefer.
type AskDeferParams struct {
	AskID string
	// Route is the ask's route from now on.
	Route string
	// DeadlineAt is the ask's deadline from now on, unless the stored one
	// is later.
	DeadlineAt time.Time
	// Reason says why the ask was deferred; it is part of the event.
	Reason string
	Now    time.Time
}

// AnswerInsertParams are the inputs of Store.AnswerInsert.
type AnswerInsertParams struct {
	Answer *relaytype.AnswerRecord
	// PayloadHash identifies the posted payload for idempotency.
	PayloadHash string
	Now         time.Time
}

// AnswerGetParams are the inputs of Store.AnswerGet.
type AnswerGetParams struct {
	AskID string
}

// DecisionGetParams are the inputs of Store.DecisionGet.
type DecisionGetParams struct {
	Key string
	Now time.Time
}

// DecisionPutParams are the inputs of Store.DecisionPut.
type DecisionPutParams struct {
	Key       string
	Answer    *relaytype.Answer
	Now       time.Time
	ExpiresAt time.Time
}
