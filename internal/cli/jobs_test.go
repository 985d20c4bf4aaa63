package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/app"
	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
	"github.com/mcp-task-relay/mcp-task-relay/internal/httpapi"
	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/sqlite"
	"github.com/mcp-task-relay/mcp-task-relay/internal/workspace"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Executor scripts of the jobs tests. "hold" prints a line, then waits
// until the test creates $SIGDIR/$TASK_RELAY_JOB_ID.
const (
	editScript = `echo editing; echo four >> f.txt; printf '### TEST_PLAN\ncheck f.txt\n### NOTES\ndone\n'`
	holdScript = `echo step one; while [ ! -e "$SIGDIR/$TASK_RELAY_JOB_ID" ]; do sleep 0.02; done; echo step two; echo five >> f.txt`
)

// jobsGit runs git in dir and returns its trimmed output.
func jobsGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	c := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.invalid"}, args...)...)
	c.Dir = dir
	out, err := c.CombinedOutput()
	require.NoError(t, err, "git %v: %s", args, out)
	return strings.TrimSpace(string(out))
}

// jobsStack is a real relay (SQLite store, git worktrees, command
// executors) behind the real HTTP API, published in a data directory the
// way the relay service publishes itself.
type jobsStack struct {
	relay   *relay.Relay
	asks    *ask.Service
	tokens  *ask.Tokens
	url     string
	repo    string
	base    string
	project string
	sigDir  string
	env     map[string]string
}

func newJobsStack(t *testing.T) *jobsStack {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	s := &jobsStack{sigDir: t.TempDir()}

	s.repo = t.TempDir()
	jobsGit(t, s.repo, "init", "--quiet", "--initial-branch=main")
	require.NoError(t, os.WriteFile(filepath.Join(s.repo, "f.txt"), []byte("one\ntwo\nthree\n"), 0o644))
	jobsGit(t, s.repo, "add", ".")
	jobsGit(t, s.repo, "commit", "--quiet", "-m", "init")
	s.base = jobsGit(t, s.repo, "rev-parse", "HEAD")

	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "relay.db")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	wm, err := workspace.New(workspace.Config{Root: filepath.Join(t.TempDir(), "ws")})
	require.NoError(t, err)
	runners := map[string]executor.Runner{}
	for name, script := range map[string]string{"edit": editScript, "hold": holdScript} {
		c, err := executor.NewCommand(executor.CommandConfig{Name: name, Argv: []string{"/bin/sh", "-c", script},
			Env: map[string]string{"SIGDIR": s.sigDir}, Timeout: time.Minute})
		require.NoError(t, err)
		runners[name] = c
	}
	arts := relay.ArtifactDir{Root: t.TempDir()}
	var r *relay.Relay
	p, err := relay.NewPipeline(relay.PipelineConfig{Workspaces: wm, Artifacts: arts, Executors: runners, Logger: quiet,
		LogSink: func(ctx context.Context, jobID string, chunk []byte) error { return r.AppendLog(ctx, jobID, chunk) }})
	require.NoError(t, err)
	r, err = relay.New(relay.Config{Store: st, Handler: p, Artifacts: arts, Logger: quiet})
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	t.Cleanup(r.Stop)
	s.relay = r

	s.asks, err = ask.New(ask.Config{Store: st, Logger: quiet, OnChange: func(j *relaytype.Job) { r.Notify(j, true) }})
	require.NoError(t, err)
	require.NoError(t, s.asks.Start(ctx))
	t.Cleanup(s.asks.Stop)
	s.tokens, err = ask.NewTokens("tro_jobs-cli-test-operator-token")
	require.NoError(t, err)
	srv, err := httpapi.New(httpapi.Config{Asks: s.asks, Jobs: r, Tokens: s.tokens, Logger: quiet, SSEHeartbeat: 100 * time.Millisecond})
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	s.url = ts.URL

	// Publish the service as a running relay service does.
	dataDir := t.TempDir()
	info, err := json.Marshal(app.ServiceInfo{PID: os.Getpid(), Version: "test", DataDir: dataDir, Origin: ts.URL, StartedAt: time.Now()})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dataDir, app.ServiceInfoFile), info, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dataDir, ask.OperatorTokenFile), []byte(s.tokens.Operator()+"\n"), 0o600))
	s.env = map[string]string{
		"HOME":                  t.TempDir(),
		"TASK_RELAY_CONFIG_DIR": filepath.Join(t.TempDir(), ".mcp-task-relay"),
		"TASK_RELAY_DATA_DIR":   dataDir,
	}
	cfg, err := config.Load(config.Overrides{}, s.lookup)
	require.NoError(t, err)
	s.project = cfg.ConfigDir
	return s
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (s *jobsStack) lookup(k string) (string, bool) { v, ok := s.env[k]; return v, ok }

