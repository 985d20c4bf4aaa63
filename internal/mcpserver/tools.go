package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Limits of jobs_list.
const (
	defaultListLimit = 20
	maxListLimit     = 100
)

// The loop a client model should drive, shared by the tool descriptions.
const (
	loopHelp = `Jobs run for minutes: submit returns at once, then call jobs_wait {jobId} repeatedly (each call returns within 50 s, on the next state change) ` +
		`until the state is terminal; jobs_get reads the status without waiting, ` +
		`and the resource mcp://jobs/{jobId}/status can be subscribed to instead (re-read it on notifications/resources/updated). ` +
		`States: QUEUED (waiting for a worker), RUNNING, WAITING_ON_ANSWER (the executor asked a question and waits for the answer), ` +
		`STALE (its worker was lost; it is retried until maxAttempts) — all still in progress; ` +
		`SUCCEEDED, FAILED, CANCELED, EXPIRED (queued longer than ttlS) — terminal. ` +
		`A FAILED job has reasonCode EXECUTOR_ERROR (the executor exited non-zero), TIMEOUT, CONFLICT (its patch does not apply to the baseline), BAD_ARTIFACTS (the patch could not be computed), ` +
		`POLICY (an ask was REJECTED) or INTERNAL_ERROR, and a summary. ` +
		`Then read the results with resources/read: mcp://jobs/{jobId}/artifacts/patch.diff (a unified diff that applies cleanly to baselineCommit), ` +
		`mcp://jobs/{jobId}/artifacts/out.md (test plan and notes), mcp://jobs/{jobId}/artifacts/logs.txt (executor output); ` +
		`jobs_get lists the artifacts that exist, with SHA-256 digests.`
	askHelp = `When a job is WAITING_ON_ANSWER (jobs_wait reports pendingAsks > 0), its executor is blocked on a question: ` +
		`call asks_list {jobId}, then asks_answer each pending ask whose route is orchestrator with answerText (or answerJson when the ask has an outputSchema), ` +
		`answering from your own knowledge of the user's intent and the task (asks routed to the runner or to a human usually answer themselves: keep waiting, and answer them only if they stay pending); ` +
		`the job goes back to RUNNING once no ask is pending. ` +
		`Answer status REJECTED refuses and fails the job (reasonCode POLICY). An ask not answered by its deadlineAt times out and fails the job.`
	errorHelp = `Errors are returned as isError results whose text is JSON {"code","message","field"}.`
)

