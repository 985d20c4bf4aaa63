package mcpserver

import (
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// The JSON shapes below are what tools return as structuredContent and
// what the job resources hold. Their field names are part of the contract
// (SPEC §5); their output schemas are derived from them (schema.go).

// timestamp is a time as an RFC 3339 string in UTC with milliseconds.
type timestamp string

const timeLayout = "2006-01-02T15:04:05.000Z07:00"

func stamp(t time.Time) timestamp { return timestamp(t.UTC().Format(timeLayout)) }

func stampPtr(t *time.Time) timestamp {
	if t == nil || t.IsZero() {
		return ""
	}
	return stamp(*t)
}

// jobSummary is one job as jobs_list and mcp://jobs/list show it.
type jobSummary struct {
	ID             string               `json:"id" jsonschema:"job id, as returned by jobs_submit"`
	State          relaytype.JobState   `json:"state" jsonschema:"lifecycle state; SUCCEEDED, FAILED, CANCELED and EXPIRED are terminal"`
	StateVersion   int64                `json:"stateVersion" jsonschema:"increments on every state transition"`
	Attempt        int                  `json:"attempt" jsonschema:"current attempt, starting at 1 once the job first runs"`
	MaxAttempts    int                  `json:"maxAttempts" jsonschema:"attempts allowed before a job whose worker was lost is FAILED"`
	Priority       relaytype.Priority   `json:"priority" jsonschema:"queue priority, P0 highest"`
	Executor       string               `json:"executor" jsonschema:"name of the executor that runs the job"`
	BaselineCommit string               `json:"baselineCommit" jsonschema:"40-hex commit the job starts from; patch.diff applies to it"`
	ReasonCode     relaytype.FailReason `json:"reasonCode,omitempty" jsonschema:"why the job FAILED"`
	Summary        string               `json:"summary,omitempty" jsonschema:"one-line outcome or failure detail"`
	CreatedAt      timestamp            `json:"createdAt" jsonschema:"when the job was submitted"`
	StartedAt      timestamp            `json:"startedAt,omitempty" jsonschema:"when the job first started running"`
	FinishedAt     timestamp            `json:"finishedAt,omitempty" jsonschema:"when the job reached a terminal state"`
	DurationMs     *int64               `json:"durationMs,omitempty" jsonschema:"milliseconds from startedAt to finishedAt, once both are known"`
	LastUpdate     timestamp            `json:"lastUpdate" jsonschema:"when the job record last changed"`
}

// jobStatus is one job as jobs_get and mcp://jobs/{jobId}/status show it.
type jobStatus struct {
	jobSummary
	Artifacts []artifactRef `json:"artifacts" jsonschema:"artifacts stored so far; read each with resources/read on its uri"`
}

// artifactRef points at one stored artifact.
type artifactRef struct {
	Kind   relaytype.ArtifactKind `json:"kind" jsonschema:"patch.diff, out.md, logs.txt or pr.json"`
	URI    string                 `json:"uri" jsonschema:"resource URI to read the artifact from"`
	Digest string                 `json:"digest" jsonschema:"lowercase hex SHA-256 of the content"`
	Size   int64                  `json:"size" jsonschema:"size in bytes"`
}

// listResult is the result of jobs_list and the content of mcp://jobs/list.
type listResult struct {
	Items   []jobSummary `json:"items" jsonschema:"jobs on this page, newest first"`
	Total   int          `json:"total" jsonschema:"number of jobs matching the filter"`
	HasMore bool         `json:"hasMore" jsonschema:"whether jobs remain after this page (next offset = offset + len(items))"`
}

// submitResult is the result of jobs_submit.
type submitResult struct {
	JobID          string             `json:"jobId" jsonschema:"id of the job; pass it to jobs_get, jobs_cancel and the mcp://jobs/{jobId}/... resources"`
	Created        bool               `json:"created" jsonschema:"false when the idempotencyKey matched an existing job, which is returned instead"`
	State          relaytype.JobState `json:"state" jsonschema:"state of the job now, normally QUEUED"`
	StateVersion   int64              `json:"stateVersion" jsonschema:"state version of the job now"`
	BaselineCommit string             `json:"baselineCommit" jsonschema:"40-hex commit the job starts from (resolved from baseBranch if the spec had none)"`
}

// cancelResult is the result of jobs_cancel.
type cancelResult struct {
	OK    bool               `json:"ok" jsonschema:"true when the job was canceled"`
	State relaytype.JobState `json:"state" jsonschema:"state of the job after the call, CANCELED"`
}

func summarize(j *relaytype.Job) jobSummary {
	v := jobSummary{
		ID:             j.ID,
		State:          j.State,
		StateVersion:   j.StateVersion,
		Attempt:        j.Attempt,
		MaxAttempts:    j.MaxAttempts,
		Priority:       j.Priority,
		Executor:       j.Executor,
		BaselineCommit: j.BaselineCommit,
		ReasonCode:     j.ReasonCode,
		Summary:        j.Summary,
		CreatedAt:      stamp(j.CreatedAt),
		StartedAt:      stampPtr(j.StartedAt),
		FinishedAt:     stampPtr(j.FinishedAt),
		LastUpdate:     stamp(j.UpdatedAt),
	}
	if j.UpdatedAt.IsZero() {
		v.LastUpdate = v.CreatedAt
	}
	if j.StartedAt != nil && j.FinishedAt != nil && !j.StartedAt.IsZero() && !j.FinishedAt.IsZero() {
		d := j.FinishedAt.Sub(*j.StartedAt).Milliseconds()
		v.DurationMs = &d
	}
	return v
}

func status(j *relaytype.Job, arts []*relaytype.Artifact) jobStatus {
	v := jobStatus{jobSummary: summarize(j), Artifacts: []artifactRef{}}
	for _, a := range arts {
		uri := a.URI
		if uri == "" {
			uri = relaytype.ArtifactURI(j.ID, a.Kind)
		}
		v.Artifacts = append(v.Artifacts, artifactRef{Kind: a.Kind, URI: uri, Digest: a.Digest, Size: a.Size})
	}
	return v
}
