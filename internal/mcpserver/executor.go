package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// ExecutorAsks is the part of *ask.Service the executor endpoint uses.
type ExecutorAsks interface {
	Create(ctx context.Context, a *relaytype.Ask) (*relaytype.AskRecord, bool, error)
	Wait(ctx context.Context, askID string, timeout time.Duration) (*relaytype.AnswerRecord, error)
}

// ExecutorConfig configures the executor-facing MCP endpoint.
type ExecutorConfig struct {
	// Asks creates asks and waits for answers. Required.
	Asks ExecutorAsks
	// Jobs reads the caller's job. Required.
	Jobs interface {
		Get(ctx context.Context, id string) (*relaytype.Job, error)
	}
	// JobOf returns the job a request's bearer token is scoped to, and
	// the attempt when the token names one (else zero). The HTTP layer
	// has already refused requests without a job token. Required.
	JobOf func(h http.Header) (jobID string, attempt int, err error)
	// Profile and PolicyVersion go into the envelopes built for asks.
	Profile, PolicyVersion string
	// ProfileOf, when set, returns the profile and policy version of a
	// job's project, replacing Profile and PolicyVersion. Defaults to
	// none.
	ProfileOf func(ctx context.Context, job *relaytype.Job) (profile, policyVersion string)
	// MaxWait bounds how long a tool call waits for its answer. Defaults
	// to 10 min.
	MaxWait time.Duration
	// KeepAlive is how often a tool call waiting for its answer sends a
	// progress notification (when the client gave a progress token), so
	// that agents' MCP clients do not give up on a silent response.
	// Defaults to 20 s.
	KeepAlive time.Duration
	// Logger receives structured logs. Defaults to slog.Default().
	Logger *slog.Logger
	// Version is the server's version string.
	Version string
}

// NewExecutorHandler returns the Streamable HTTP handler of the MCP
// endpoint that running executors (coding agents) use: relay_ask, the
// Ask/Answer protocol as a tool, and relay_approve, a Claude Code
// permission-prompt tool that routes an APPROVAL ask.
func NewExecutorHandler(cfg ExecutorConfig) (http.Handler, error) {
	if cfg.Asks == nil || cfg.Jobs == nil || cfg.JobOf == nil {
		return nil, errors.New("executor mcp: Asks, Jobs and JobOf are required")
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = 10 * time.Minute
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = keepAliveEvery
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	e := &execServer{cfg: cfg}
	srv := mcp.NewServer(&mcp.Implementation{Name: "mcp-task-relay-executor", Version: cfg.Version}, &mcp.ServerOptions{
		Instructions: "Tools of the mcp-task-relay that runs this job: relay_ask asks the relay a question and returns the answer; relay_approve is the permission-prompt tool.",
		Logger:       cfg.Logger,
	})
	srv.AddTool(&mcp.Tool{
		Name: "relay_ask",
		Description: "Ask the relay that runs this job a question and wait for the answer (from its Answer Runner, its policy, the orchestrating client or a person). " +
			"type is CLARIFICATION, RESOURCE_FETCH, POLICY_DECISION, APPROVAL or CHOICE. Returns {status, answerText, answerJson, error, askBack}; " +
			"status REJECTED means do not do it.",
		// The schemas are JSON text: the SDK checks a schema struct by
		// encoding it, which costs the relay's start-up half a millisecond
		// (encoding/json's first encoder of jsonschema.Schema).
		InputSchema: json.RawMessage(`{"type":"object","properties":{` +
			`"prompt":{"type":"string","description":"The question, self-contained."},` +
			`"role":{"type":"string","description":"Answer Runner role, e.g. diff_planner, test_planner (optional)."},` +
			`"schema":{"description":"JSON Schema the answer's JSON must match (optional)."},` +
			`"type":{"type":"string","enum":["CLARIFICATION","RESOURCE_FETCH","POLICY_DECISION","APPROVAL","CHOICE"]}},` +
			`"required":["type","prompt"]}`),
	}, e.ask)
	srv.AddTool(&mcp.Tool{
		Name:        "relay_approve",
		Description: "Permission prompt: decides whether a tool call may run. Input {tool_name, input, tool_use_id}; returns {\"behavior\":\"allow\",\"updatedInput\":…} or {\"behavior\":\"deny\",\"message\":…}.",
		InputSchema: json.RawMessage(`{"type":"object","properties":{` +
			`"input":{"description":"The tool call's input."},"tool_name":{"type":"string"},"tool_use_id":{"type":"string"}},` +
			`"required":["tool_name"]}`),
	}, e.approve)
	return GuardHTTP(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: true}), 0), nil
}

