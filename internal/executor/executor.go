// Package executor owns running one executor process for a job step: its
// argv and environment, capturing its output within a bound, its deadline,
// and stopping it for good. Every executor runs as the leader of its own
// process group, and the whole group is killed when the step ends, is
// canceled or times out, so that no process outlives its job. With the shim
// (see RunShim) this holds even when the relay itself is killed.
//
// Each kind of executor is an adapter in its own file; command.go runs any
// configured command line.
package executor

import (
	"context"
	"io"
	"time"
)

// Defaults.
const (
	// DefaultMaxOutputBytes bounds the output kept in a Result.
	DefaultMaxOutputBytes = 8 << 20
	// DefaultKillGrace is how long a process group has between SIGTERM and
	// SIGKILL.
	DefaultKillGrace = 3 * time.Second
)

// Request is one run of an executor.
type Request struct {
	// JobID and StepID identify the job step the run belongs to.
	JobID, StepID string
	// Workdir is the workspace checkout, the process's working directory.
	// Required.
	Workdir string
	// Prompt is the full prompt text.
	Prompt string
	// PromptFile is the path of a file holding Prompt, written by the relay
	// outside Workdir.
	PromptFile string
	// Model is the model the executor should use; may be empty.
	Model string
	// Env is extra environment (TASK_RELAY_JOB_ID and so on), set on top of
	// the executor's configured environment.
	Env map[string]string
	// Timeout bounds the run. Defaults to none (the executor's configured
	// timeout, if any, still applies; the shorter one wins).
	Timeout time.Duration
	// MaxOutputBytes bounds each captured output in the Result. Defaults to
	// DefaultMaxOutputBytes.
	MaxOutputBytes int64
	// Output, when not nil, receives every chunk of combined output as it
	// arrives (live logs). It should not block; write errors stop the
	// streaming but not the run.
	Output io.Writer

	// The fields below are for coding-agent adapters; plain commands
	// ignore them.

	// MetaDir is a private directory outside Workdir for the agent's side
	// files (codex's final-message file, claude's MCP config).
	MetaDir string
	// Sandbox is the job's execution.sandbox: read-only or
	// workspace-write (the default).
	Sandbox string
	// ResumeSessionID, when set, resumes the agent's earlier session (a
	// follow-up job).
	ResumeSessionID string
	// MaxBudgetUSD, when positive, is passed to agents that take a budget.
	MaxBudgetUSD float64
	// RelayMCPURL is the relay's executor-facing MCP endpoint (Streamable
	// HTTP) and RelayToken the job's bearer token for it; claude is pointed
	// at it for relay_ask and relay_approve.
	RelayMCPURL string
	RelayToken  string
	// RelayBinary is the absolute path of the relay binary, whose `ask`
	// command an agent can run from any shell (login shells included).
	RelayBinary string
	// AskPolicy is the job's execution.askPolicy: untrusted, on-request,
	// on-failure or never (when the agent asks for approval). Empty means
	// the agent's default.
	AskPolicy string
	// AskTimeout is the longest an ask of this run may wait for its answer;
	// agents' tool-call timeouts for relay_ask and relay_approve are raised
	// to it. Zero means the adapter's default.
	AskTimeout time.Duration
	// ParentWorkdir, for a follow-up, is the workdir the parent job's run
	// had (now gone): agents that keep sessions per directory find the
	// session they resume under it.
	ParentWorkdir string
}

// ReadOnly reports whether the job must not change the workspace.
func (r *Request) ReadOnly() bool { return r.Sandbox == "read-only" }

// Result is the outcome of a run that started.
type Result struct {
	// ExitCode is the process's exit status, or 128+N if signal N ended it.
	ExitCode int
	// Output is stdout and stderr interleaved as they arrived. Beyond the
	// bound, its head and tail are kept around an
	// "[... N bytes omitted ...]" marker.
	Output []byte
	// Stdout is stdout alone, bounded the same way.
	Stdout []byte
	// Stderr is stderr alone, bounded to 64 KiB the same way.
	Stderr []byte
	// Agent is what a coding-agent adapter read from the output; nil for
	// plain commands.
	Agent *AgentOutput
	// TimedOut is true when the run was stopped because its timeout passed.
	TimedOut bool
	// Canceled is true when the run was stopped because ctx was done.
	Canceled bool
	// Duration is the time from start to the process's exit.
	Duration time.Duration
}

// Runner runs an executor. A process that runs and fails (non-zero exit,
// timeout, cancel) gives a Result; the error is only for runs that could
// not start or be supervised.
type Runner interface {
	Run(ctx context.Context, req *Request) (*Result, error)
}
