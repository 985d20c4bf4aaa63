package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// PRConfig configures what a job with notify.enablePr does after it
// succeeded with a non-empty patch: commit the patch on the baseline,
// push it as branch relay/<jobId> to the job's repository, run Command.
type PRConfig struct {
	// Command opens the pull request; it runs in the repository directory
	// (repo.path of a local job, else a scratch repository whose origin
	// is repo.url). Placeholders {branch}, {base}, {title}, {body_file},
	// {job_id}, {commit} and {remote} are replaced in each argument. Empty
	// means only the branch is pushed.
	Command []string
	// Timeout bounds the commit, the push and the command together.
	// Defaults to 2 min.
	Timeout time.Duration
	// AuthorName and AuthorEmail make the commit (author and committer).
	// Default to mcp-task-relay <mcp-task-relay@localhost>.
	AuthorName, AuthorEmail string
	// BaseEnv is the environment git and the command start from (secrets
	// scrubbed by the caller). Defaults to the relay's, scrubbed.
	BaseEnv []string
}

// PRResult is the content of a job's pr.json artifact.
type PRResult struct {
	// Branch is the pushed branch, relay/<jobId>.
	Branch string `json:"branch"`
	// Base is the branch the pull request targets.
	Base string `json:"base,omitempty"`
	// Commit is the commit the relay made: the patch on the baseline.
	Commit string `json:"commit,omitempty"`
	// Remote is where the branch was pushed (repo.url without
	// credentials, or repo.path).
	Remote string `json:"remote"`
	// Pushed reports whether the push succeeded.
	Pushed bool `json:"pushed"`
	// URL is the pull request's address: the command's last non-empty
	// output line, when it is an http(s) URL.
	URL string `json:"url,omitempty"`
	// Command is the pull-request command as run.
	Command []string `json:"command,omitempty"`
	// ExitCode is the command's exit status.
	ExitCode *int `json:"exitCode,omitempty"`
	// Error says what failed (commit, push or command), with the tail of
	// its error output; empty on success.
	Error string `json:"error,omitempty"`
}

// prBranch returns the branch a job's pull request is pushed as.
func prBranch(jobID string) string { return "relay/" + jobID }

// pullRequest makes the pull request of a SUCCEEDED job that asked for one
// (notify.enablePr) and has a non-empty patch, and saves the outcome as
// pr.json. A failing commit, push or command does not fail the job: it is
// recorded in pr.json and logged. The error is only for a pr.json that
// could not be saved, or the job's context ending.
func (p *Pipeline) pullRequest(ctx context.Context, job *relaytype.Job, patch []byte, save func(relaytype.ArtifactKind, []byte) error) error {
	if job.Spec.Notify == nil || !job.Spec.Notify.EnablePr || len(bytes.TrimSpace(patch)) == 0 {
		return nil
	}
	log := p.cfg.Logger.With("job_id", job.ID)
	ReportPhase(ctx, relaytype.PhaseCollecting)
	res := p.makePR(ctx, job, patch)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if res.Error != "" {
		log.Warn("pull request failed; the job still succeeds", "branch", res.Branch, "pushed", res.Pushed, "err", res.Error)
	} else {
		log.Info("pull request opened", "branch", res.Branch, "commit", res.Commit, "url", res.URL)
	}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("encode pr.json: %w", err)
	}
	return save(relaytype.ArtifactPR, append(data, '\n'))
}