// submit queues a job of project run by executor.
func (s *jobsStack) submit(t *testing.T, project, executor, title string) *relaytype.Job {
	t.Helper()
	j, created, err := s.relay.SubmitTo(context.Background(), project, &relaytype.JobSpec{
		Repo:           relaytype.Repo{Type: "local", Path: s.repo},
		Task:           relaytype.Task{Title: title, Description: "Edit f.txt"},
		Execution:      relaytype.Execution{Executor: executor},
		IdempotencyKey: uuid.NewString(),
	})
	require.NoError(t, err)
	require.True(t, created)
	return j
}

// waitFor polls a job until cond holds.
func (s *jobsStack) waitFor(t *testing.T, id string, what string, cond func(*relaytype.Job) bool) *relaytype.Job {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		j, err := s.relay.Get(context.Background(), id)
		require.NoError(t, err)
		if cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s is %s (%s): want %s", id, j.State, j.Summary, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *jobsStack) waitState(t *testing.T, id string, want relaytype.JobState) *relaytype.Job {
	t.Helper()
	return s.waitFor(t, id, string(want), func(j *relaytype.Job) bool { return j.State == want })
}

// release lets a "hold" job finish.
func (s *jobsStack) release(t *testing.T, id string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(s.sigDir, id), nil, 0o600))
}

// syncBuffer is a bytes.Buffer safe for a command writing while the test
// reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// cliRun is the outcome of one command line.
type cliRun struct {
	code           int
	stdout, stderr string
	err            error
}

// runCLI runs the jobs and asks commands as the root command runs them,
// with env as the process environment.
func runCLI(t *testing.T, env func(string) (string, bool), stdout *syncBuffer, args ...string) cliRun {
	t.Helper()
	var stderr syncBuffer
	if stdout == nil {
		stdout = &syncBuffer{}
	}
	root := &cobra.Command{Use: "mcp-task-relay", SilenceUsage: true, SilenceErrors: true}
	root.SetIn(strings.NewReader(""))
	root.SetOut(stdout)
	root.SetErr(&stderr)
	root.AddCommand(newJobsWith(jobsEnv{lookup: env}), newAsksWith(jobsEnv{lookup: env}))
	root.SetArgs(args)
	err := root.ExecuteContext(t.Context())
	run := cliRun{stdout: stdout.String(), stderr: stderr.String(), err: err}
	if err != nil {
		var ee *exitError
		require.True(t, errors.As(err, &ee), "want an exitError, got %T: %v", err, err)
		run.code = ee.code
	}
	return run
}

func (s *jobsStack) run(t *testing.T, args ...string) cliRun {
	t.Helper()
	return runCLI(t, s.lookup, nil, args...)
}

// ok runs a command line that must succeed and returns its stdout.
func (s *jobsStack) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := s.run(t, args...)
	require.Equal(t, 0, r.code, "%v: %v\nstderr: %s", args, r.err, r.stderr)
	return r.stdout
}

// jobsFailed checks a failed run's exit code and message.
func jobsFailed(t *testing.T, r cliRun, code int, msg string) {
	t.Helper()
	require.Equal(t, code, r.code, "stdout: %s\nerr: %v", r.stdout, r.err)
	require.ErrorContains(t, r.err, msg)
}

