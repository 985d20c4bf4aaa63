package relaytype

import "fmt"

// JobState is the lifecycle state of a job.
type JobState string

// Job states. See transitions for the allowed moves between them.
const (
	StateQueued          JobState = "QUEUED"
	StateRunning         JobState = "RUNNING"
	StateWaitingOnAnswer JobState = "WAITING_ON_ANSWER"
	StateSucceeded       JobState = "SUCCEEDED"
	StateFailed          JobState = "FAILED"
	StateCanceled        JobState = "CANCELED"
	StateExpired         JobState = "EXPIRED"
	StateStale           JobState = "STALE"
)

// AllStates lists every job state in lifecycle order.
var AllStates = []JobState{
	StateQueued, StateRunning, StateWaitingOnAnswer, StateSucceeded,
	StateFailed, StateCanceled, StateExpired, StateStale,
}

// transitions is the allowed-transition table of the job state machine.
var transitions = map[JobState][]JobState{
	StateQueued:          {StateRunning, StateCanceled, StateExpired},
	StateRunning:         {StateSucceeded, StateFailed, StateCanceled, StateExpired, StateStale, StateWaitingOnAnswer},
	StateWaitingOnAnswer: {StateRunning, StateFailed, StateCanceled, StateExpired},
	StateStale:           {StateQueued, StateRunning, StateFailed, StateExpired},
}

// Valid reports whether s is one of the defined states.
func (s JobState) Valid() bool {
	for _, v := range AllStates {
		if v == s {
			return true
		}
	}
	return false
}

// Terminal reports whether no transition leaves s.
func (s JobState) Terminal() bool {
	switch s {
	case StateSucceeded, StateFailed, StateCanceled, StateExpired:
		return true
	}
	return false
}

// Active reports whether a worker holds a lease on a job in state s.
func (s JobState) Active() bool {
	return s == StateRunning || s == StateWaitingOnAnswer
}

// CanTransition reports whether the state machine allows from → to.
func CanTransition(from, to JobState) bool {
	for _, t := range transitions[from] {
		if t == to {
			return true
		}
	}
	return false
}

// TransitionError reports a transition the state machine does not allow.
type TransitionError struct {
	JobID string
	From  JobState
	To    JobState
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("illegal transition of job %s: %s → %s", e.JobID, e.From, e.To)
}

// Code returns CodeIllegalTransition.
func (e *TransitionError) Code() ErrorCode { return CodeIllegalTransition }

// Is makes errors.Is(err, ErrIllegalTransition) true.
func (e *TransitionError) Is(target error) bool { return target == ErrIllegalTransition }

// Priority orders queued jobs: P0 runs before P1 before P2.
type Priority string

// Priorities.
const (
	PriorityP0 Priority = "P0"
	PriorityP1 Priority = "P1"
	PriorityP2 Priority = "P2"
)

// Rank returns 0 for P0, 1 for P1 and 2 for P2 (lower runs first), and -1
// for an unknown priority.
func (p Priority) Rank() int {
	switch p {
	case PriorityP0:
		return 0
	case PriorityP1:
		return 1
	case PriorityP2:
		return 2
	}
	return -1
}

// PriorityFromRank is the inverse of Rank.
func PriorityFromRank(r int) Priority {
	switch r {
	case 0:
		return PriorityP0
	case 2:
		return PriorityP2
	}
	return PriorityP1
}

// FailReason says why a job ended FAILED.
type FailReason string

// Fail reasons: why a job ended FAILED.
const (
	ReasonBadArtifacts  FailReason = "BAD_ARTIFACTS"
	ReasonConflict      FailReason = "CONFLICT"
	ReasonPolicy        FailReason = "POLICY"
	ReasonExecutorError FailReason = "EXECUTOR_ERROR"
	ReasonTimeout       FailReason = "TIMEOUT"
	ReasonInternalError FailReason = "INTERNAL_ERROR"
	// ReasonOutputContract: a part the spec's outputContract requires
	// (DIFF, TEST_PLAN, NOTES) is missing; the summary names it.
	ReasonOutputContract FailReason = "OUTPUT_CONTRACT"
)