type execServer struct {
	cfg ExecutorConfig
}

// askAndWait creates an ask for the caller's job with an envelope built
// from the job, and waits for its answer.
func (e *execServer) askAndWait(ctx context.Context, req *mcp.CallToolRequest, typ relaytype.AskType, prompt, role string, schema json.RawMessage) (*relaytype.AnswerRecord, error) {
	var h http.Header
	if req.Extra != nil {
		h = req.Extra.Header
	}
	jobID, attempt, err := e.cfg.JobOf(h)
	if err != nil {
		return nil, err
	}
	ctx = ask.WithAttempt(ctx, attempt)
	job, err := e.cfg.Jobs.Get(ctx, jobID)
	if err != nil {
		return nil, err
	}
	repo := job.Spec.Repo.URL
	if job.Spec.Repo.Type == "local" {
		repo = job.Spec.Repo.Path
	}
	facts := map[string]any{}
	if job.Spec.Repo.BaseBranch != "" {
		facts["branch"] = job.Spec.Repo.BaseBranch
	}
	profile, policyVersion := e.cfg.Profile, e.cfg.PolicyVersion
	if e.cfg.ProfileOf != nil {
		profile, policyVersion = e.cfg.ProfileOf(ctx, job)
	}
	env := relaytype.NewEnvelope(repo, job.BaselineCommit, profile, policyVersion, role, facts, nil)
	raw, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	hash, err := relaytype.ContextHash(raw)
	if err != nil {
		return nil, err
	}
	a := &relaytype.Ask{Type: "Ask", AskID: uuid.NewString(), JobID: jobID, StepID: fmt.Sprintf("attempt-%d", job.Attempt),
		AskType: typ, Prompt: prompt, ContextHash: hash, ContextEnvelope: raw, RoleID: role}
	if len(schema) > 0 && string(schema) != "null" {
		a.Meta = &relaytype.AskMeta{PromptOverrides: &relaytype.PromptOverrides{OutputSchema: schema}}
	}
	rec, _, err := e.cfg.Asks.Create(ctx, a)
	if err != nil {
		return nil, err
	}
	wait := min(time.Until(rec.DeadlineAt)+5*time.Second, e.cfg.MaxWait)
	stop := keepAlive(ctx, req, e.cfg.KeepAlive)
	ans, err := e.cfg.Asks.Wait(ctx, rec.AskID, wait)
	stop()
	if err != nil {
		return nil, err
	}
	if ans == nil {
		return nil, fmt.Errorf("no answer to ask %s within %s", rec.AskID, wait.Round(time.Second))
	}
	return ans, nil
}

// keepAliveEvery is how often a tool call waiting for an answer sends a
// progress notification: it flushes the Streamable HTTP response, and
// agents' MCP clients give up on silent responses (Gemini CLI after 60 s
// without headers, undici after 300 s between chunks).
const keepAliveEvery = 20 * time.Second

// keepAlive sends progress notifications for req every period until the
// returned function is called, when the client asked for progress.
func keepAlive(ctx context.Context, req *mcp.CallToolRequest, period time.Duration) func() {
	token := req.Params.GetProgressToken()
	if token == nil || req.Session == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(period)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: token,
					Message: "waiting for the answer", Progress: time.Since(start).Seconds()})
			}
		}
	}()
	return func() { cancel(); <-done }
}

func textResult(v any, isError bool) *mcp.CallToolResult {
	b, _ := json.Marshal(v)
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}, IsError: isError}
}