func TestJobsListShowDiffLogs(t *testing.T) {
	t.Parallel()
	s := newJobsStack(t)
	job := s.submit(t, s.project, "edit", "Add four")
	other := s.submit(t, "/some/other/project", "edit", "Elsewhere")
	done := s.waitState(t, job.ID, relaytype.StateSucceeded)
	s.waitState(t, other.ID, relaytype.StateSucceeded)
	patch, _, err := s.relay.ReadArtifact(context.Background(), job.ID, relaytype.ArtifactPatch)
	require.NoError(t, err)
	require.Contains(t, string(patch), "+four")

	// list: this project's jobs only, unless --all-projects.
	out := s.ok(t, "jobs", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, out)
	require.Regexp(t, `^ID +STATE +AGE +EXECUTOR +TITLE$`, lines[0])
	require.Regexp(t, `^`+job.ID+` +SUCCEEDED +\d+[smhd] +edit +Add four$`, lines[1])
	all := s.ok(t, "jobs", "list", "--all-projects")
	require.Contains(t, all, job.ID)
	require.Contains(t, all, other.ID)
	require.Contains(t, all, "Elsewhere")
	require.Contains(t, s.ok(t, "jobs", "list", "--state", "failed"), "no jobs in project "+s.project)
	page := s.ok(t, "jobs", "list", "--all-projects", "--limit", "1")
	require.Contains(t, page, other.ID, "newest first")
	require.Contains(t, page, "(1 to 1 of 2; --offset 1 for more)")

	var l httpapi.JobList
	require.NoError(t, json.Unmarshal([]byte(s.ok(t, "jobs", "list", "--json")), &l))
	require.Equal(t, 1, l.Total)
	require.Equal(t, job.ID, l.Items[0].ID)
	require.Equal(t, s.project, l.Items[0].Project)

	// show
	out = s.ok(t, "jobs", "show", job.ID)
	require.Regexp(t, `(?m)^state: +SUCCEEDED$`, out)
	require.Regexp(t, `(?m)^summary: +`+regexp.QuoteMeta(done.Summary)+`$`, out)
	require.Regexp(t, `(?m)^attempts: +1 of 3$`, out)
	require.Regexp(t, `(?m)^executor: +edit$`, out)
	require.Regexp(t, `(?m)^baseline: +`+s.base+`$`, out)
	require.Regexp(t, `(?m)^usage: +0 input, 0 output tokens$`, out)
	require.Regexp(t, `(?m)^  patch\.diff +\d+ B +`+sha256Hex(patch)+`$`, out)
	require.Contains(t, out, "out.md")
	require.Contains(t, out, "logs.txt")
	var d httpapi.JobDetail
	require.NoError(t, json.Unmarshal([]byte(s.ok(t, "jobs", "show", job.ID, "--json")), &d))
	require.Equal(t, job.ID, d.Job.ID)
	require.Len(t, d.Artifacts, 3)

	// diff and logs
	require.Equal(t, string(patch), s.ok(t, "jobs", "diff", job.ID))
	var av artifactView
	require.NoError(t, json.Unmarshal([]byte(s.ok(t, "jobs", "diff", job.ID, "--json")), &av))
	require.Equal(t, string(patch), av.Text)
	require.Equal(t, sha256Hex(patch), av.Digest)
	require.Contains(t, s.ok(t, "jobs", "logs", job.ID), "editing\n")
	require.NoError(t, json.Unmarshal([]byte(s.ok(t, "jobs", "logs", job.ID, "--json")), &av))
	require.Equal(t, relaytype.ArtifactLogs, av.Kind)
	require.Contains(t, av.Text, "editing")
	// -f on an ended job prints logs.txt and returns.
	require.Contains(t, s.ok(t, "jobs", "logs", "-f", job.ID), "editing\n")

	// Errors of the relay: exit 1 with its message.
	jobsFailed(t, s.run(t, "jobs", "show", "job_NOPE"), 1, "JOB_NOT_FOUND")
	jobsFailed(t, s.run(t, "jobs", "cancel", job.ID), 1, "ILLEGAL_TRANSITION")
}

