// Package jobstate holds the job and ask state rules every store backend
// applies, in the manner of River's driver interface plus shared rules: a
// driver runs the queries and the transaction, loads the rows a rule
// needs, calls the rule, and writes what it returns. The functions here
// are pure: no SQL, no I/O, no clock. They take the current rows and the
// request's params and return the decision: the job as it is afterwards,
// the events to append, the artifacts to store, the PENDING asks to close,
// the outbox messages to enqueue, or an error that is (or wraps) one of
// the store's sentinel errors (relaytype.ErrLeaseLost,
// relaytype.ErrIllegalTransition, *relaytype.TransitionError,
// *store.AttemptOverError, ...).
//
// Times: a rule uses the Now of its params as the time of every change it
// makes. A driver passes Now rounded to the precision and location it
// stores times in (SQLite: UTC milliseconds), so that the job a rule
// returns equals the row the driver reads back after writing it.
//
// Writing a Change: the driver updates the job row to Change.Job under the
// optimistic check that its state_version is still Change.FromVersion
// (one row updated, or the change fails with
// relaytype.ErrIllegalTransition), upserts Change.Artifacts (and, when it
// keeps artifact bytes, Change.Contents), appends
// Change.Events in order, writes each of Change.Closes (see AnswerWrite)
// and inserts Change.Outbox (a message whose ID is stored already is left
// as it is), all in the transaction of the request.
package jobstate

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Event is an event a rule appends to a job's log. Payload is encoded
// with encoding/json (Encode); a nil Payload stores no payload.
type Event struct {
	JobID   string
	Type    string
	Payload any
}

// Encode returns the event's payload as JSON, or nil when it has none.
func (e Event) Encode() (json.RawMessage, error) {
	switch p := e.Payload.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		return p, nil
	}
	b, err := json.Marshal(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("encode %s event: %w", e.Type, err)
	}
	return b, nil
}

// StoredAsk is an ask as a store keeps it: its record and what the store
// keeps beyond it.
type StoredAsk struct {
	Record *relaytype.AskRecord
	// PayloadHash identifies the posted payload for idempotency.
	PayloadHash string
	// Attempt is the attempt of the job that posted the ask.
	Attempt int
}

// StoredAnswer is an answer as a store keeps it.
type StoredAnswer struct {
	Record *relaytype.AnswerRecord
	// PayloadHash identifies the posted payload for idempotency (empty
	// for the answers that close the asks of an attempt that ended).
	PayloadHash string
}

// Snapshot is what the rules need to know of one job.
type Snapshot struct {
	// Job is the job row as it is now.
	Job *relaytype.Job
	// Pending are the job's PENDING asks (of every attempt), oldest
	// first.
	Pending []*StoredAsk
	// Artifacts are the job's stored artifacts. A driver may leave them
	// out when the job has no webhook to notify (Notifies is false): they
	// are read only for the notifications of a terminal transition.
	Artifacts []*relaytype.Artifact
}

// Notifies reports whether job's end enqueues outbox messages, that is,
// whether a driver must load its artifacts into a Snapshot.
func Notifies(job *relaytype.Job) bool {
	return job.Spec.Notify != nil && job.Spec.Notify.Webhook != ""
}

// AnswerWrite is one answer to store: the driver inserts the answer row
// with PayloadHash, adds Usage (when not nil) to the job's token and cost
// sums, marks the ask with the answer's status, answered at Now, and
// appends Event.
type AnswerWrite struct {
	Answer      *relaytype.AnswerRecord
	PayloadHash string
	// Usage is what the answer adds to its job's sums; nil adds nothing.
	Usage *relaytype.Usage
	Event Event
}

// Change is one state transition of a job (see the package doc for how a
// driver writes it).
type Change struct {
	// From is the state before; FromVersion the state_version the job
	// row must still have.
	From        relaytype.JobState
	FromVersion int64
	// Job is the job as it is afterwards (state_version FromVersion+1).
	Job *relaytype.Job
	// Claim is true when the change starts an attempt (QUEUED or STALE
	// → RUNNING).
	Claim bool
	// Artifacts are the artifacts to store with the change (an artifact
	// of a kind already stored replaces it), with JobID and CreatedAt
	// set.
	Artifacts []*relaytype.Artifact
	// Contents are the bytes of Artifacts by kind, from
	// JobTransitionParams.Contents, for a driver that keeps them
	// (store.ArtifactContents); an artifact with no entry has no stored
	// bytes (a driver drops those of the artifact it replaces).
	Contents map[relaytype.ArtifactKind][]byte
	// Events are the change's events in order: one "artifact" event per
	// artifact, then the "transition" event.
	Events []Event
	// Closes answer the PENDING asks the change ends, oldest first.
	Closes []*AnswerWrite
	// Outbox are the messages a terminal change enqueues.
	Outbox []*store.OutboxMessage
}

// cloneJob returns a copy of j that shares no pointer with it.
func cloneJob(j *relaytype.Job) *relaytype.Job {
	n := *j
	n.StartedAt = cloneTime(j.StartedAt)
	n.FinishedAt = cloneTime(j.FinishedAt)
	n.LeaseExpiresAt = cloneTime(j.LeaseExpiresAt)
	n.HeartbeatAt = cloneTime(j.HeartbeatAt)
	return &n
}

func cloneTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

func timePtr(t time.Time) *time.Time { return &t }
