package mcpserver

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Limits of jobs_list.
const (
	defaultListLimit = 20
	maxListLimit     = 100
)

// The tools' definitions, shared by every Server (one per project). The
// schemas come from fixed Go types and constants (schema.go); they are
// listed from tool_schemas.json, which holds them encoded, so that no
// relay builds and encodes the same schemas at start-up (milliseconds of
// reflection). A toolDef holds no state but its memoized, immutable
// results.
var (
	submitTool = newToolDef[submitArgs, submitResult](mcp.Tool{
		Name:  "jobs_submit",
		Title: "Submit a background coding job",
		Description: `Start a background coding job: an executor (coding agent or command) works in an isolated checkout at a pinned commit. ` +
			`INVALID_SPEC names the field; NO_EXECUTOR: none configured.`,
		Annotations: &mcp.ToolAnnotations{IdempotentHint: true, DestructiveHint: ptr(false), OpenWorldHint: ptr(true)},
	}, submitInputSchema, nil)
	getTool = newToolDef[jobArgs, jobStatus](mcp.Tool{
		Name:        "jobs_get",
		Title:       "Get a job's status",
		Description: `A job's status and artifacts so far, without waiting.`,
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: ptr(false)},
	}, nil, func() *jsonschema.Schema {
		// Its artifacts, progress and usage are objects whose fields the
		// results show.
		return resultSchema[jobStatus](0)
	})
	listTool = newToolDef[listArgs, listResult](mcp.Tool{
		Name:        "jobs_list",
		Title:       "List jobs",
		Description: `Jobs, newest first; items are jobs_get's status without artifacts.`,
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: ptr(false)},
	}, listInputSchema, func() *jsonschema.Schema {
		// The items' fields are jobs_get's.
		return resultSchema[listResult](0)
	})
	cancelTool = newToolDef[jobArgs, cancelResult](mcp.Tool{
		Name:        "jobs_cancel",
		Title:       "Cancel a job",
		Description: `Cancel an unfinished job; a running executor is killed first. ILLEGAL_TRANSITION: it already ended.`,
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(true), IdempotentHint: false, OpenWorldHint: ptr(false)},
	}, nil, nil)
	waitTool = newToolDef[waitArgs, waitResult](mcp.Tool{
		Name:  "jobs_wait",
		Title: "Wait for a job to change",
		Description: `Wait up to timeoutS for a job or its asks to change, then return its status as jobs_get does; at once if terminal. ` +
			`Sends notifications/progress given a progressToken.`,
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: ptr(false)},
	}, waitInputSchema, func() *jsonschema.Schema { return resultSchema[waitResult](0) })
	followupTool = newToolDef[followupArgs, submitResult](mcp.Tool{
		Name:  "jobs_followup",
		Title: "Continue a finished job",
		Description: `Start a job continuing a finished one: same repo, baseline and executor, the parent's patch applied, the agent session resumed. ` +
			`incremental.diff holds its own change. ILLEGAL_TRANSITION: parent not finished.`,
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false), OpenWorldHint: ptr(true)},
	}, followupInputSchema, nil)
	asksListTool = newToolDef[asksListArgs, asksResult](mcp.Tool{
		Name:        "asks_list",
		Title:       "List questions from executors",
		Description: `Executors' questions (asks), oldest first; one unanswered at deadlineAt fails its job.`,
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: ptr(false)},
	}, asksListInputSchema, nil)
	asksAnswerTool = newToolDef[asksAnswerArgs, answerResult](mcp.Tool{
		Name:  "asks_answer",
		Title: "Answer a question from an executor",
		Description: `Answer a pending ask; its executor resumes. REJECTED fails the job with POLICY, ERROR (cannot answer) with EXECUTOR_ERROR. ` +
			`Repeating is harmless; CONFLICT: answered differently.`,
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false), IdempotentHint: true, OpenWorldHint: ptr(false)},
	}, asksAnswerInputSchema, nil)
)

func (s *Server) addTools() {
	// The instructions carry the job loop, the states and the error
	// format; each description says what its tool does.
	addTool(s, submitTool, s.submit)
	addTool(s, getTool, s.get)
	addTool(s, listTool, s.list)
	addTool(s, cancelTool, s.cancel)
	addToolReq(s, waitTool, s.wait)
	s.addFollowupTool()
	if s.asks == nil {
		return
	}
	addTool(s, asksListTool, s.listAsks)
	addTool(s, asksAnswerTool, s.answer)
}

// toolDefs returns every tool's definition.
func toolDefs() []toolDefinition {
	return []toolDefinition{submitTool, getTool, listTool, cancelTool, waitTool, followupTool, asksListTool, asksAnswerTool}
}

// toolDefinition is a toolDef of any In and Out.
type toolDefinition interface {
	// listed returns the tool as Servers list it.
	listed() *mcp.Tool
	// schemas builds the tool's input and output schemas from the Go
	// types, as tool_schemas.json holds them.
	schemas() (in, out *jsonschema.Schema)
	// compiled returns the validator of the tool's arguments.
	compiled() (*argValidator, error)
}

// toolDef is the definition of a tool whose arguments decode strictly
// into In and whose result is Out.
type toolDef[In, Out any] struct {
	// meta is the tool without its schemas.
	meta mcp.Tool
	// input and output build the schemas; nil means inferred from In and
	// Out (the output schema with one level of nested properties, see
	// resultSchema).
	input, output func() *jsonschema.Schema
	// tool returns the tool with its schemas as JSON text, made once.
	tool func() *mcp.Tool
	// validator returns the compiled input schema. It is compiled on the
	// tool's first call rather than when a Server is made, so that a
	// relay that starts (or opens a project) and is never called does not
	// pay for it.
	validator func() (*argValidator, error)
}