func TestJobsLogsFollowAndCancel(t *testing.T) {
	t.Parallel()
	s := newJobsStack(t)
	job := s.submit(t, s.project, "hold", "Hold")
	s.waitState(t, job.ID, relaytype.StateRunning)

	// Follow in the background until the job ends.
	var stdout syncBuffer
	followed := make(chan cliRun, 1)
	go func() { followed <- runCLI(t, s.lookup, &stdout, "jobs", "logs", "-f", job.ID) }()
	waitOutput(t, &stdout, "step one\n")

	// Without -f, a running job's output so far.
	require.Equal(t, "step one\n", s.ok(t, "jobs", "logs", job.ID))
	var jl httpapi.JobLog
	require.NoError(t, json.Unmarshal([]byte(s.ok(t, "jobs", "logs", job.ID, "--json")), &jl))
	require.Equal(t, relaytype.StateRunning, jl.State)
	require.Equal(t, "step one\n", jl.Text)

	s.release(t, job.ID)
	r := recvRun(t, followed)
	require.Equal(t, 0, r.code, "err: %v", r.err)
	require.Equal(t, "step one\nstep two\n", r.stdout)
	require.Contains(t, r.stderr, "is SUCCEEDED")
	require.Equal(t, relaytype.StateSucceeded, s.waitState(t, job.ID, relaytype.StateSucceeded).State)

	// Cancel a running job; -f on it ends with the cancel.
	held := s.submit(t, s.project, "hold", "Hold on")
	s.waitState(t, held.ID, relaytype.StateRunning)
	var jsonOut syncBuffer
	go func() { followed <- runCLI(t, s.lookup, &jsonOut, "jobs", "logs", "-f", "--json", held.ID) }()
	waitOutput(t, &jsonOut, `"type":"log"`)
	require.Equal(t, "job "+held.ID+": CANCELED\n", s.ok(t, "jobs", "cancel", held.ID))
	r = recvRun(t, followed)
	require.Equal(t, 0, r.code, "err: %v", r.err)
	var last relaytype.Event
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	for _, line := range lines {
		require.NoError(t, json.Unmarshal([]byte(line), &last), line)
	}
	require.Equal(t, relaytype.EventTransition, last.Type)
	require.Contains(t, string(last.Payload), `"to":"CANCELED"`)
	require.Equal(t, relaytype.StateCanceled, s.waitState(t, held.ID, relaytype.StateCanceled).State)

	third := s.submit(t, s.project, "hold", "Hold again")
	s.waitState(t, third.ID, relaytype.StateRunning)
	var res httpapi.CancelResult
	require.NoError(t, json.Unmarshal([]byte(s.ok(t, "jobs", "cancel", third.ID, "--json")), &res))
	require.Equal(t, httpapi.CancelResult{OK: true, JobID: third.ID, State: relaytype.StateCanceled}, res)
}

// waitOutput polls a command's output until it contains want.
func waitOutput(t *testing.T, b *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output never contained %q; got %q", want, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func recvRun(t *testing.T, ch <-chan cliRun) cliRun {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("command did not return")
		return cliRun{}
	}
}

// clone returns a clone of the stack's repository at the baseline.
func (s *jobsStack) clone(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "clone")
	jobsGit(t, filepath.Dir(dir), "clone", "--quiet", s.repo, dir)
	require.Equal(t, s.base, jobsGit(t, dir, "rev-parse", "HEAD"))
	return dir
}

func TestJobsApply(t *testing.T) {
	t.Parallel()
	s := newJobsStack(t)
	job := s.submit(t, s.project, "edit", "Add four")
	s.waitState(t, job.ID, relaytype.StateSucceeded)

	// A clean clone at the baseline: applied, staged, reported.
	dir := s.clone(t)
	out := s.ok(t, "jobs", "apply", job.ID, "--dir", dir)
	require.Contains(t, out, "applied job "+job.ID+" to "+dir)
	require.Contains(t, out, "f.txt")
	got, err := os.ReadFile(filepath.Join(dir, "f.txt"))
	require.NoError(t, err)
	require.Equal(t, "one\ntwo\nthree\nfour\n", string(got))
	require.Equal(t, "M  f.txt", jobsGit(t, dir, "status", "--porcelain"))

	// Applying again: git's reason, nothing changed.
	r := s.run(t, "jobs", "apply", job.ID, "--dir", dir)
	jobsFailed(t, r, 1, "refusing to apply")

	// An uncommitted edit of a file the patch touches: refused, the file
	// left byte for byte.
	dirty := s.clone(t)
	edited := []byte("one\ntwo\nthree\nmine, uncommitted\n")
	require.NoError(t, os.WriteFile(filepath.Join(dirty, "f.txt"), edited, 0o644))
	r = s.run(t, "jobs", "apply", job.ID, "--dir", dirty)
	jobsFailed(t, r, 1, "uncommitted changes: f.txt")
	got, err = os.ReadFile(filepath.Join(dirty, "f.txt"))
	require.NoError(t, err)
	require.Equal(t, edited, got)
	require.Equal(t, "M f.txt", jobsGit(t, dirty, "status", "--porcelain"))

	// An unrelated uncommitted file does not stand in the way; --json.
	other := s.clone(t)
	require.NoError(t, os.WriteFile(filepath.Join(other, "notes.txt"), []byte("x\n"), 0o644))
	var res applyResult
	require.NoError(t, json.Unmarshal([]byte(s.ok(t, "jobs", "apply", job.ID, "--dir", other, "--json")), &res))
	require.Equal(t, applyResult{JobID: job.ID, Dir: other, Files: []string{"f.txt"}, Applied: true}, res)

	// A committed change that conflicts: git's verdict, nothing changed.
	conflict := s.clone(t)
	require.NoError(t, os.WriteFile(filepath.Join(conflict, "f.txt"), []byte("one\ntwo\nTHREE\n"), 0o644))
	jobsGit(t, conflict, "commit", "--quiet", "-am", "mine")
	r = s.run(t, "jobs", "apply", job.ID, "--dir", conflict)
	require.Equal(t, 1, r.code, "stdout: %s", r.stdout)
	require.ErrorContains(t, r.err, "f.txt")
	require.ErrorContains(t, r.err, "nothing was changed")
	got, err = os.ReadFile(filepath.Join(conflict, "f.txt"))
	require.NoError(t, err)
	require.Equal(t, "one\ntwo\nTHREE\n", string(got))
	require.Empty(t, jobsGit(t, conflict, "status", "--porcelain"))

	// Not a checkout.
	jobsFailed(t, s.run(t, "jobs", "apply", job.ID, "--dir", t.TempDir()), 1, "not a git checkout")
}

