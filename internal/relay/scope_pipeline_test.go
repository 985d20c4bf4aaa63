package relay_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// hasArtifact reports whether out carries an artifact of kind.
func hasArtifact(out relay.Outcome, kind relaytype.ArtifactKind) bool {
	for _, a := range out.Artifacts {
		if a.Kind == kind {
			return true
		}
	}
	return false
}

func TestPipelineOutputContract(t *testing.T) {
	t.Parallel()
	p := newPipe(t, map[string]string{
		// The prompt the executor gets names what is required.
		"both": `grep -q "^## Required output" "$1" && grep -qF 'NOTES: a ` + "`### NOTES`" + ` section' "$1" &&
echo four >> f.txt && printf 'chatter\n## Test Plan\ncheck f.txt\n# Notes\nnone\n'`,
		"labels":  `echo four >> f.txt && printf 'Test plan:\n- cat f.txt\nNotes:\n- fine\n'`,
		"nonotes": `echo four >> f.txt && printf '### TEST_PLAN\ncheck f.txt\n'`,
		"nothing": `printf '### TEST_PLAN\nlooked\n### NOTES\n\n'`,
	})
	ctx := context.Background()
	run := func(executor string, contract ...string) relay.Outcome {
		j := p.job(t, executor, 0)
		j.Spec.OutputContract = contract
		return p.p.Handle(ctx, j)
	}
	all := []string{"DIFF", "TEST_PLAN", "NOTES"}

	out := run("both", all...)
	require.Equal(t, relaytype.StateSucceeded, out.State, out.Summary)
	require.Equal(t, "### TEST_PLAN\n\ncheck f.txt\n\n### NOTES\n\nnone\n", p.artifact(t, out, relaytype.ArtifactOut))

	out = run("labels", all...)
	require.Equal(t, relaytype.StateSucceeded, out.State, out.Summary)

	out = run("nonotes", all...)
	require.Equal(t, relaytype.StateFailed, out.State)
	require.Equal(t, relaytype.ReasonOutputContract, out.Reason)
	require.Equal(t, "outputContract: NOTES section missing from out.md", out.Summary)
	// The results are kept for the reviewer.
	require.Contains(t, p.artifact(t, out, relaytype.ArtifactPatch), "+four")
	require.Contains(t, p.artifact(t, out, relaytype.ArtifactOut), "check f.txt")

	out = run("nothing", all...)
	require.Equal(t, relaytype.ReasonOutputContract, out.Reason)
	require.Equal(t, "outputContract: DIFF missing: patch.diff is empty (the executor changed no file); NOTES section empty in out.md", out.Summary)

	out = run("nothing", "TEST_PLAN")
	require.Equal(t, relaytype.StateSucceeded, out.State, out.Summary)
	out = run("nothing")
	require.Equal(t, relaytype.StateSucceeded, out.State, "no contract, nothing required")
	out = run("nonotes")
	require.Equal(t, relaytype.StateSucceeded, out.State)
}

func TestPipelineFileGlobs(t *testing.T) {
	t.Parallel()
	p := newPipe(t, map[string]string{
		"spread": `echo four >> f.txt && mkdir -p src other && echo ok > src/ok.go && echo no > other/x.txt && echo "### NOTES" && echo spread`,
		"delete": `rm f.txt && mkdir src && echo ok > src/ok.go`,
		"rename": `mkdir src && git mv f.txt src/f.txt`,
	})
	ctx := context.Background()
	run := func(executor string, globs ...string) relay.Outcome {
		j := p.job(t, executor, 0)
		j.Spec.Scope.FileGlobs = globs
		return p.p.Handle(ctx, j)
	}

	out := run("spread", "src/**", "f.txt")
	require.Equal(t, relaytype.StateFailed, out.State)
	require.Equal(t, relaytype.ReasonPolicy, out.Reason)
	require.Equal(t, "scope.fileGlobs: the patch touches 1 path outside src/**, f.txt: other/x.txt", out.Summary)
	require.False(t, hasArtifact(out, relaytype.ArtifactPatch), "a patch out of scope is not returned")
	require.Contains(t, p.artifact(t, out, relaytype.ArtifactOut), "spread")
	require.Contains(t, p.artifact(t, out, relaytype.ArtifactLogs), "spread")

	out = run("spread", "**")
	require.Equal(t, relaytype.StateSucceeded, out.State, out.Summary)
	out = run("spread")
	require.Equal(t, relaytype.StateSucceeded, out.State, "no globs, no limit")

	out = run("delete", "src/**")
	require.Equal(t, relaytype.ReasonPolicy, out.Reason)
	require.Contains(t, out.Summary, "outside src/**: f.txt")

	out = run("rename", "src/**")
	require.Equal(t, relaytype.ReasonPolicy, out.Reason, "a rename from outside the globs")
	require.Contains(t, out.Summary, ": f.txt")
	out = run("rename", "src/**", "f.txt")
	require.Equal(t, relaytype.StateSucceeded, out.State, out.Summary)
}

