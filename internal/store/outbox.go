package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// The outbox
//
// The outbox holds messages to deliver outside the relay (webhooks today;
// other kinds such as chat notifications later). A message is generic: a
// kind that says how to deliver it, a target (a URL for webhooks), and an
// opaque JSON payload. Messages about a job's end are inserted by the store
// in the same transaction as the job's terminal transition, driven by the
// job's stored spec (TerminalMessages), so a terminal state is never
// committed without its notifications and never notified twice.
//
// Delivery is at least once: a deliverer claims due messages under a lease
// (OutboxClaim), delivers them, and records the outcome with OutboxAck,
// OutboxRetry or OutboxGiveUp, each of which requires the lease. A
// deliverer that dies leaves its claims to lapse; the next one delivers
// them again. Receivers deduplicate by the message ID.

// Outbox message kinds.
const (
	// OutboxKindWebhook is a signed JSON POST to the target URL.
	OutboxKindWebhook = "webhook"
)

// OutboxStatus is the delivery state of an outbox message.
type OutboxStatus string

// Outbox message states.
const (
	// OutboxPending messages wait for (another) delivery attempt.
	OutboxPending OutboxStatus = "PENDING"
	// OutboxDelivered messages were acknowledged by their target.
	OutboxDelivered OutboxStatus = "DELIVERED"
	// OutboxExpired messages were given up on (too old, or undeliverable).
	OutboxExpired OutboxStatus = "EXPIRED"
)

// ErrOutboxLeaseLost is wrapped by errors about an outbox message the
// caller does not (or no longer) hold the lease of, or that is no longer
// PENDING.
var ErrOutboxLeaseLost = errors.New("outbox message is not leased to this deliverer")

// ErrOutboxNotFound is wrapped by errors about an unknown outbox message.
var ErrOutboxNotFound = errors.New("outbox message not found")

// OutboxMessage is one stored outbox message.
type OutboxMessage struct {
	// ID identifies the message for its receiver (a webhook's
	// webhook-id); it is stable across delivery attempts.
	ID string `json:"id"`
	// JobID is the job the message is about, if any.
	JobID string `json:"jobId,omitempty"`
	// Project is the project of the job (whose settings, such as a
	// webhook secret, apply), if any.
	Project string `json:"project,omitempty"`
	// Kind says how to deliver it (OutboxKindWebhook).
	Kind string `json:"kind"`
	// Target is where to deliver it (a URL for webhooks).
	Target string `json:"target"`
	// Payload is the message body.
	Payload json.RawMessage `json:"payload"`
	// Status is the delivery state.
	Status OutboxStatus `json:"status"`
	// Attempts counts the claims made for delivery.
	Attempts int `json:"attempts"`
	// CreatedAt is when the message was enqueued.
	CreatedAt time.Time `json:"createdAt"`
	// NextAttemptAt is when a PENDING message is due.
	NextAttemptAt time.Time `json:"nextAttemptAt"`
	// LeaseOwner and LeaseExpiresAt describe the current claim, if any.
	LeaseOwner     string     `json:"leaseOwner,omitempty"`
	LeaseExpiresAt *time.Time `json:"leaseExpiresAt,omitempty"`
	// LastError says why the last attempt failed.
	LastError string `json:"lastError,omitempty"`
	// DoneAt is when the message was delivered or given up on.
	DoneAt *time.Time `json:"doneAt,omitempty"`
}

// OutboxEnqueueParams are the inputs of Store.OutboxEnqueue.
type OutboxEnqueueParams struct {
	Message *OutboxMessage
	Now     time.Time
}

// OutboxClaimParams are the inputs of Store.OutboxClaim.
type OutboxClaimParams struct {
	// Projects, when not nil, claims only messages of these projects
	// (none when empty).
	Projects []string
	// Kinds, when not empty, claims only messages of these kinds.
	Kinds    []string
	Owner    string
	Now      time.Time
	LeaseTTL time.Duration
	Limit    int
}

// OutboxAckParams are the inputs of Store.OutboxAck.
type OutboxAckParams struct {
	ID    string
	Owner string
	Now   time.Time
}

// OutboxRetryParams are the inputs of Store.OutboxRetry.
type OutboxRetryParams struct {
	ID    string
	Owner string
	Now   time.Time
	// NextAttemptAt is when the message is due again.
	NextAttemptAt time.Time
	// Error says why the attempt failed.
	Error string
}

// OutboxGiveUpParams are the inputs of Store.OutboxGiveUp.
type OutboxGiveUpParams struct {
	ID    string
	Owner string
	Now   time.Time
	// Error says why the message is given up on.
	Error string
}