func TestAsksListAndAnswer(t *testing.T) {
	t.Parallel()
	s := newJobsStack(t)
	job := s.submit(t, s.project, "hold", "Hold")
	s.waitState(t, job.ID, relaytype.StateRunning)
	ctx := context.Background()
	newAsk := func(typ relaytype.AskType, prompt string) *relaytype.AskRecord {
		t.Helper()
		env := relaytype.NewEnvelope("", s.base, "", "", "", nil, nil)
		raw, err := json.Marshal(env)
		require.NoError(t, err)
		h, err := env.Hash()
		require.NoError(t, err)
		rec, created, err := s.asks.Create(ctx, &relaytype.Ask{Type: "Ask", AskID: uuid.NewString(), JobID: job.ID, StepID: "s1",
			AskType: typ, Prompt: prompt, ContextHash: h, ContextEnvelope: raw})
		require.NoError(t, err)
		require.True(t, created)
		return rec
	}

	q := newAsk(relaytype.AskClarification, "Which greeting?")
	out := s.ok(t, "asks", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, out)
	require.Regexp(t, `^ASK ID +JOB +TYPE +STATUS +AGE +PROMPT$`, lines[0])
	require.Regexp(t, `^`+q.AskID+` +`+job.ID+` +CLARIFICATION +PENDING +\d+[smhd] +Which greeting\?$`, lines[1])
	require.Equal(t, "no asks\n", s.ok(t, "asks", "list", "--status", "answered"))
	var l struct {
		Items []*relaytype.AskRecord `json:"items"`
	}
	require.NoError(t, json.Unmarshal([]byte(s.ok(t, "asks", "list", "--job", job.ID, "--status", "pending", "--json")), &l))
	require.Len(t, l.Items, 1)
	require.Equal(t, q.AskID, l.Items[0].AskID)

	require.Equal(t, "ask "+q.AskID+" of job "+job.ID+": ANSWERED\n", s.ok(t, "asks", "answer", q.AskID, "--text", "hello"))
	ans, err := s.asks.AnswerOf(ctx, q.AskID)
	require.NoError(t, err)
	require.Equal(t, "hello", ans.AnswerText)
	require.Equal(t, "human", ans.Attestation.AnsweredBy)
	s.waitState(t, job.ID, relaytype.StateRunning)

	q = newAsk(relaytype.AskChoice, "Red or blue?")
	var rec relaytype.AnswerRecord
	require.NoError(t, json.Unmarshal([]byte(s.ok(t, "asks", "answer", q.AskID, "--json", `{"choice": "red"}`, "--output-json")), &rec))
	require.Equal(t, relaytype.StatusAnswered, rec.Status)
	require.JSONEq(t, `{"choice":"red"}`, string(rec.AnswerJSON))
	s.waitState(t, job.ID, relaytype.StateRunning)

	q = newAsk(relaytype.AskApproval, "May I run go test?")
	s.ok(t, "asks", "answer", q.AskID, "--approve")
	ans, err = s.asks.AnswerOf(ctx, q.AskID)
	require.NoError(t, err)
	require.Equal(t, relaytype.StatusAnswered, ans.Status)
	require.JSONEq(t, `{"approved":true}`, string(ans.AnswerJSON))
	s.waitState(t, job.ID, relaytype.StateRunning)

	// Usage errors reach no relay.
	for _, args := range [][]string{
		{"asks", "answer", q.AskID},
		{"asks", "answer", q.AskID, "--text", "a", "--approve"},
		{"asks", "answer", q.AskID, "--json", "{bad"},
		{"asks", "answer", q.AskID, "--approve", "--reason", "r"},
		{"asks", "answer"},
		{"asks", "list", "--status", "done"},
	} {
		require.Equal(t, 2, s.run(t, args...).code, "%v", args)
	}

	q = newAsk(relaytype.AskApproval, "May I delete everything?")
	s.ok(t, "asks", "answer", q.AskID, "--reject", "--reason", "no way")
	ans, err = s.asks.AnswerOf(ctx, q.AskID)
	require.NoError(t, err)
	require.Equal(t, relaytype.StatusRejected, ans.Status)
	require.Equal(t, "no way", ans.AnswerText)
	failedJob := s.waitState(t, job.ID, relaytype.StateFailed)
	require.Equal(t, relaytype.ReasonPolicy, failedJob.ReasonCode)
	// Answering again differently is the relay's conflict.
	jobsFailed(t, s.run(t, "asks", "answer", q.AskID, "--text", "ok then"), 1, "CONFLICT")
}

