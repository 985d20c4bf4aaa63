package mcpserver

import (
	"encoding/json"
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
	Usage          usageView            `json:"usage" jsonschema:"tokens (and cost, where reported) spent by the job's executor runs and the Answer Runner's answers to its asks"`
	SessionID      string               `json:"sessionId,omitempty" jsonschema:"the coding agent's session id; jobs_followup resumes it"`
	ParentJobID    string               `json:"parentJobId,omitempty" jsonschema:"the job this follow-up continues"`
	Project        string               `json:"project,omitempty" jsonschema:"config dir of the project the job was submitted from; it runs with that project's executors"`
}

// usageView is a token count.
type usageView struct {
	InputTokens       int     `json:"inputTokens" jsonschema:"prompt tokens"`
	OutputTokens      int     `json:"outputTokens" jsonschema:"completion tokens"`
	CachedInputTokens int     `json:"cachedInputTokens,omitempty" jsonschema:"prompt tokens served from the provider's cache"`
	CostUSD           float64 `json:"costUsd,omitempty" jsonschema:"cost in US dollars, where the executor reports it"`
}

// jobStatus is one job as jobs_get and mcp://jobs/{jobId}/status show it.
type jobStatus struct {
	jobSummary
	Artifacts []artifactRef `json:"artifacts" jsonschema:"artifacts stored so far; read each with resources/read on its uri"`
	Progress  *progressView `json:"progress,omitempty" jsonschema:"what the job is doing, while it is RUNNING or WAITING_ON_ANSWER"`
}

// progressView is what a running job is doing.
type progressView struct {
	Phase      relaytype.Phase `json:"phase,omitempty" jsonschema:"what the job is doing: preparing workspace, running (its executor) or collecting artifacts"`
	PhaseSince timestamp       `json:"phaseSince,omitempty" jsonschema:"when the job entered its phase"`
	ElapsedS   float64         `json:"elapsedS" jsonschema:"seconds since the job started running"`
	Attempt    int             `json:"attempt" jsonschema:"the attempt running"`
	LastLines  []string        `json:"lastLines" jsonschema:"the last non-blank lines (at most 10, oldest first) of the executor's output in this attempt"`
	LogsURI    string          `json:"logsUri" jsonschema:"resource holding the executor's whole output so far: logs.txt, marked partial (first line and _meta.partial) until the job ends"`
}