// OutboxListParams are the inputs of Store.OutboxList.
type OutboxListParams struct {
	// JobID filters by job when non-empty.
	JobID string
	// Status filters by status when non-empty.
	Status OutboxStatus
	// Limit caps the number of messages; zero means 1000.
	Limit int
}

// OutboxMessageID returns the stable ID of the message of kind to target
// about event of a job: the same inputs always give the same ID, so a
// message can be enqueued at most once.
func OutboxMessageID(jobID, kind, target, event string) string {
	sum := sha256.Sum256([]byte(strings.Join([]string{jobID, kind, target, event}, "\x00")))
	return "msg_" + hex.EncodeToString(sum[:16])
}

// JobNotification is the payload of a message about a job's end, in the
// Standard Webhooks shape: a type, a timestamp and the data.
type JobNotification struct {
	// Type is "job.succeeded", "job.failed", "job.canceled" or
	// "job.expired".
	Type string `json:"type"`
	// Timestamp is when the job ended.
	Timestamp time.Time           `json:"timestamp"`
	Data      JobNotificationData `json:"data"`
}

// JobNotificationData describes the job that ended. It carries no URL:
// neither the repository's (which may hold credentials) nor the artifacts'
// resource URIs, and URLs in the title and summary are masked.
type JobNotificationData struct {
	JobID          string                    `json:"jobId"`
	Project        string                    `json:"project,omitempty"`
	State          relaytype.JobState        `json:"state"`
	ReasonCode     relaytype.FailReason      `json:"reasonCode,omitempty"`
	Summary        string                    `json:"summary,omitempty"`
	Title          string                    `json:"title"`
	IdempotencyKey string                    `json:"idempotencyKey"`
	Executor       string                    `json:"executor"`
	BaselineCommit string                    `json:"baselineCommit"`
	Attempt        int                       `json:"attempt"`
	MaxAttempts    int                       `json:"maxAttempts"`
	CreatedAt      time.Time                 `json:"createdAt"`
	StartedAt      *time.Time                `json:"startedAt,omitempty"`
	FinishedAt     *time.Time                `json:"finishedAt,omitempty"`
	Artifacts      []JobNotificationArtifact `json:"artifacts"`
}

// JobNotificationArtifact is an artifact's kind, digest and size.
type JobNotificationArtifact struct {
	Kind   relaytype.ArtifactKind `json:"kind"`
	Digest string                 `json:"digest"`
	Size   int64                  `json:"size"`
}

var urlRE = regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.-]*://[^\s"'<>]*`)

// MaskURLs replaces every URL in s (scheme://...) with "[url]".
func MaskURLs(s string) string { return urlRE.ReplaceAllString(s, "[url]") }

// TerminalMessages returns the outbox messages a store inserts with the
// terminal transition of job (as it is after the transition, with its
// artifacts): one webhook per notify.webhook of the job's spec. Every
// store implementation calls it, so all of them notify alike.
func TerminalMessages(job *relaytype.Job, artifacts []*relaytype.Artifact) ([]*OutboxMessage, error) {
	n := job.Spec.Notify
	if n == nil || n.Webhook == "" || !job.State.Terminal() {
		return nil, nil
	}
	data := JobNotificationData{
		JobID: job.ID, Project: job.Project, State: job.State, ReasonCode: job.ReasonCode,
		Summary: MaskURLs(job.Summary), Title: MaskURLs(job.Spec.Task.Title), IdempotencyKey: job.IdempotencyKey,
		Executor: job.Executor, BaselineCommit: job.BaselineCommit, Attempt: job.Attempt, MaxAttempts: job.MaxAttempts,
		CreatedAt: job.CreatedAt, StartedAt: job.StartedAt, FinishedAt: job.FinishedAt,
		Artifacts: []JobNotificationArtifact{},
	}
	for _, a := range artifacts {
		data.Artifacts = append(data.Artifacts, JobNotificationArtifact{Kind: a.Kind, Digest: a.Digest, Size: a.Size})
	}
	ts := job.UpdatedAt
	if job.FinishedAt != nil {
		ts = *job.FinishedAt
	}
	body, err := json.Marshal(JobNotification{Type: "job." + strings.ToLower(string(job.State)), Timestamp: ts, Data: data})
	if err != nil {
		return nil, fmt.Errorf("encode notification of job %s: %w", job.ID, err)
	}
	return []*OutboxMessage{{
		ID:    OutboxMessageID(job.ID, OutboxKindWebhook, n.Webhook, string(job.State)),
		JobID: job.ID, Project: job.Project, Kind: OutboxKindWebhook, Target: n.Webhook, Payload: body,
	}}, nil
}