func (e *execServer) ask(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var in struct {
		Type   string          `json:"type"`
		Prompt string          `json:"prompt"`
		Role   string          `json:"role"`
		Schema json.RawMessage `json:"schema"`
	}
	if err := json.Unmarshal(req.Params.Arguments, &in); err != nil {
		return textResult(map[string]string{"code": string(relaytype.CodeInvalidRequest), "message": err.Error()}, true), nil
	}
	ans, err := e.askAndWait(ctx, req, relaytype.AskType(strings.ToUpper(in.Type)), in.Prompt, in.Role, in.Schema)
	if err != nil {
		return textResult(map[string]string{"code": string(codeOf(err)), "message": err.Error()}, true), nil
	}
	return textResult(map[string]any{"status": ans.Status, "answerText": ans.AnswerText, "answerJson": ans.AnswerJSON,
		"error": ans.Error, "askBack": ans.AskBack}, false), nil
}

func codeOf(err error) relaytype.ErrorCode {
	if c := relaytype.CodeOf(err); c != "" {
		return c
	}
	return relaytype.CodeInternal
}

// approve is the permission-prompt tool: Claude Code calls it before a
// tool it may not use freely, and reads the JSON decision in the text.
func (e *execServer) approve(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var in struct {
		ToolName  string          `json:"tool_name"`
		Input     json.RawMessage `json:"input"`
		ToolUseID string          `json:"tool_use_id"`
	}
	deny := func(msg string) (*mcp.CallToolResult, error) {
		return textResult(map[string]string{"behavior": "deny", "message": msg}, false), nil
	}
	if err := json.Unmarshal(req.Params.Arguments, &in); err != nil || in.ToolName == "" {
		return deny("malformed permission request")
	}
	input := in.Input
	if len(input) == 0 {
		input = json.RawMessage("{}")
	}
	prompt := fmt.Sprintf("The coding agent asks to run the tool %s with this input:\n%s\nApprove?", in.ToolName, string(input))
	if e.readOnly(ctx, req) {
		prompt = "This job is read-only (execution.sandbox): approving a tool that changes files fails the job (POLICY).\n" + prompt
	}
	ans, err := e.askAndWait(ctx, req, relaytype.AskApproval, prompt, "", nil)
	if err != nil {
		return deny("no approval: " + err.Error())
	}
	if ans.Status != relaytype.StatusAnswered || declined(ans) {
		msg := ans.Error
		if msg == "" {
			msg = ans.AnswerText
		}
		if msg == "" {
			msg = "not approved (" + string(ans.Status) + ")"
		}
		return deny(msg)
	}
	return textResult(map[string]any{"behavior": "allow", "updatedInput": input}, false), nil
}

// readOnly reports whether the job of the request is read-only.
func (e *execServer) readOnly(ctx context.Context, req *mcp.CallToolRequest) bool {
	var h http.Header
	if req.Extra != nil {
		h = req.Extra.Header
	}
	jobID, _, err := e.cfg.JobOf(h)
	if err != nil {
		return false
	}
	job, err := e.cfg.Jobs.Get(ctx, jobID)
	return err == nil && job.Spec.Execution.Sandbox == "read-only"
}

// declined reports whether an ANSWERED approval still says no: a JSON
// answer {"approved": false} or {"decision": "DENY"}.
func declined(a *relaytype.AnswerRecord) bool {
	var v struct {
		Approved *bool  `json:"approved"`
		Decision string `json:"decision"`
	}
	if len(a.AnswerJSON) > 0 && json.Unmarshal(a.AnswerJSON, &v) == nil {
		if v.Approved != nil && !*v.Approved {
			return true
		}
		if strings.EqualFold(v.Decision, "DENY") {
			return true
		}
	}
	t := strings.ToLower(strings.TrimSpace(a.AnswerText))
	return t == "no" || t == "deny" || t == "denied" || strings.HasPrefix(t, "no,") || strings.HasPrefix(t, "no.")
}