func TestJobsFindService(t *testing.T) {
	t.Parallel()
	s := newJobsStack(t)

	// No service published in the data dir: say how to start one.
	empty := t.TempDir()
	env := func(k string) (string, bool) {
		if k == "TASK_RELAY_DATA_DIR" {
			return empty, true
		}
		return s.lookup(k)
	}
	r := runCLI(t, env, nil, "jobs", "list")
	jobsFailed(t, r, 1, "mcp-task-relay daemon start")
	require.ErrorIs(t, r.err, app.ErrNoService)

	// A service that published itself and is gone.
	gone := httptest.NewServer(nil)
	gone.Close()
	info, err := json.Marshal(app.ServiceInfo{PID: 1, Origin: gone.URL})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(empty, app.ServiceInfoFile), info, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(empty, ask.OperatorTokenFile), []byte(s.tokens.Operator()), 0o600))
	r = runCLI(t, env, nil, "asks", "list")
	jobsFailed(t, r, 1, "daemon start")
	require.ErrorIs(t, r.err, app.ErrNoService)

	// --url and --token need neither.
	out := runCLI(t, env, nil, "jobs", "list", "--all-projects", "--url", s.url, "--token", s.tokens.Operator())
	require.Equal(t, 0, out.code, "err: %v", out.err)
	require.Equal(t, "no jobs\n", out.stdout)
	jobsFailed(t, runCLI(t, env, nil, "jobs", "list", "--all-projects", "--url", s.url, "--token", "tro_wrong-token-0123456789"), 1, "UNAUTHORIZED")

	// Usage errors exit 2.
	for _, args := range [][]string{
		{"jobs", "show"}, {"jobs", "list", "--limit", "0"}, {"jobs", "list", "--limit", "101"},
		{"jobs", "list", "--state", "done"}, {"jobs", "list", "--bogus"}, {"jobs", "bogus"},
		{"jobs", "diff", "a", "b"}, {"jobs", "list", "--url", "ftp://x", "--token", "t"},
	} {
		r := s.run(t, args...)
		require.Equal(t, 2, r.code, "%v: %v", args, r.err)
	}
}

// TestJobsUnderRoot checks that the root command has the jobs and asks
// commands, next to the executor's ask.
func TestJobsUnderRoot(t *testing.T) {
	t.Parallel()
	root := newRoot(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	names := map[string]bool{}
	for _, c := range root.Commands() {
		names[c.Name()] = true
	}
	for _, n := range []string{"jobs", "asks", "ask"} {
		require.True(t, names[n], n)
	}
	jobs, _, err := root.Find([]string{"jobs", "list"})
	require.NoError(t, err)
	for _, flag := range []string{"state", "all-projects", "limit", "json", "url", "token", "config-dir"} {
		require.NotNil(t, jobs.Flag(flag), flag)
	}
}