func (s *Server) addTools() {
	addTool(s, &mcp.Tool{
		Name:  "jobs_submit",
		Title: "Submit a background coding job",
		Description: `Hand a coding task to a background executor (codex, claude, gemini or another configured agent) working in an isolated checkout of a repository at a pinned commit. ` +
			`Returns {jobId, created, state, stateVersion, baselineCommit} immediately; it does not wait for the work. ` +
			loopHelp + ` ` + s.askHelp() +
			`Resubmitting with the same spec.idempotencyKey returns the existing job (created=false) unless that job FAILED, was CANCELED or EXPIRED. ` +
			errorHelp + ` INVALID_SPEC names the offending spec field (for example repo.baselineCommit); NO_EXECUTOR means no executor is configured.`,
		InputSchema: submitInputSchema,
		Annotations: &mcp.ToolAnnotations{IdempotentHint: true, DestructiveHint: ptr(false), OpenWorldHint: ptr(true)},
	}, s.submit)
	addTool(s, &mcp.Tool{
		Name:  "jobs_get",
		Title: "Get a job's status",
		Description: `Get a job's status: state, stateVersion (increments on every transition), attempt and maxAttempts, reasonCode and summary, ` +
			`timestamps (RFC 3339), and the artifacts stored so far with their resource URIs, SHA-256 digests and sizes. ` +
			loopHelp + ` ` + s.askHelp() + errorHelp + ` An unknown jobId gives JOB_NOT_FOUND.`,
		InputSchema: getInputSchema,
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: ptr(false)},
	}, s.get)
	addTool(s, &mcp.Tool{
		Name:  "jobs_list",
		Title: "List jobs",
		Description: fmt.Sprintf(`List this project's jobs (every project's with allProjects), newest first, optionally only those in one state. Returns {items, total, hasMore}; `+
			`each item is a job status without its artifacts (use jobs_get for those). Page with offset and limit (1 to %d, default %d). `,
			maxListLimit, defaultListLimit) + errorHelp,
		InputSchema: listInputSchema,
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: ptr(false)},
	}, s.list)
	addTool(s, &mcp.Tool{
		Name:  "jobs_cancel",
		Title: "Cancel a job",
		Description: `Cancel a job that has not finished: a queued job never runs, and a running job's executor is stopped (its whole process group is killed) before this returns. ` +
			`Returns {ok, state} with state CANCELED. ` + errorHelp +
			` Cancelling a job that is already terminal (SUCCEEDED, FAILED, CANCELED, EXPIRED) gives ILLEGAL_TRANSITION; an unknown jobId gives JOB_NOT_FOUND.`,
		InputSchema: cancelInputSchema,
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(true), IdempotentHint: false, OpenWorldHint: ptr(false)},
	}, s.cancel)
	addToolReq(s, &mcp.Tool{
		Name:  "jobs_wait",
		Title: "Wait for a job to change",
		Description: fmt.Sprintf(`Wait until a job changes state (or one of its asks is created or answered), then return its status as jobs_get does, plus `+
			`changed (false when the call timed out or the job was already terminal) and pendingAsks (asks waiting for your answer). `+
			`Returns at once for a terminal job, and after timeoutS seconds (1 to %d, default %d) when nothing changes: then just call it again. `+
			`Sends notifications/progress while waiting when the call carries a progressToken. `, maxWaitS, defaultWaitS) +
			loopHelp + ` ` + s.askHelp() + errorHelp + ` An unknown jobId gives JOB_NOT_FOUND; a timeoutS out of range gives INVALID_REQUEST.`,
		InputSchema: waitInputSchema,
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: ptr(false)},
	}, s.wait)
	s.addFollowupTool()
	if s.asks == nil {
		return
	}
	addTool(s, &mcp.Tool{
		Name:  "asks_list",
		Title: "List questions from executors",
		Description: `List the questions (asks) that executors of running jobs asked, oldest first; by default only the PENDING ones, which wait for an answer. ` +
			`Returns {items, total}; each item has askId, jobId, askType (CLARIFICATION, RESOURCE_FETCH, POLICY_DECISION, APPROVAL, CHOICE), prompt (the question), ` +
			`contextEnvelope (the job snapshot, facts and tool capabilities the question is about), constraints, outputSchema (the JSON Schema answerJson must satisfy, if any), ` +
			`route (orchestrator: yours to answer; runner or human: answered elsewhere, though you may answer it), status, deadlineAt, ageSeconds, and answer once answered. ` +
			askHelp + ` ` + errorHelp + ` A bad status gives INVALID_REQUEST; an unknown jobId gives JOB_NOT_FOUND.`,
		InputSchema: asksListInputSchema,
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: ptr(false)},
	}, s.listAsks)
	addTool(s, &mcp.Tool{
		Name:  "asks_answer",
		Title: "Answer a question from an executor",
		Description: `Answer a pending ask (from asks_list); the executor that asked resumes with the answer. ` +
			`Give answerText, or answerJson (any JSON value) when the ask has an outputSchema; status defaults to ANSWERED. ` +
			`Use status REJECTED (with error saying why) only to refuse what the executor asks: it fails the job with reasonCode POLICY. ` +
			`Returns {askId, jobId, status, created, jobState}: jobState is RUNNING again once no ask of the job is pending. ` +
			`Repeating the same answer is harmless (created=false). ` + errorHelp +
			` ASK_NOT_FOUND: no such ask; CONFLICT: the ask was already answered differently (or closed when its job ended); ` +
			`INVALID_REQUEST names the argument, for example answerText when an ANSWERED answer has neither answerText nor answerJson.`,
		InputSchema: asksAnswerInputSchema,
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false), IdempotentHint: true, OpenWorldHint: ptr(false)},
	}, s.answer)
}

// askHelp is askHelp followed by a space when the ask tools are offered.
func (s *Server) askHelp() string {
	if s.asks == nil {
		return ""
	}
	return askHelp + " "
}

// addTool registers a tool whose arguments decode strictly into In and
// whose result Out becomes both structuredContent and a text block holding
// the same JSON. Any error becomes an isError result (see toolError).
//
// The SDK's generic mcp.AddTool would validate arguments against the
// input schema before the handler runs; its messages name schema paths
// and carry no contract code, so the low-level Server.AddTool is used and
// validation stays with the handlers and relaytype.ParseJobSpec.
func addTool[In, Out any](s *Server, t *mcp.Tool, h func(context.Context, *In) (Out, error)) {
	addToolReq(s, t, func(ctx context.Context, _ *mcp.CallToolRequest, in *In) (Out, error) { return h(ctx, in) })
}

