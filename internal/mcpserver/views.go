package mcpserver

import (
	"encoding/json"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// The JSON shapes below are what tools return as structuredContent and
// what the job resources hold. Their field names are part of the contract;
// the tools' output schemas are derived from them (schema.go). Their
// jsonschema tags document the fields here only: output schemas carry no
// descriptions (resultSchema).

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
	ID             string               `json:"id"`
	State          relaytype.JobState   `json:"state"`
	StateVersion   int64                `json:"stateVersion" jsonschema:"increments on every transition"`
	Attempt        int                  `json:"attempt"`
	MaxAttempts    int                  `json:"maxAttempts"`
	Priority       relaytype.Priority   `json:"priority"`
	Executor       string               `json:"executor"`
	BaselineCommit string               `json:"baselineCommit" jsonschema:"patch.diff applies to it"`
	ReasonCode     relaytype.FailReason `json:"reasonCode,omitempty"`
	Summary        string               `json:"summary,omitempty" jsonschema:"outcome or failure detail"`
	CreatedAt      timestamp            `json:"createdAt"`
	StartedAt      timestamp            `json:"startedAt,omitempty"`
	FinishedAt     timestamp            `json:"finishedAt,omitempty"`
	DurationMs     *int64               `json:"durationMs,omitempty"`
	LastUpdate     timestamp            `json:"lastUpdate"`
	Usage          usageView            `json:"usage" jsonschema:"tokens and cost (where reported) of its executor runs and ask answers"`
	SessionID      string               `json:"sessionId,omitempty" jsonschema:"the agent session jobs_followup resumes"`
	ParentJobID    string               `json:"parentJobId,omitempty" jsonschema:"the job this follow-up continues"`
	Project        string               `json:"project,omitempty" jsonschema:"config dir of the project that submitted it"`
}

// usageView is a token count.
type usageView struct {
	InputTokens       int     `json:"inputTokens"`
	OutputTokens      int     `json:"outputTokens"`
	CachedInputTokens int     `json:"cachedInputTokens,omitempty"`
	CostUSD           float64 `json:"costUsd,omitempty"`
}

// jobStatus is one job as jobs_get and mcp://jobs/{jobId}/status show it.
type jobStatus struct {
	jobSummary
	Artifacts []artifactRef `json:"artifacts" jsonschema:"artifacts so far; resources/read each uri"`
	Progress  *progressView `json:"progress,omitempty" jsonschema:"while RUNNING or WAITING_ON_ANSWER"`
}

// progressView is what a running job is doing.
type progressView struct {
	Phase      relaytype.Phase `json:"phase,omitempty"`
	PhaseSince timestamp       `json:"phaseSince,omitempty"`
	ElapsedS   float64         `json:"elapsedS" jsonschema:"seconds since it started running"`
	Attempt    int             `json:"attempt"`
	LastLines  []string        `json:"lastLines" jsonschema:"last output lines, oldest first"`
	LogsURI    string          `json:"logsUri" jsonschema:"output so far (logs.txt), marked partial until the job ends"`
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
	Kind   relaytype.ArtifactKind `json:"kind"`
	URI    string                 `json:"uri"`
	Digest string                 `json:"digest" jsonschema:"hex SHA-256"`
	Size   int64                  `json:"size" jsonschema:"bytes"`
}

// listResult is the result of jobs_list and the content of mcp://jobs/list.
type listResult struct {
	Items   []jobSummary `json:"items"`
	Total   int          `json:"total" jsonschema:"number of matching items"`
	HasMore bool         `json:"hasMore" jsonschema:"more after this page"`
}

// submitResult is the result of jobs_submit.
type submitResult struct {
	JobID          string             `json:"jobId"`
	Created        bool               `json:"created" jsonschema:"false when idempotencyKey matched an existing job"`
	State          relaytype.JobState `json:"state"`
	StateVersion   int64              `json:"stateVersion" jsonschema:"increments on every transition"`
	BaselineCommit string             `json:"baselineCommit" jsonschema:"patch.diff applies to it"`
}

// cancelResult is the result of jobs_cancel.
type cancelResult struct {
	OK    bool               `json:"ok"`
	State relaytype.JobState `json:"state"`
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
	AskID           string                 `json:"askId"`
	JobID           string                 `json:"jobId"`
	StepID          string                 `json:"stepId"`
	AskType         relaytype.AskType      `json:"askType"`
	Prompt          string                 `json:"prompt" jsonschema:"the question"`
	RoleID          string                 `json:"roleId,omitempty" jsonschema:"answerer role asked for"`
	Route           string                 `json:"route" jsonschema:"who answers: orchestrator (you), runner or human"`
	ContextHash     string                 `json:"contextHash" jsonschema:"hex SHA-256 of the canonical contextEnvelope"`
	ContextEnvelope jsonObject             `json:"contextEnvelope" jsonschema:"the context of the question: job_snapshot, facts, tool_caps, role"`
	Constraints     *askConstraints        `json:"constraints,omitempty"`
	OutputSchema    json.RawMessage        `json:"outputSchema,omitempty" jsonschema:"JSON Schema (or schema name) answerJson must satisfy"`
	Status          relaytype.AnswerStatus `json:"status"`
	CreatedAt       timestamp              `json:"createdAt"`
	DeadlineAt      timestamp              `json:"deadlineAt" jsonschema:"when a pending ask times out, failing the job"`
	AgeSeconds      int64                  `json:"ageSeconds"`
	Answer          *askAnswer             `json:"answer,omitempty" jsonschema:"once no longer PENDING"`
}

// askConstraints are an ask's constraints in the camelCase of the tools.
type askConstraints struct {
	TimeoutS     int      `json:"timeoutS,omitempty"`
	MaxTokens    int      `json:"maxTokens,omitempty"`
	AllowedTools []string `json:"allowedTools,omitempty"`
}

// answerStatus is the status of an answer: an AnswerStatus other than
// PENDING, a type of its own for its output schema.
type answerStatus relaytype.AnswerStatus

// askAnswer is the answer an ask got.
type askAnswer struct {
	Status     answerStatus    `json:"status"`
	AnswerText string          `json:"answerText,omitempty"`
	AnswerJSON json.RawMessage `json:"answerJson,omitempty"`
	Error      string          `json:"error,omitempty" jsonschema:"why it was not answered"`
	AnsweredBy string          `json:"answeredBy,omitempty" jsonschema:"orchestrator, runner, human, policy or relay"`
	AnsweredAt timestamp       `json:"answeredAt"`
}

// asksResult is the result of asks_list and the content of
// mcp://jobs/{jobId}/asks.
type asksResult struct {
	Items []askItem `json:"items"`
	Total int       `json:"total" jsonschema:"number of matching items"`
}

// answerResult is the result of asks_answer.
type answerResult struct {
	AskID    string             `json:"askId"`
	JobID    string             `json:"jobId"`
	Status   answerStatus       `json:"status"`
	Created  bool               `json:"created" jsonschema:"false when this answer was recorded before"`
	JobState relaytype.JobState `json:"jobState" jsonschema:"RUNNING once no ask is pending; FAILED after REJECTED"`
}

// waitResult is the result of jobs_wait.
type waitResult struct {
	jobStatus
	Changed     bool `json:"changed" jsonschema:"false when it returned at timeoutS or the job was terminal"`
	PendingAsks int  `json:"pendingAsks" jsonschema:"asks waiting for an answer (asks_list, asks_answer)"`
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