// makePR commits, pushes and runs the PR command, returning what happened.
func (p *Pipeline) makePR(ctx context.Context, job *relaytype.Job, patch []byte) *PRResult {
	cfg := p.cfg.PR
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	repo := job.Spec.Repo
	remote, shown := repo.URL, redactURL(repo.URL)
	if repo.Type == "local" {
		remote, shown = repo.Path, repo.Path
	}
	res := &PRResult{Branch: prBranch(job.ID), Remote: shown}
	failed := func(step string, err error) *PRResult {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("%w (notify.prTimeoutSec: %s)", err, timeout)
		}
		res.Error = step + ": " + err.Error()
		return res
	}
	g := &prGit{p: p, ctx: ctx}
	tmp, err := os.MkdirTemp("", "mcp-task-relay-pr-")
	if err != nil {
		return failed("commit", err)
	}
	defer os.RemoveAll(tmp)
	scratch := filepath.Join(tmp, "repo")
	if _, err := g.run(tmp, "init", "-q", scratch); err != nil {
		return failed("commit", err)
	}
	// A local repository lends its objects; a remote one sends the
	// baseline commit only.
	if repo.Type == "local" {
		common, err := g.run(repo.Path, "rev-parse", "--path-format=absolute", "--git-common-dir")
		if err != nil {
			return failed("commit", err)
		}
		alt := filepath.Join(scratch, ".git", "objects", "info", "alternates")
		if err := os.WriteFile(alt, []byte(filepath.Join(strings.TrimSpace(common), "objects")+"\n"), 0o600); err != nil {
			return failed("commit", err)
		}
	} else {
		if _, err := g.run(scratch, "remote", "add", "origin", remote); err != nil {
			return failed("commit", err)
		}
		if _, err := g.run(scratch, "fetch", "-q", "--no-tags", "--depth=1", "origin", job.BaselineCommit); err != nil {
			return failed("fetch baseline", err)
		}
	}
	patchFile, msgFile := filepath.Join(tmp, "patch.diff"), filepath.Join(tmp, "message.txt")
	msg := fmt.Sprintf("%s\n\nRelay job %s (baseline %s).\n", job.Spec.Task.Title, job.ID, short(job.BaselineCommit))
	if err := errors.Join(os.WriteFile(patchFile, patch, 0o600), os.WriteFile(msgFile, []byte(msg), 0o600)); err != nil {
		return failed("commit", err)
	}
	if _, err := g.run(scratch, "read-tree", job.BaselineCommit); err != nil {
		return failed("commit", err)
	}
	if _, err := g.run(scratch, "apply", "--cached", "--binary", patchFile); err != nil {
		return failed("commit", err)
	}
	tree, err := g.run(scratch, "write-tree")
	if err != nil {
		return failed("commit", err)
	}
	commit, err := g.run(scratch, "commit-tree", strings.TrimSpace(tree), "-p", job.BaselineCommit, "-F", msgFile)
	if err != nil {
		return failed("commit", err)
	}
	res.Commit = strings.TrimSpace(commit)
	if _, err := g.run(scratch, "push", "-q", "--no-verify", remote, res.Commit+":refs/heads/"+res.Branch); err != nil {
		return failed("push", err)
	}
	res.Pushed = true

	res.Base = repo.BaseBranch
	if res.Base == "" {
		res.Base = g.defaultBranch(repo, remote)
	}
	if len(cfg.Command) == 0 {
		return res
	}
	bodyFile := filepath.Join(tmp, "body.md")
	if err := os.WriteFile(bodyFile, []byte(prBody(job)), 0o600); err != nil {
		return failed("pull request command", err)
	}
	vals := map[string]string{
		"branch": res.Branch, "base": res.Base, "title": job.Spec.Task.Title, "body_file": bodyFile,
		"job_id": job.ID, "commit": res.Commit, "remote": res.Remote,
	}
	argv := make([]string, len(cfg.Command))
	for i, a := range cfg.Command {
		for k, v := range vals {
			// The executor package reads {{...}} as its own templates.
			a = strings.ReplaceAll(a, "{"+k+"}", strings.ReplaceAll(v, "{{", "{ {"))
		}
		argv[i] = a
	}
	res.Command = argv
	dir := scratch
	if repo.Type == "local" {
		dir = repo.Path
	}
	out, err := g.exec(dir, "notify.prCommand", argv)
	if err != nil {
		return failed("pull request command", err)
	}
	code := out.ExitCode
	res.ExitCode = &code
	switch {
	case out.TimedOut || ctx.Err() != nil:
		return failed("pull request command", fmt.Errorf("%q did not finish%s", argv[0], tailOf(out.Stderr)))
	case code != 0:
		return failed("pull request command", fmt.Errorf("%q exited with code %d%s", argv[0], code, tailOf(out.Stderr)))
	}
	if l := lastNonEmpty(out.Stdout); strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "http://") {
		if u, err := url.Parse(l); err == nil && u.Host != "" {
			res.URL = l
		}
	}
	return res
}

