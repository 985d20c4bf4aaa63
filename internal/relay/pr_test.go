package relay_test

import (
	"context"
	"encoding/json"
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

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	c := exec.Command("git", args...)
	c.Dir = dir
	out, err := c.CombinedOutput()
	require.NoError(t, err, "git %v: %s", args, out)
	return strings.TrimSpace(string(out))
}

// prPipe is a pipeline whose executor appends to f.txt, with the given
// pull-request command.
func prPipe(t *testing.T, command []string) (*relay.Pipeline, relay.ArtifactDir) {
	t.Helper()
	wm, err := workspace.New(workspace.Config{Root: filepath.Join(t.TempDir(), "ws")})
	require.NoError(t, err)
	c, err := executor.NewCommand(executor.CommandConfig{Name: "edit", Argv: []string{"/bin/sh", "-c", "echo four >> f.txt"}, Timeout: time.Minute})
	require.NoError(t, err)
	arts := relay.ArtifactDir{Root: t.TempDir()}
	p, err := relay.NewPipeline(relay.PipelineConfig{Workspaces: wm, Artifacts: arts, Executors: map[string]executor.Runner{"edit": c},
		Logger: quiet, PR: relay.PRConfig{Command: command, AuthorName: "Relay Bot", AuthorEmail: "bot@example.invalid", Timeout: time.Minute}})
	require.NoError(t, err)
	return p, arts
}

func prJob(t *testing.T, p *relay.Pipeline, repo relaytype.Repo) *relaytype.Job {
	t.Helper()
	s := &relaytype.JobSpec{Repo: repo, Task: relaytype.Task{Title: "Add four", Description: "Append four to f.txt"},
		Execution: relaytype.Execution{Executor: "edit"}, IdempotencyKey: "k", Notify: &relaytype.Notify{EnablePr: true}}
	s.ApplyDefaults()
	name, base, err := p.Admit(context.Background(), s)
	require.NoError(t, err)
	return &relaytype.Job{ID: relay.NewJobID(), Executor: name, BaselineCommit: base, Attempt: 1, Spec: *s}
}

func readPR(t *testing.T, arts relay.ArtifactDir, out relay.Outcome) relay.PRResult {
	t.Helper()
	for _, a := range out.Artifacts {
		if a.Kind == relaytype.ArtifactPR {
			data, err := os.ReadFile(filepath.Join(arts.Root, a.JobID, string(a.Kind)))
			require.NoError(t, err)
			var pr relay.PRResult
			require.NoError(t, json.Unmarshal(data, &pr))
			return pr
		}
	}
	t.Fatalf("no pr.json among %v", out.Artifacts)
	return relay.PRResult{}
}

func TestPullRequestLocalRepository(t *testing.T) {
	t.Parallel()
	repo, base := gitRepo(t)
	argsFile := filepath.Join(t.TempDir(), "args")
	p, arts := prPipe(t, []string{"/bin/sh", "-c", `printf '%s\n' "$@" > ` + argsFile + `; pwd >> ` + argsFile + `; echo creating; echo https://example.com/o/r/pull/7`,
		"gh", "{branch}", "{base}", "{title}", "{body_file}"})
	job := prJob(t, p, relaytype.Repo{Type: "local", Path: repo})
	out := p.Handle(context.Background(), job)
	require.Equal(t, relaytype.StateSucceeded, out.State, out.Summary)
	pr := readPR(t, arts, out)
	require.Empty(t, pr.Error)
	require.Equal(t, "relay/"+job.ID, pr.Branch)
	require.Equal(t, "main", pr.Base, "the repository's HEAD branch")
	require.True(t, pr.Pushed)
	require.Equal(t, "https://example.com/o/r/pull/7", pr.URL)
	require.NotNil(t, pr.ExitCode)
	require.Zero(t, *pr.ExitCode)

	// The branch is in the repository: the patch on the baseline, made by
	// the configured author.
	require.Equal(t, pr.Commit, gitOut(t, repo, "rev-parse", "refs/heads/relay/"+job.ID))
	require.Equal(t, base, gitOut(t, repo, "rev-parse", pr.Commit+"^"))
	require.Equal(t, "one\ntwo\nthree\nfour", gitOut(t, repo, "show", pr.Commit+":f.txt"))
	require.Equal(t, "Relay Bot <bot@example.invalid>", gitOut(t, repo, "log", "-1", "--format=%an <%ae>", pr.Commit))
	require.Contains(t, gitOut(t, repo, "log", "-1", "--format=%B", pr.Commit), "Add four")
	require.Contains(t, gitOut(t, repo, "log", "-1", "--format=%B", pr.Commit), job.ID)
	// The user's checkout is untouched.
	require.Equal(t, "main", gitOut(t, repo, "symbolic-ref", "--short", "HEAD"))
	require.Empty(t, gitOut(t, repo, "status", "--porcelain"))

	args, err := os.ReadFile(argsFile)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(args)), "\n")
	require.Equal(t, []string{"relay/" + job.ID, "main", "Add four"}, lines[:3])
	require.True(t, filepath.IsAbs(lines[3]), "body file %q", lines[3])
	realRepo, err := filepath.EvalSymlinks(repo)
	require.NoError(t, err)
	require.Equal(t, realRepo, lines[4], "the command runs in the repository")
}

