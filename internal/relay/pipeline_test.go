package relay_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/workspace"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

func gitRepo(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	run := func(args ...string) string {
		c := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.invalid"}, args...)...)
		c.Dir = dir
		out, err := c.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return strings.TrimSpace(string(out))
	}
	run("init", "--quiet", "--initial-branch=main")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "f.txt"), []byte("one\ntwo\nthree\n"), 0o644))
	run("add", ".")
	run("commit", "--quiet", "-m", "init")
	return dir, run("rev-parse", "HEAD")
}

type pipe struct {
	p    *relay.Pipeline
	arts relay.ArtifactDir
	repo string
	base string
}

func newPipe(t *testing.T, scripts map[string]string) *pipe {
	t.Helper()
	repo, base := gitRepo(t)
	wm, err := workspace.New(workspace.Config{Root: filepath.Join(t.TempDir(), "ws")})
	require.NoError(t, err)
	runners := map[string]executor.Runner{}
	for name, script := range scripts {
		c, err := executor.NewCommand(executor.CommandConfig{Name: name, Argv: []string{"/bin/sh", "-c", script, "sh", "{{prompt_file}}"}, Timeout: time.Minute})
		require.NoError(t, err)
		runners[name] = c
	}
	arts := relay.ArtifactDir{Root: t.TempDir()}
	p, err := relay.NewPipeline(relay.PipelineConfig{Workspaces: wm, Artifacts: arts, Executors: runners, Logger: quiet})
	require.NoError(t, err)
	return &pipe{p: p, arts: arts, repo: repo, base: base}
}

func (p *pipe) job(t *testing.T, executor string, timeoutS int) *relaytype.Job {
	t.Helper()
	s := &relaytype.JobSpec{
		Repo:           relaytype.Repo{Type: "local", Path: p.repo},
		Task:           relaytype.Task{Title: "Edit", Description: "Edit f.txt", Acceptance: []string{"f.txt edited"}},
		Context:        &relaytype.TaskContext{CodeSnippets: []relaytype.CodeSnippet{{Path: "f.txt", From: 2, To: 3}}},
		Execution:      relaytype.Execution{Executor: executor, TimeoutS: timeoutS},
		IdempotencyKey: "k",
	}
	s.ApplyDefaults()
	name, base, err := p.p.Admit(context.Background(), s)
	require.NoError(t, err)
	require.Equal(t, p.base, base)
	return &relaytype.Job{ID: relay.NewJobID(), Executor: name, BaselineCommit: base, Attempt: 1, Spec: *s}
}

func (p *pipe) artifact(t *testing.T, out relay.Outcome, kind relaytype.ArtifactKind) string {
	t.Helper()
	for _, a := range out.Artifacts {
		if a.Kind == kind {
			data, err := p.arts.Read(a)
			require.NoError(t, err)
			return string(data)
		}
	}
	t.Fatalf("no %s artifact in %v", kind, out.Artifacts)
	return ""
}

func TestPipelineOutcomes(t *testing.T) {
	t.Parallel()
	p := newPipe(t, map[string]string{
		"edit":  `grep -q "two" "$1" && echo four >> f.txt && printf '### TEST_PLAN\ncheck f.txt\n### NOTES\ndone\n'`,
		"none":  `echo looked around`,
		"fail":  `echo working; echo "boom: disk on fire" >&2; exit 3`,
		"sleep": `sleep 30`,
	})
	ctx := context.Background()

	out := p.p.Handle(ctx, p.job(t, "edit", 0))
	require.Equal(t, relaytype.StateSucceeded, out.State, out.Summary)
	require.Contains(t, out.Summary, "1 file, +1 -0")
	require.Contains(t, p.artifact(t, out, relaytype.ArtifactPatch), "+four")
	require.Equal(t, "### TEST_PLAN\n\ncheck f.txt\n\n### NOTES\n\ndone\n", p.artifact(t, out, relaytype.ArtifactOut))

	out = p.p.Handle(ctx, p.job(t, "none", 0))
	require.Equal(t, relaytype.StateSucceeded, out.State)
	require.Contains(t, out.Summary, "empty patch")
	require.Equal(t, "", p.artifact(t, out, relaytype.ArtifactPatch))
	require.Equal(t, "looked around\n", p.artifact(t, out, relaytype.ArtifactOut))

	out = p.p.Handle(ctx, p.job(t, "fail", 0))
	require.Equal(t, relaytype.StateFailed, out.State)
	require.Equal(t, relaytype.ReasonExecutorError, out.Reason)
	require.Contains(t, out.Summary, "exited with code 3: boom: disk on fire")
	require.Contains(t, p.artifact(t, out, relaytype.ArtifactLogs), "working")

	out = p.p.Handle(ctx, p.job(t, "sleep", 1))
	require.Equal(t, relaytype.StateFailed, out.State)
	require.Equal(t, relaytype.ReasonTimeout, out.Reason)

	// The user's repository is untouched by all of it.
	c := exec.Command("git", "status", "--porcelain")
	c.Dir = p.repo
	st, err := c.Output()
	require.NoError(t, err)
	require.Empty(t, string(st))
}

func TestPipelineInterruptedReportsNoState(t *testing.T) {
	t.Parallel()
	p := newPipe(t, map[string]string{"sleep": `sleep 30`})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	out := p.p.Handle(ctx, p.job(t, "sleep", 0))
	require.Equal(t, relaytype.JobState(""), out.State)
}