// addToolReq is addTool for handlers that need the request itself: its
// session and progress token.
func addToolReq[In, Out any](s *Server, t *mcp.Tool, h func(context.Context, *mcp.CallToolRequest, *In) (Out, error)) {
	t.OutputSchema = outputSchema[Out]()
	s.mcp.AddTool(t, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		var in In
		if err := decodeArgs(req.Params.Arguments, &in); err != nil {
			return s.toolError(t.Name, err), nil
		}
		out, err := h(ctx, req, &in)
		if err != nil {
			return s.toolError(t.Name, err), nil
		}
		data, err := json.Marshal(out)
		if err != nil {
			return s.toolError(t.Name, fmt.Errorf("encode result: %w", err)), nil
		}
		return &mcp.CallToolResult{
			Content:           []mcp.Content{&mcp.TextContent{Text: string(data)}},
			StructuredContent: json.RawMessage(data),
		}, nil
	})
}

// argError is a bad tool argument other than the job spec.
type argError struct {
	Field   string
	Message string
}

func (e *argError) Error() string { return e.Field + ": " + e.Message }

// Code returns CodeInvalidRequest.
func (e *argError) Code() relaytype.ErrorCode { return relaytype.CodeInvalidRequest }

// decodeArgs decodes tool arguments strictly: unknown arguments and values
// of the wrong type are errors naming the argument. Absent arguments
// decode as {}.
func decodeArgs(raw json.RawMessage, v any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	if raw[0] != '{' {
		return &argError{Field: "arguments", Message: "must be a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			return &argError{Field: te.Field, Message: fmt.Sprintf("must be %s, not %s", jsonType(te.Type.Kind().String()), te.Value)}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return &argError{Field: name, Message: "unknown argument"}
		}
		return &argError{Field: "arguments", Message: err.Error()}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &argError{Field: "arguments", Message: "trailing data after the JSON object"}
	}
	return nil
}

// jsonType names a Go kind the way a client thinks of JSON values.
func jsonType(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"):
		return "an integer"
	case kind == "string":
		return "a string"
	case kind == "bool":
		return "a boolean"
	}
	return kind
}

// toolErrorBody is the JSON text of an isError tool result.
type toolErrorBody struct {
	Code    relaytype.ErrorCode `json:"code"`
	Message string              `json:"message"`
	Field   string              `json:"field,omitempty"`
}

// toolError turns err into a tool result with isError set and the JSON
// {"code","message","field"} as its text. Errors without a contract code
// are INTERNAL_ERROR and logged; the rest are the caller's to fix.
func (s *Server) toolError(tool string, err error) *mcp.CallToolResult {
	body := toolErrorBody{Code: relaytype.CodeOf(err), Message: err.Error()}
	var se *relaytype.SpecError
	var ae *argError
	var re *relaytype.RequestError
	switch {
	case errors.As(err, &se):
		body.Field, body.Message = se.Field, se.Field+": "+se.Message
	case errors.As(err, &ae):
		body.Field, body.Message = ae.Field, ae.Error()
	case errors.As(err, &re):
		body.Field, body.Message = re.Field, re.Field+": "+re.Message
	}
	switch {
	case body.Code == "" && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		// The client gave up on the call; nobody reads this result.
		body.Code = relaytype.CodeInternal
		s.log.Debug("tool call ended early", "tool", tool, "err", err)
	case body.Code == "":
		body.Code = relaytype.CodeInternal
		s.log.Error("tool failed", "tool", tool, "err", err)
	default:
		s.log.Debug("tool error", "tool", tool, "code", body.Code, "err", err)
	}
	text, _ := json.Marshal(body) // strings only: cannot fail
	res := &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(text)}}}
	res.SetError(err)
	return res
}

type submitArgs struct {
	Spec json.RawMessage `json:"spec"`
}

func (s *Server) submit(ctx context.Context, in *submitArgs) (submitResult, error) {
	raw := bytes.TrimSpace(in.Spec)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return submitResult{}, &relaytype.SpecError{Field: "spec", Message: "required"}
	}
	// Some clients send nested objects as JSON-encoded strings; accept the
	// object inside.
	if raw[0] == '"' {
		var inner string
		if err := json.Unmarshal(raw, &inner); err == nil {
			raw = bytes.TrimSpace([]byte(inner))
		}
	}
	if len(raw) == 0 || raw[0] != '{' {
		return submitResult{}, &relaytype.SpecError{Field: "spec", Message: "must be a JSON object (the JobSpec)"}
	}
	spec, err := relaytype.ParseJobSpec(raw)
	if err != nil {
		return submitResult{}, err
	}
	job, created, err := s.jobs.Submit(ctx, spec)
	if err != nil {
		return submitResult{}, err
	}
	return submitResult{
		JobID:          job.ID,
		Created:        created,
		State:          job.State,
		StateVersion:   job.StateVersion,
		BaselineCommit: job.BaselineCommit,
	}, nil
}