func TestPullRequestFailureIsRecorded(t *testing.T) {
	t.Parallel()
	src, _ := gitRepo(t)
	bare := filepath.Join(t.TempDir(), "remote.git")
	gitOut(t, src, "clone", "-q", "--bare", src, bare)
	p, arts := prPipe(t, []string{"/bin/sh", "-c", "echo 'gh: not logged in' >&2; exit 4"})
	job := prJob(t, p, relaytype.Repo{Type: "git", URL: "file://" + bare, BaseBranch: "main"})
	out := p.Handle(context.Background(), job)
	require.Equal(t, relaytype.StateSucceeded, out.State, "a failing PR command does not fail the job: %s", out.Summary)
	pr := readPR(t, arts, out)
	require.True(t, pr.Pushed)
	require.Equal(t, pr.Commit, gitOut(t, bare, "rev-parse", "refs/heads/relay/"+job.ID))
	require.Empty(t, pr.URL)
	require.NotNil(t, pr.ExitCode)
	require.Equal(t, 4, *pr.ExitCode)
	require.Contains(t, pr.Error, "exited with code 4")
	require.Contains(t, pr.Error, "gh: not logged in")

	// A push that fails is recorded the same way: a branch named relay
	// leaves no room for relay/<jobId>.
	gitOut(t, bare, "update-ref", "-d", "refs/heads/relay/"+job.ID)
	gitOut(t, bare, "update-ref", "refs/heads/relay", "refs/heads/main")
	p, arts = prPipe(t, []string{"/bin/false"})
	job = prJob(t, p, relaytype.Repo{Type: "git", URL: "file://" + bare, BaseBranch: "main"})
	out = p.Handle(context.Background(), job)
	require.Equal(t, relaytype.StateSucceeded, out.State, out.Summary)
	pr = readPR(t, arts, out)
	require.False(t, pr.Pushed)
	require.NotEmpty(t, pr.Commit)
	require.Nil(t, pr.ExitCode, "no command runs after a failed push")
	require.Contains(t, pr.Error, "push: git push exited with code")
}

func TestNoPullRequestWithoutEnablePr(t *testing.T) {
	t.Parallel()
	repo, _ := gitRepo(t)
	p, _ := prPipe(t, []string{"/bin/false"})
	job := prJob(t, p, relaytype.Repo{Type: "local", Path: repo})
	job.Spec.Notify = nil
	out := p.Handle(context.Background(), job)
	require.Equal(t, relaytype.StateSucceeded, out.State, out.Summary)
	for _, a := range out.Artifacts {
		require.NotEqual(t, relaytype.ArtifactPR, a.Kind)
	}
	require.Empty(t, gitOut(t, repo, "branch", "--list", "relay/*"))
}
