package relay_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/workspace"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// agentRunner plays a coding agent: it runs fn in the workspace and
// reports out as what it read from the agent.
type agentRunner struct {
	fn  func(req *executor.Request)
	out executor.AgentOutput
	got *executor.Request
}

func (a *agentRunner) Run(_ context.Context, req *executor.Request) (*executor.Result, error) {
	a.got = req
	if a.fn != nil {
		a.fn(req)
	}
	out := a.out
	return &executor.Result{Agent: &out}, nil
}

func agentPipe(t *testing.T, a *agentRunner) *pipe {
	t.Helper()
	repo, base := gitRepo(t)
	wm, err := workspace.New(workspace.Config{Root: filepath.Join(t.TempDir(), "ws")})
	require.NoError(t, err)
	arts := relay.ArtifactDir{Root: t.TempDir()}
	p, err := relay.NewPipeline(relay.PipelineConfig{Workspaces: wm, Artifacts: arts,
		Executors: map[string]executor.Runner{"agent": a}, Shim: "/opt/relay bin/mcp-task-relay", Logger: quiet})
	require.NoError(t, err)
	return &pipe{p: p, arts: arts, repo: repo, base: base}
}

func edit(req *executor.Request) {
	_ = os.WriteFile(filepath.Join(req.Workdir, "f.txt"), []byte("changed\n"), 0o644)
}

func TestReadOnlyJobWithChangesFailsPolicy(t *testing.T) {
	t.Parallel()
	a := &agentRunner{fn: edit, out: executor.AgentOutput{FinalMessage: "I changed f.txt anyway."}}
	p := agentPipe(t, a)
	job := p.job(t, "agent", 0)
	job.Spec.Execution.Sandbox = "read-only"
	out := p.p.Handle(context.Background(), job)
	require.Equal(t, relaytype.StateFailed, out.State)
	require.Equal(t, relaytype.ReasonPolicy, out.Reason)
	require.Contains(t, out.Summary, "read-only")
	for _, art := range out.Artifacts {
		require.NotEqual(t, relaytype.ArtifactPatch, art.Kind, "a read-only job returns no patch")
	}
	require.True(t, a.got.ReadOnly())
	require.Contains(t, a.got.Prompt, "This job is read-only")

	// Without changes a read-only job succeeds.
	a.fn = nil
	job = p.job(t, "agent", 0)
	job.Spec.Execution.Sandbox = "read-only"
	out = p.p.Handle(context.Background(), job)
	require.Equal(t, relaytype.StateSucceeded, out.State, out.Summary)
}

func TestOverBudgetFailsPolicy(t *testing.T) {
	t.Parallel()
	a := &agentRunner{out: executor.AgentOutput{OverBudget: true, Failed: true, FailureSummary: "reached max budget",
		Usage: executor.AgentUsage{InputTokens: 10}, CostUSD: 0.6}}
	p := agentPipe(t, a)
	job := p.job(t, "agent", 0)
	job.Spec.Execution.MaxBudgetUSD = 0.5
	out := p.p.Handle(context.Background(), job)
	require.Equal(t, relaytype.StateFailed, out.State)
	require.Equal(t, relaytype.ReasonPolicy, out.Reason)
	require.Contains(t, out.Summary, "reached max budget")
	require.NotNil(t, out.Usage)
	require.InDelta(t, 0.6, out.Usage.CostUSD, 1e-9)
}

func TestAgentFinalMessageIsOutMD(t *testing.T) {
	t.Parallel()
	msg := "I refactored the parser.\n\nDetails nobody should lose.\n\n### TEST_PLAN\ngo test ./...\n\n### NOTES\nNone."
	a := &agentRunner{fn: edit, out: executor.AgentOutput{FinalMessage: msg}}
	p := agentPipe(t, a)
	job := p.job(t, "agent", 0)
	job.Spec.Execution.AskPolicy = "on-request"
	out := p.p.Handle(context.Background(), job)
	require.Equal(t, relaytype.StateSucceeded, out.State, out.Summary)
	require.Equal(t, msg+"\n", p.artifact(t, out, relaytype.ArtifactOut))
	// The request carries what agents need to ask.
	require.Equal(t, "/opt/relay bin/mcp-task-relay", a.got.RelayBinary)
	require.Equal(t, "on-request", a.got.AskPolicy)
	require.Contains(t, a.got.Prompt, "'/opt/relay bin/mcp-task-relay' ask --type CLARIFICATION")
	require.Contains(t, a.got.Prompt, "relay_ask")
	require.False(t, strings.Contains(a.got.Prompt, "read-only"))
}

// TestSetupSeesNoSecret: a workspace setup command gets the job's
// TASK_RELAY_* context but no credential and not the job's token.
func TestSetupSeesNoSecret(t *testing.T) {
	t.Parallel()
	repo, _ := gitRepo(t)
	wm, err := workspace.New(workspace.Config{Root: filepath.Join(t.TempDir(), "ws")})
	require.NoError(t, err)
	dump := filepath.Join(t.TempDir(), "setup.env")
	a := &agentRunner{}
	p, err := relay.NewPipeline(relay.PipelineConfig{Workspaces: wm, Artifacts: relay.ArtifactDir{Root: t.TempDir()},
		Executors: map[string]executor.Runner{"agent": a}, Logger: quiet,
		Bootstrap:    map[string]*relay.Bootstrap{"": {Setup: "env > " + dump}},
		SetupBaseEnv: []string{"PATH=" + os.Getenv("PATH"), "OPENAI_API_KEY=sk-secret", "PGPASSWORD=pw", "HARMLESS=1"},
		JobToken:     func(string, int) string { return "job-token-secret" }})
	require.NoError(t, err)
	s := &relaytype.JobSpec{Repo: relaytype.Repo{Type: "local", Path: repo}, Task: relaytype.Task{Title: "t", Description: "d"},
		Execution: relaytype.Execution{Executor: "agent"}, IdempotencyKey: "k"}
	s.ApplyDefaults()
	name, base, err := p.Admit(context.Background(), s)
	require.NoError(t, err)
	job := &relaytype.Job{ID: relay.NewJobID(), Executor: name, BaselineCommit: base, Attempt: 1, Spec: *s}
	out := p.Handle(context.Background(), job)
	require.Equal(t, relaytype.StateSucceeded, out.State, out.Summary)
	b, err := os.ReadFile(dump)
	require.NoError(t, err)
	env := string(b)
	require.Contains(t, env, "TASK_RELAY_JOB_ID="+job.ID)
	require.Contains(t, env, "HARMLESS=1")
	for _, secret := range []string{"sk-secret", "PGPASSWORD", "job-token-secret", "TASK_RELAY_TOKEN"} {
		require.NotContains(t, env, secret)
	}
	// The agent itself does get its token.
	require.Equal(t, "job-token-secret", a.got.Env["TASK_RELAY_TOKEN"])
}