// prGit runs git and the PR command for makePR.
type prGit struct {
	p   *Pipeline
	ctx context.Context
}

// exec runs argv in dir under the relay's process supervision.
func (g *prGit) exec(dir, name string, argv []string) (*executor.Result, error) {
	cfg := g.p.cfg.PR
	base := cfg.BaseEnv
	if base == nil {
		base = executor.ScrubEnv(os.Environ(), nil)
	}
	env := map[string]string{
		"GIT_TERMINAL_PROMPT": "0",
		"GIT_AUTHOR_NAME":     or(cfg.AuthorName, "mcp-task-relay"), "GIT_AUTHOR_EMAIL": or(cfg.AuthorEmail, "mcp-task-relay@localhost"),
		"GIT_COMMITTER_NAME": or(cfg.AuthorName, "mcp-task-relay"), "GIT_COMMITTER_EMAIL": or(cfg.AuthorEmail, "mcp-task-relay@localhost"),
	}
	cmd, err := executor.NewCommand(executor.CommandConfig{Name: name, Argv: argv, Shim: g.p.cfg.Shim, BaseEnv: base})
	if err != nil {
		return nil, err
	}
	return cmd.Run(g.ctx, &executor.Request{Workdir: dir, Env: env, MaxOutputBytes: 1 << 20})
}

// run runs git with args in dir and returns its stdout.
func (g *prGit) run(dir string, args ...string) (string, error) {
	// No hook of any repository runs on the relay's side.
	argv := append([]string{g.p.cfg.Git, "-c", "core.hooksPath=/dev/null"}, args...)
	res, err := g.exec(dir, "git", argv)
	if err != nil {
		return "", err
	}
	if err := g.ctx.Err(); err != nil {
		return "", fmt.Errorf("git %s did not finish: %w", args[0], err)
	}
	if res.TimedOut {
		return "", fmt.Errorf("git %s did not finish in time", args[0])
	}
	if res.ExitCode != 0 {
		return "", fmt.Errorf("git %s exited with code %d%s", args[0], res.ExitCode, tailOf(res.Stderr))
	}
	return string(res.Stdout), nil
}

// defaultBranch returns the branch HEAD of the job's repository names, or
// "" when it cannot tell.
func (g *prGit) defaultBranch(repo relaytype.Repo, remote string) string {
	if repo.Type == "local" {
		out, err := g.run(repo.Path, "symbolic-ref", "--short", "-q", "HEAD")
		if err != nil {
			return ""
		}
		return strings.TrimSpace(out)
	}
	out, err := g.run(os.TempDir(), "ls-remote", "--symref", remote, "HEAD")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(out, "\n") {
		if ref, ok := strings.CutPrefix(l, "ref: refs/heads/"); ok {
			name, _, _ := strings.Cut(ref, "\t")
			return name
		}
	}
	return ""
}

// prBody is the pull request's description.
func prBody(job *relaytype.Job) string {
	var b strings.Builder
	b.WriteString(job.Spec.Task.Description)
	b.WriteString("\n")
	if len(job.Spec.Task.Acceptance) > 0 {
		b.WriteString("\n## Acceptance\n\n")
		for _, a := range job.Spec.Task.Acceptance {
			b.WriteString("- " + a + "\n")
		}
	}
	fmt.Fprintf(&b, "\n---\nMade by mcp-task-relay job `%s` from baseline `%s`.\n", job.ID, job.BaselineCommit)
	return b.String()
}

// redactURL drops the credentials of a URL (user:password@).
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = nil
	return u.String()
}

// tailOf returns ": <the last lines of out>" (at most 500 bytes), or "".
func tailOf(out []byte) string {
	s := strings.TrimSpace(string(out))
	if s == "" {
		return ""
	}
	if len(s) > 500 {
		s = "…" + s[len(s)-500:]
	}
	return ": " + s
}

// lastNonEmpty returns the last non-empty line of out, trimmed.
func lastNonEmpty(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