func TestPipelineAdmitChecksScope(t *testing.T) {
	t.Parallel()
	p := newPipe(t, map[string]string{"x": "true"})
	s := &relaytype.JobSpec{Repo: relaytype.Repo{Type: "local", Path: p.repo}, Task: relaytype.Task{Title: "t", Description: "d"},
		Scope: relaytype.Scope{FileGlobs: []string{"src/**", "../up/*"}}, IdempotencyKey: "k"}
	_, _, err := p.p.Admit(context.Background(), s)
	var se *relaytype.SpecError
	require.ErrorAs(t, err, &se)
	require.Equal(t, "scope.fileGlobs[1]", se.Field)
	require.Contains(t, se.Message, `"../up/*"`)
}

func TestRenderPromptScopeContractAndAskPolicy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := filepath.Join(t.TempDir(), "secret.txt")
	require.NoError(t, os.WriteFile(secret, []byte("TOP-SECRET\n"), 0o600))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "src"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "src", "in.go"), []byte("inside line\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "out.go"), []byte("outside line\n"), 0o644))
	require.NoError(t, os.Symlink(secret, filepath.Join(dir, "src", "link.txt")))
	rel, err := filepath.Rel(dir, secret)
	require.NoError(t, err)
	job := &relaytype.Job{BaselineCommit: strings.Repeat("c", 40), Spec: relaytype.JobSpec{
		Repo:           relaytype.Repo{Type: "local", Path: "/src"},
		Task:           relaytype.Task{Title: "T", Description: "D"},
		Scope:          relaytype.Scope{ReadPaths: []string{"src/"}, FileGlobs: []string{"src/**/*.go"}},
		OutputContract: []string{"NOTES", "DIFF", "NOTES"},
		Context: &relaytype.TaskContext{CodeSnippets: []relaytype.CodeSnippet{
			{Path: "src/in.go", From: 1, To: 1},
			{Path: "out.go", From: 1, To: 1},
			{Path: "src/../out.go", From: 1, To: 1},
			{Path: "src/link.txt", From: 1, To: 1},
			{Path: "src/" + filepath.ToSlash(rel), From: 1, To: 1},
			{Path: secret, From: 1, To: 1},
		}},
	}}
	p := relay.RenderPrompt(job, dir, "/opt/relay/mcp-task-relay")
	require.Contains(t, p, "Relevant paths: src/ (paths from the repository root")
	require.Contains(t, p, "src/in.go lines 1-1:\n\n```\ninside line\n```")
	require.NotContains(t, p, "outside line", "snippets outside readPaths are not quoted")
	require.Contains(t, p, "Not quoted, outside the relevant paths (scope.readPaths): out.go lines 1-1; src/../out.go lines 1-1")
	require.NotContains(t, p, "TOP-SECRET", "nothing outside the workspace leaks")
	require.Contains(t, p, "src/link.txt lines 1-1:\n\n```\n(path outside the repository)\n```")
	require.Contains(t, p, "Change only files matching: src/**/*.go\n  The job FAILS (POLICY)")
	require.Contains(t, p, "This job's output contract is NOTES, DIFF. The job FAILS (OUTPUT_CONTRACT)")
	require.Contains(t, p, "- DIFF: change at least one file")
	require.Contains(t, p, "- NOTES: a `### NOTES` section")
	require.NotContains(t, p, "- TEST_PLAN:")
	require.Contains(t, p, "/opt/relay/mcp-task-relay ask --type CLARIFICATION", "other policies may ask")

	job.Spec.Execution.AskPolicy = relaytype.AskPolicyNever
	job.Spec.OutputContract = nil
	p = relay.RenderPrompt(job, dir, "/opt/relay/mcp-task-relay")
	require.Contains(t, p, "This job's execution.askPolicy is never")
	require.NotContains(t, p, " ask --type ", "a job that may not ask is not told how")
	require.NotContains(t, p, "## Required output")
}
