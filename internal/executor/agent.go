package executor

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// AgentUsage counts the tokens a coding agent reports.
type AgentUsage struct {
	InputTokens       int `json:"inputTokens"`
	CachedInputTokens int `json:"cachedInputTokens,omitempty"`
	OutputTokens      int `json:"outputTokens"`
}

// AgentOutput is what an adapter reads from a coding agent's
// machine-readable output.
type AgentOutput struct {
	// SessionID identifies the agent's session, for resuming it in a
	// follow-up job.
	SessionID string
	// FinalMessage is the agent's last message; it feeds out.md.
	FinalMessage string
	Usage        AgentUsage
	// CostUSD is the cost the agent reports, where it does (claude).
	CostUSD float64
	// OverBudget is set when the agent stopped because it reached the
	// job's budget (MaxBudgetUSD): the job fails with POLICY.
	OverBudget bool
	// Failed is set when the agent reported failure in its own way (an
	// error event, is_error, an error object, a special exit code);
	// FailureSummary then says why in one line.
	Failed         bool
	FailureSummary string
	// Log is a condensed, human-readable account of the event stream
	// (commands run, files changed, messages), for logs.txt.
	Log string
}

// Adapter drives one coding-agent CLI in its documented non-interactive
// mode: it builds the command line and reads the agent's output. There is
// one subpackage per adapter (internal/executor/codex, claude, gemini).
type Adapter interface {
	// Kind is the executors.NAME.kind value: codex, claude or gemini.
	Kind() string
	// DefaultBinary is the program name used when the config names none.
	DefaultBinary() string
	// Argv returns the whole command line (binary first) for req. It may
	// add variables to req.Env for the run: Agent.Run builds the process
	// environment after calling it.
	Argv(cfg *AgentConfig, req *Request) ([]string, error)
	// Parse reads the agent's stdout (and exit code) after the run.
	Parse(cfg *AgentConfig, req *Request, stdout []byte, exitCode int) AgentOutput
}

// Resumer is the optional part of an Adapter whose agent keeps sessions
// per working directory: before a follow-up run resumes a session, it
// makes the session found from req.Workdir (copying it from under
// req.ParentWorkdir in the agent's session store, say). env is the
// environment the run will have (HOME and the agent's own variables).
type Resumer interface {
	PrepareResume(ctx context.Context, cfg *AgentConfig, req *Request, env []string) error
}

// Health is what an agent's own non-interactive health check found.
type Health struct {
	// Version is the agent's version, as it reports it.
	Version string
	// Detail describes what was checked (auth mode, trust).
	Detail string
	// Err is set when the agent cannot run jobs as configured; Fix then
	// says what to do.
	Err error
	Fix string
}

// Checker is the optional part of an Adapter that can check its agent
// (for doctor): the binary runs, is authenticated, trusts workspaces.
type Checker interface {
	Check(ctx context.Context, cfg *AgentConfig, env []string) Health
}

// AgentConfig configures a coding-agent executor.
type AgentConfig struct {
	// Name is the executor's name in the configuration. Required.
	Name string
	// Binary is the agent's program. Defaults to the adapter's.
	Binary string
	// Model is the model to ask for when the job names none (its
	// execution.preferredModel wins). Defaults to the agent's own.
	Model string
	// ExtraArgs are appended to the command line. Defaults to none.
	ExtraArgs []string
	// Env is environment set on top of BaseEnv. Defaults to none.
	Env map[string]string
	// Timeout bounds every run, on top of Request.Timeout. Defaults to
	// none.
	Timeout time.Duration
	// KillGrace is the time between SIGTERM and SIGKILL. Defaults to
	// DefaultKillGrace.
	KillGrace time.Duration
	// Shim is the relay binary that supervises the process group (see
	// CommandConfig.Shim). Defaults to none.
	Shim string
	// BaseEnv is the environment runs start from. Defaults to the relay's.
	BaseEnv []string
	// PermissionMode is claude's --permission-mode. Defaults to acceptEdits.
	PermissionMode string
	// AllowedTools are claude's --allowedTools; Bash(mcp-task-relay ask:*)
	// is always added. Defaults to the adapter's list.
	AllowedTools []string
	// MaxTurns is claude's --max-turns. Defaults to 50.
	MaxTurns int
	// ApprovalMode is gemini's --approval-mode. Defaults to auto_edit.
	ApprovalMode string
}

// Agent is a Runner for a coding agent behind an Adapter.
type Agent struct {
	cfg     AgentConfig
	adapter Adapter
}

var _ Runner = (*Agent)(nil)

// NewAgent returns the executor for a coding agent.
func NewAgent(cfg AgentConfig, a Adapter) (*Agent, error) {
	if a == nil {
		return nil, errors.New("agent executor: adapter is required")
	}
	if cfg.Name == "" {
		return nil, fmt.Errorf("executors: a %s executor needs a name", a.Kind())
	}
	if cfg.Binary == "" {
		cfg.Binary = a.DefaultBinary()
	}
	if cfg.KillGrace == 0 {
		cfg.KillGrace = DefaultKillGrace
	}
	return &Agent{cfg: cfg, adapter: a}, nil
}

// Name returns the executor's configured name.
func (a *Agent) Name() string { return a.cfg.Name }

// Config returns the agent's configuration.
func (a *Agent) Config() AgentConfig { return a.cfg }

// Adapter returns the agent's adapter.
func (a *Agent) Adapter() Adapter { return a.adapter }

// Run runs the agent for req and reads its output into Result.Agent.
func (a *Agent) Run(ctx context.Context, req *Request) (*Result, error) {
	if req == nil || req.Workdir == "" {
		return nil, fmt.Errorf("executor %s: request without a workdir", a.cfg.Name)
	}
	argv, err := a.adapter.Argv(&a.cfg, req)
	if err != nil {
		return nil, fmt.Errorf("executor %s: %w", a.cfg.Name, err)
	}
	env := environ(a.cfg.BaseEnv, a.cfg.Env, req.Env)
	if r, ok := a.adapter.(Resumer); ok && req.ResumeSessionID != "" {
		if err := r.PrepareResume(ctx, &a.cfg, req, env); err != nil {
			return nil, fmt.Errorf("executor %s: resume session %s: %w", a.cfg.Name, req.ResumeSessionID, err)
		}
	}
	res, err := launch(ctx, launchSpec{
		name: a.cfg.Name, argv: argv, env: env, req: req,
		timeout: minTimeout(req.Timeout, a.cfg.Timeout), killGrace: a.cfg.KillGrace, shim: a.cfg.Shim,
	})
	if err != nil {
		return nil, err
	}
	// Some agents (gemini) report errors on stderr: adapters skip lines
	// that are not theirs, so they read both.
	stream := res.Stdout
	if len(res.Stderr) > 0 {
		stream = append(append(append([]byte(nil), res.Stdout...), '\n'), res.Stderr...)
	}
	out := a.adapter.Parse(&a.cfg, req, stream, res.ExitCode)
	res.Agent = &out
	return res, nil
}