func progressOf(jobID string, p *relaytype.Progress) *progressView {
	if p == nil {
		return nil
	}
	v := &progressView{
		Phase: p.Phase, ElapsedS: p.ElapsedS, Attempt: p.Attempt, LastLines: p.LastLines,
		LogsURI: relaytype.ArtifactURI(jobID, relaytype.ArtifactLogs),
	}
	if !p.PhaseSince.IsZero() {
		v.PhaseSince = stamp(p.PhaseSince)
	}
	if v.LastLines == nil {
		v.LastLines = []string{}
	}
	return v
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
		Usage: usageView{InputTokens: j.Usage.InputTokens, OutputTokens: j.Usage.OutputTokens,
			CachedInputTokens: j.Usage.CachedInputTokens, CostUSD: j.Usage.CostUSD},
		SessionID:   j.SessionID,
		ParentJobID: j.ParentJobID,
		Project:     j.Project,
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

// jsonObject is a JSON object passed through as is (a context envelope).
// It is its own type so that its output schema says "object".
type jsonObject json.RawMessage

// MarshalJSON returns the object, or {} when there is none.
func (o jsonObject) MarshalJSON() ([]byte, error) {
	if len(o) == 0 {
		return []byte("{}"), nil
	}
	return json.RawMessage(o).MarshalJSON()
}

// UnmarshalJSON keeps a copy of data.
func (o *jsonObject) UnmarshalJSON(data []byte) error {
	*o = append((*o)[:0], data...)
	return nil
}

// askItem is one ask as asks_list and mcp://jobs/{jobId}/asks show it.
type askItem struct {
	AskID           string                 `json:"askId" jsonschema:"id of the ask; pass it to asks_answer"`
	JobID           string                 `json:"jobId" jsonschema:"job whose executor asked"`
	StepID          string                 `json:"stepId" jsonschema:"the executor's name for the step it is in"`
	AskType         relaytype.AskType      `json:"askType" jsonschema:"kind of question: CLARIFICATION, RESOURCE_FETCH, POLICY_DECISION, APPROVAL or CHOICE"`
	Prompt          string                 `json:"prompt" jsonschema:"the question"`
	RoleID          string                 `json:"roleId,omitempty" jsonschema:"answerer role the executor asked for"`
	Route           string                 `json:"route" jsonschema:"who is to answer: orchestrator (you, with asks_answer), runner (the relay's Answer Runner) or human"`
	ContextHash     string                 `json:"contextHash" jsonschema:"lowercase hex SHA-256 of the canonical contextEnvelope"`
	ContextEnvelope jsonObject             `json:"contextEnvelope" jsonschema:"the small explicit context of the question: job_snapshot, facts, tool_caps, role"`
	Constraints     *askConstraints        `json:"constraints,omitempty" jsonschema:"limits the executor set on the answer"`
	OutputSchema    json.RawMessage        `json:"outputSchema,omitempty" jsonschema:"JSON Schema the executor wants answerJson to satisfy"`
	Status          relaytype.AnswerStatus `json:"status" jsonschema:"PENDING until answered; then ANSWERED, REJECTED, TIMEOUT or ERROR"`
	CreatedAt       timestamp              `json:"createdAt" jsonschema:"when the executor asked"`
	DeadlineAt      timestamp              `json:"deadlineAt" jsonschema:"when a still pending ask is answered TIMEOUT, which fails the job"`
	AgeSeconds      int64                  `json:"ageSeconds" jsonschema:"seconds since createdAt"`
	Answer          *askAnswer             `json:"answer,omitempty" jsonschema:"the answer, once the ask is no longer PENDING"`
}

// askConstraints are an ask's constraints in the camelCase of the tools.
type askConstraints struct {
	TimeoutS     int      `json:"timeoutS,omitempty" jsonschema:"seconds the executor waits for the answer"`
	MaxTokens    int      `json:"maxTokens,omitempty" jsonschema:"length limit of the answer, in tokens"`
	AllowedTools []string `json:"allowedTools,omitempty" jsonschema:"tools the answerer may use"`
}

// answerStatus is the status of an answer: an AnswerStatus other than
// PENDING, a type of its own for its output schema.
type answerStatus relaytype.AnswerStatus

// askAnswer is the answer an ask got.
type askAnswer struct {
	Status     answerStatus    `json:"status" jsonschema:"ANSWERED, REJECTED, TIMEOUT or ERROR"`
	AnswerText string          `json:"answerText,omitempty" jsonschema:"the answer as text"`
	AnswerJSON json.RawMessage `json:"answerJson,omitempty" jsonschema:"the answer as a JSON value"`
	Error      string          `json:"error,omitempty" jsonschema:"why the ask was not answered"`
	AnsweredBy string          `json:"answeredBy,omitempty" jsonschema:"who answered: orchestrator, runner, human, policy or relay"`
	AnsweredAt timestamp       `json:"answeredAt" jsonschema:"when the answer was recorded"`
}

// asksResult is the result of asks_list and the content of
// mcp://jobs/{jobId}/asks.
type asksResult struct {
	Items []askItem `json:"items" jsonschema:"asks, oldest first"`
	Total int       `json:"total" jsonschema:"number of items"`
}

// answerResult is the result of asks_answer.
type answerResult struct {
	AskID    string             `json:"askId" jsonschema:"the ask answered"`
	JobID    string             `json:"jobId" jsonschema:"the job that asked"`
	Status   answerStatus       `json:"status" jsonschema:"status of the recorded answer"`
	Created  bool               `json:"created" jsonschema:"false when this same answer had been recorded before"`
	JobState relaytype.JobState `json:"jobState" jsonschema:"state of the job after the answer: RUNNING once no ask is pending, FAILED after a REJECTED answer"`
}

// waitResult is the result of jobs_wait.
type waitResult struct {
	jobStatus
	Changed     bool `json:"changed" jsonschema:"true when the job's state or asks changed during the call; false when it returned at timeoutS or because the job was already terminal"`
	PendingAsks int  `json:"pendingAsks" jsonschema:"asks of the job waiting for an answer; answer them with asks_list and asks_answer"`
}

func askView(a *relaytype.AskRecord, ans *relaytype.AnswerRecord, now time.Time) askItem {
	v := askItem{
		AskID: a.AskID, JobID: a.JobID, StepID: a.StepID, AskType: a.AskType, Prompt: a.Prompt,
		RoleID: a.RoleID, Route: a.Route, ContextHash: a.ContextHash, ContextEnvelope: jsonObject(a.ContextEnvelope),
		Status: a.Status, CreatedAt: stamp(a.CreatedAt), DeadlineAt: stamp(a.DeadlineAt),
		AgeSeconds: max(0, int64(now.Sub(a.CreatedAt)/time.Second)),
	}
	if c := a.Constraints; c != nil {
		v.Constraints = &askConstraints{TimeoutS: c.TimeoutS, MaxTokens: c.MaxTokens, AllowedTools: c.AllowedTools}
	}
	if m := a.Meta; m != nil && m.PromptOverrides != nil && len(m.PromptOverrides.OutputSchema) > 0 {
		v.OutputSchema = m.PromptOverrides.OutputSchema
	}
	if ans != nil {
		v.Answer = &askAnswer{
			Status: answerStatus(ans.Status), AnswerText: ans.AnswerText, AnswerJSON: ans.AnswerJSON, Error: ans.Error,
			AnsweredAt: stamp(ans.CreatedAt),
		}
		if ans.Attestation != nil {
			v.Answer.AnsweredBy = ans.Attestation.AnsweredBy
		}
	}
	return v
}