func TestPipelineAdmit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	repo, base := gitRepo(t)
	wm, err := workspace.New(workspace.Config{Root: t.TempDir()})
	require.NoError(t, err)
	one, err := executor.NewCommand(executor.CommandConfig{Name: "one", Argv: []string{"true"}})
	require.NoError(t, err)
	mk := func(runners map[string]executor.Runner, def string) *relay.Pipeline {
		p, err := relay.NewPipeline(relay.PipelineConfig{Workspaces: wm, Artifacts: relay.ArtifactDir{Root: t.TempDir()},
			Executors: runners, DefaultExecutor: def, ConfigFile: "/cfg/config.yaml"})
		require.NoError(t, err)
		return p
	}
	spec := func(mut func(*relaytype.JobSpec)) *relaytype.JobSpec {
		s := &relaytype.JobSpec{Repo: relaytype.Repo{Type: "local", Path: repo}, Task: relaytype.Task{Title: "t", Description: "d"}, IdempotencyKey: "k"}
		mut(s)
		return s
	}
	field := func(err error) string {
		var se *relaytype.SpecError
		require.ErrorAs(t, err, &se)
		return se.Field
	}

	_, _, err = mk(nil, "").Admit(ctx, spec(func(*relaytype.JobSpec) {}))
	require.ErrorIs(t, err, relaytype.ErrNoExecutor)
	require.Contains(t, err.Error(), "/cfg/config.yaml")

	single := mk(map[string]executor.Runner{"one": one}, "")
	name, got, err := single.Admit(ctx, spec(func(*relaytype.JobSpec) {}))
	require.NoError(t, err)
	require.Equal(t, "one", name)
	require.Equal(t, base, got)

	_, _, err = single.Admit(ctx, spec(func(s *relaytype.JobSpec) { s.Execution.Executor = "two" }))
	require.Equal(t, "execution.executor", field(err))
	_, _, err = single.Admit(ctx, spec(func(s *relaytype.JobSpec) { s.Repo.Path = filepath.Join(repo, "nope") }))
	require.Equal(t, "repo.path", field(err))
	_, _, err = single.Admit(ctx, spec(func(s *relaytype.JobSpec) { s.Repo.BaseBranch = "no-such-branch" }))
	require.Equal(t, "repo.baseBranch", field(err))
	_, _, err = single.Admit(ctx, spec(func(s *relaytype.JobSpec) { s.Repo.BaselineCommit = strings.Repeat("a", 40) }))
	require.Equal(t, "repo.baselineCommit", field(err))
	_, got, err = single.Admit(ctx, spec(func(s *relaytype.JobSpec) { s.Repo.BaselineCommit = strings.ToUpper(base) }))
	require.NoError(t, err)
	require.Equal(t, base, got)

	two := mk(map[string]executor.Runner{"one": one, "two": one}, "")
	_, _, err = two.Admit(ctx, spec(func(*relaytype.JobSpec) {}))
	require.Equal(t, "execution.executor", field(err))
}

func TestRenderOut(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"sections", "chatter\n### TEST_PLAN\nrun go test\n### NOTES\nnone\n", "### TEST_PLAN\n\nrun go test\n\n### NOTES\n\nnone\n"},
		{"other heading ends a section", "### NOTES\nkeep\n### Summary\ndrop\n", "### NOTES\n\nkeep\n"},
		{"level two headings", "## Test plan\nx\n## Notes\ny\n", "### TEST_PLAN\n\nx\n\n### NOTES\n\ny\n"},
		{"no sections", "just output\n", "just output\n"},
		{"nothing", "  \n", "(the executor printed nothing)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, string(relay.RenderOut([]byte(tc.in))))
		})
	}
	long := strings.Repeat("x", 100*1024)
	require.Less(t, len(relay.RenderOut([]byte(long))), 70*1024)
}

func TestRenderPrompt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.go"), []byte("l1\nl2\nl3\nl4\n"), 0o644))
	job := &relaytype.Job{BaselineCommit: strings.Repeat("c", 40), Spec: relaytype.JobSpec{
		Repo:  relaytype.Repo{Type: "git", URL: "https://example.invalid/r.git", BaseBranch: "main"},
		Task:  relaytype.Task{Title: "Fix it", Description: "Make it work.", Acceptance: []string{"tests pass"}},
		Scope: relaytype.Scope{ReadPaths: []string{"src/", "a.go"}, DisallowReformatting: true},
		Context: &relaytype.TaskContext{KeySignatures: []string{"func A()"}, CodeSnippets: []relaytype.CodeSnippet{
			{Path: "a.go", From: 2, To: 3}, {Path: "../etc/passwd", From: 1, To: 1},
		}},
	}}
	p := relay.RenderPrompt(job, dir, "")
	for _, want := range []string{"# Task: Fix it", "Make it work.", "- tests pass", "Relevant paths: src/",
		"Do not reformat", "`func A()`", "a.go lines 2-3:\n\n```\nl2\nl3\n```", "(path outside the repository)",
		"https://example.invalid/r.git", "Baseline commit: " + strings.Repeat("c", 40), "### TEST_PLAN"} {
		require.Contains(t, p, want)
	}
	require.Equal(t, p, relay.RenderPrompt(job, dir, ""), "prompt must be deterministic")
}