type jobArgs struct {
	JobID string `json:"jobId"`
}

func (a *jobArgs) id() (string, error) {
	id := strings.TrimSpace(a.JobID)
	if id == "" {
		return "", &argError{Field: "jobId", Message: "required"}
	}
	return id, nil
}

func (s *Server) get(ctx context.Context, in *jobArgs) (jobStatus, error) {
	id, err := in.id()
	if err != nil {
		return jobStatus{}, err
	}
	return s.status(ctx, id)
}

// status reads a job and its artifacts.
func (s *Server) status(ctx context.Context, id string) (jobStatus, error) {
	job, err := s.jobs.Get(ctx, id)
	if err != nil {
		return jobStatus{}, err
	}
	return s.statusOf(ctx, job)
}

// statusOf reads the artifacts (and, while it runs, the progress) of a
// job already read.
func (s *Server) statusOf(ctx context.Context, job *relaytype.Job) (jobStatus, error) {
	arts, err := s.jobs.Artifacts(ctx, job.ID)
	if err != nil {
		return jobStatus{}, fmt.Errorf("list artifacts of %s: %w", job.ID, err)
	}
	st := status(job, arts)
	st.Progress = progressOf(job.ID, s.progress(ctx, job))
	return st, nil
}

type listArgs struct {
	State       string `json:"state"`
	Limit       *int   `json:"limit"`
	Offset      *int   `json:"offset"`
	AllProjects bool   `json:"allProjects"`
}

// AllProjects is the optional part of Jobs whose List shows one project's
// jobs: ListAll shows every project's, for jobs_list {allProjects: true}.
type AllProjects interface {
	ListAll(ctx context.Context, state relaytype.JobState, limit, offset int) ([]*relaytype.Job, int, error)
}

func (s *Server) list(ctx context.Context, in *listArgs) (listResult, error) {
	var state relaytype.JobState
	if in.State != "" {
		state = relaytype.JobState(strings.ToUpper(strings.TrimSpace(in.State)))
		if !state.Valid() {
			return listResult{}, &argError{Field: "state", Message: fmt.Sprintf("must be one of %s, not %q", joinStates(relaytype.AllStates), in.State)}
		}
	}
	limit, offset := defaultListLimit, 0
	if in.Limit != nil {
		limit = *in.Limit
		if limit < 1 || limit > maxListLimit {
			return listResult{}, &argError{Field: "limit", Message: fmt.Sprintf("must be between 1 and %d, not %d", maxListLimit, limit)}
		}
	}
	if in.Offset != nil {
		offset = *in.Offset
		if offset < 0 {
			return listResult{}, &argError{Field: "offset", Message: fmt.Sprintf("must not be negative, not %d", offset)}
		}
	}
	list := s.jobs.List
	if all, ok := s.jobs.(AllProjects); ok && in.AllProjects {
		list = all.ListAll
	}
	return s.listJobs(ctx, list, state, limit, offset)
}

func joinStates(states []relaytype.JobState) string {
	out := make([]string, len(states))
	for i, st := range states {
		out[i] = string(st)
	}
	return strings.Join(out, ", ")
}

func (s *Server) listJobs(ctx context.Context, list func(context.Context, relaytype.JobState, int, int) ([]*relaytype.Job, int, error),
	state relaytype.JobState, limit, offset int) (listResult, error) {
	jobs, total, err := list(ctx, state, limit, offset)
	if err != nil {
		return listResult{}, fmt.Errorf("list jobs: %w", err)
	}
	res := listResult{Items: make([]jobSummary, 0, len(jobs)), Total: total}
	for _, j := range jobs {
		res.Items = append(res.Items, summarize(j))
	}
	res.HasMore = offset+len(jobs) < total
	return res, nil
}

func (s *Server) cancel(ctx context.Context, in *jobArgs) (cancelResult, error) {
	id, err := in.id()
	if err != nil {
		return cancelResult{}, err
	}
	job, err := s.jobs.Cancel(ctx, id)
	if err != nil {
		return cancelResult{}, err
	}
	return cancelResult{OK: job.State == relaytype.StateCanceled, State: job.State}, nil
}