// newToolDef returns the definition of the tool meta with the schemas
// input and output build (nil: inferred).
func newToolDef[In, Out any](meta mcp.Tool, input, output func() *jsonschema.Schema) *toolDef[In, Out] {
	d := &toolDef[In, Out]{meta: meta, input: input, output: output}
	d.tool = sync.OnceValue(d.build)
	d.validator = sync.OnceValues(func() (*argValidator, error) {
		// The enums come from the schema as built, the rules from the
		// schema as listed (the same, see TestToolSchemasFile).
		return newArgValidator(d.meta.Name, d.inputSchema(), d.tool().InputSchema.(json.RawMessage))
	})
	return d
}

// build returns the tool with its schemas as JSON text: from
// tool_schemas.json, or encoded from the Go types when the file has no
// entry for the tool (TestToolSchemasFile keeps the file current). The
// SDK lists JSON text exactly as it would have encoded the schema, and
// checks it without encoding a schema struct again for every Server.
func (d *toolDef[In, Out]) build() *mcp.Tool {
	t := d.meta
	if texts, ok := encodedToolSchemas()[t.Name]; ok {
		t.InputSchema, t.OutputSchema = texts.Input, texts.Output
		return &t
	}
	in, out := d.schemas()
	t.InputSchema, t.OutputSchema = schemaJSON(t.Name, in), schemaJSON(t.Name, out)
	return &t
}

func (d *toolDef[In, Out]) listed() *mcp.Tool { return d.tool() }

func (d *toolDef[In, Out]) compiled() (*argValidator, error) { return d.validator() }

func (d *toolDef[In, Out]) schemas() (in, out *jsonschema.Schema) {
	return d.inputSchema(), d.outputSchema()
}

// inputSchema builds the input schema from the Go types.
func (d *toolDef[In, Out]) inputSchema() *jsonschema.Schema {
	if d.input != nil {
		return d.input()
	}
	return schemaFor[In]()
}

// outputSchema builds the output schema from the Go types.
func (d *toolDef[In, Out]) outputSchema() *jsonschema.Schema {
	if d.output != nil {
		return d.output()
	}
	return resultSchema[Out](1)
}

// toolSchemasFile is the name of the embedded file of encoded schemas.
const toolSchemasFile = "tool_schemas.json"

// toolSchemasJSON is tool_schemas.json: by tool name, the input and output
// schemas as schema.go builds them, encoded.
//
//go:embed tool_schemas.json
var toolSchemasJSON []byte

// encodedSchemas are one tool's schemas as JSON text.
type encodedSchemas struct {
	Input  json.RawMessage `json:"inputSchema"`
	Output json.RawMessage `json:"outputSchema"`
}

// encodedToolSchemas returns tool_schemas.json decoded, once per process
// (the file is part of the binary, so every decode is the same).
var encodedToolSchemas = sync.OnceValue(func() map[string]encodedSchemas {
	var m map[string]encodedSchemas
	if err := json.Unmarshal(toolSchemasJSON, &m); err != nil {
		// The file is written by TestToolSchemasFile; a failure is a bug.
		panic(fmt.Sprintf("mcpserver: %s: %v", toolSchemasFile, err))
	}
	return m
})

// schemaJSON encodes the schema s of tool.
func schemaJSON(tool string, s any) json.RawMessage {
	data, err := json.Marshal(s)
	if err != nil {
		// The schemas are built from fixed types; a failure is a bug.
		panic(fmt.Sprintf("mcpserver: encode schema of %s: %v", tool, err))
	}
	return data
}

// addTool registers the tool of def with handler h, whose result becomes
// both structuredContent and a text block holding the same JSON. Any
// error becomes an isError result (see toolError).
//
// The arguments of every call are validated against the input schema
// (argValidator) before they are decoded, so that errors carry a contract
// code and name the field; the low-level Server.AddTool is used because
// the SDK's generic mcp.AddTool reports violations without either.
func addTool[In, Out any](s *Server, def *toolDef[In, Out], h func(context.Context, *In) (Out, error)) {
	addToolReq(s, def, func(ctx context.Context, _ *mcp.CallToolRequest, in *In) (Out, error) { return h(ctx, in) })
}

// addToolReq is addTool for handlers that need the request itself: its
// session and progress token.
func addToolReq[In, Out any](s *Server, def *toolDef[In, Out], h func(context.Context, *mcp.CallToolRequest, *In) (Out, error)) {
	// Each Server gets its own copy of the shared tool, whose schemas
	// (JSON text) nobody modifies.
	t := *def.tool()
	s.mcp.AddTool(&t, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		validator, err := def.validator()
		if err != nil {
			return s.toolError(t.Name, err), nil
		}
		args, err := validator.check(req.Params.Arguments)
		if err != nil {
			return s.toolError(t.Name, err), nil
		}
		var in In
		if err := decodeArgs(args, &in); err != nil {
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
// decode as {}. Arguments that passed argValidator fail here only in edge
// cases the schema cannot tell, such as 1.0 for a Go int.
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

// submitArgs are jobs_submit's arguments; submitSchema describes them.
type submitArgs struct {
	Spec json.RawMessage `json:"spec"`
}

func (s *Server) submit(ctx context.Context, in *submitArgs) (submitResult, error) {
	// The input schema has made the spec an object.
	raw := bytes.TrimSpace(in.Spec)
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
	JobID string `json:"jobId" jsonschema:"from jobs_submit"`
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
	State       string `json:"state,omitempty" jsonschema:"filter"`
	Limit       *int   `json:"limit,omitempty" jsonschema:"page size"`
	Offset      *int   `json:"offset,omitempty" jsonschema:"jobs skipped"`
	AllProjects bool   `json:"allProjects,omitempty" jsonschema:"not only this project's"`
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
