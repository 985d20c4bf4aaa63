package main_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor/claude"
	"github.com/mcp-task-relay/mcp-task-relay/internal/executor/claude/claudetest"
)

// The tests here run the real Claude Code CLI (the pinned
// @anthropic-ai/claude-code in testdata/agents, found on PATH) as the
// relay's executor, pointed at a fake Anthropic Messages API (claudetest)
// on 127.0.0.1 through ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY (passed
// with executors.claude.passEnv), in a HOME of its own, with telemetry,
// error reporting, update checks and other non-essential traffic turned
// off and the fake API as its proxy for any other host (so that any
// attempt to reach the vendor shows up in Problems).

// claudeRig is a relay whose executor "claude" is the real Claude Code.
type claudeRig struct {
	api  *claudetest.Server
	s    *server
	home string // HOME of the relay and claude
	data string // the relay's data dir
	repo string
	base string
}

// claudeStart starts a relay with the claude executor (kind, model and
// passEnv only, plus executorYAML lines under it) and the relay
// environment plus env.
func claudeStart(t *testing.T, executorYAML string, env ...string) *claudeRig {
	t.Helper()
	dir := t.TempDir()
	r := &claudeRig{api: claudetest.New(t), home: filepath.Join(dir, "home"), data: filepath.Join(dir, "data")}
	require.NoError(t, os.MkdirAll(r.home, 0o700))
	r.repo, r.base = newRepo(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`server:
  dataDir: %q
executors:
  claude:
    kind: claude
    model: %s
    passEnv: [ANTHROPIC_API_KEY]
%s`, r.data, claudetest.Model, executorYAML))
	r.s = startServerEnv(t, append(claudeEnv(t, r), append([]string{"TASK_RELAY_ANSWER_RUNNER_ENABLED=false"}, env...)...),
		"--config-dir", cfg, "--storage", "sqlite", "--sqlite", filepath.Join(dir, "relay.db"))
	return r
}

// claudeEnv is the environment of a user who installed Claude Code and
// uses it with an API key: here pointed at the fake API.
func claudeEnv(t *testing.T, r *claudeRig) []string {
	t.Helper()
	env := []string{"HOME=" + r.home, "PATH=" + filepath.Dir(agentCLI(t, "claude")) + string(os.PathListSeparator) + os.Getenv("PATH")}
	for k, v := range r.api.Env() {
		env = append(env, k+"="+v)
	}
	return env
}

// claudeSpec is the seed spec without its model (the executor's is
// claudetest.Model) in the given sandbox, with askPolicy (none when
// empty).
func claudeSpec(r *claudeRig, key, sandbox, askPolicy string) map[string]any {
	s := seedSpec("file://"+r.repo, r.base, key)
	ex := s["execution"].(map[string]any)
	delete(ex, "preferredModel")
	delete(ex, "askPolicy")
	if askPolicy != "" {
		ex["askPolicy"] = askPolicy
	}
	ex["sandbox"] = sandbox
	return s
}

// claudeSubmit submits spec and returns the job's id.
func (r *claudeRig) claudeSubmit(t *testing.T, spec map[string]any) string {
	t.Helper()
	return r.s.call(t, "jobs_submit", map[string]any{"spec": spec})["jobId"].(string)
}

// claudeRun submits spec and waits for the job to end.
func (r *claudeRig) claudeRun(t *testing.T, spec map[string]any) (string, map[string]any) {
	t.Helper()
	jobID := r.claudeSubmit(t, spec)
	return jobID, r.s.waitState(t, jobID, "SUCCEEDED", "FAILED")
}

// claudeArtifact reads an artifact of a job.
func (r *claudeRig) claudeArtifact(t *testing.T, jobID, name string) string {
	t.Helper()
	return r.s.read(t, "mcp://jobs/"+jobID+"/artifacts/"+name)
}

// claudeRequireEnded fails with the job's logs unless it ended in state
// (and reason), with every scripted turn taken and no traffic elsewhere.
func (r *claudeRig) claudeRequireEnded(t *testing.T, jobID string, job map[string]any, state, reason string) {
	t.Helper()
	msg := fmt.Sprintf("job %v\nlogs:\n%s\nfake API problems: %v", job, r.claudeArtifact(t, jobID, "logs.txt"), r.api.Problems())
	require.Equal(t, state, job["state"], msg)
	if reason != "" {
		require.Equal(t, reason, job["reasonCode"], msg)
	}
	require.Empty(t, r.api.Problems(), msg)
	require.Zero(t, r.api.Pending(), "every scripted turn was taken: %s", msg)
}

// claudeRequireUsage checks that the job reports the usage and cost of
// the fake API's responses from request from on.
func (r *claudeRig) claudeRequireUsage(t *testing.T, job map[string]any, from int) {
	t.Helper()
	want := r.api.Usage(from)
	usage, ok := job["usage"].(map[string]any)
	require.True(t, ok, "job %v has no usage", job)
	require.EqualValues(t, want.Input+want.CacheCreation, usage["inputTokens"])
	require.EqualValues(t, want.CacheRead, usage["cachedInputTokens"])
	require.EqualValues(t, want.Output, usage["outputTokens"])
	require.InDelta(t, want.CostUSD(), usage["costUsd"], 1e-9, "claude prices %s", claudetest.Model)
}

// claudeAnswer waits for the job's next pending ask, answers it after
// delay with answerText and returns the ask.
func (r *claudeRig) claudeAnswer(t *testing.T, jobID string, delay time.Duration, answerText string) map[string]any {
	t.Helper()
	var item map[string]any
	waitFor(t, func() bool {
		items := r.s.call(t, "asks_list", map[string]any{"jobId": jobID})["items"].([]any)
		if len(items) == 0 {
			return false
		}
		item = items[0].(map[string]any)
		return true
	})
	if delay > 0 {
		// The point of the test: the answer comes late. Nothing to poll.
		<-time.After(delay)
	}
	r.s.call(t, "asks_answer", map[string]any{"askId": item["askId"], "answerText": answerText})
	return item
}

// claudeAsks returns every ask of a job, whatever its status.
func (r *claudeRig) claudeAsks(t *testing.T, jobID string) []any {
	t.Helper()
	return r.s.call(t, "asks_list", map[string]any{"jobId": jobID, "status": "ALL"})["items"].([]any)
}

// claudeTranscriptSession replaces the session id in saved transcripts.
const claudeTranscriptSession = "00000000-0000-4000-8000-00000000c1a0"

// claudeSaveTranscript stores claude's output of a job's run (logs.txt
// after the condensed log) for the adapter's unit tests, with the
// workspace written as /ws, its meta directory as /meta, the home as
// /home and the session id as claudeTranscriptSession, when
// CLAUDE_UPDATE_TRANSCRIPTS=1.
func (r *claudeRig) claudeSaveTranscript(t *testing.T, jobID, name string) {
	t.Helper()
	if os.Getenv("CLAUDE_UPDATE_TRANSCRIPTS") != "1" {
		return
	}
	out := r.claudeArtifact(t, jobID, "logs.txt")
	if _, rest, ok := strings.Cut(out, "--- executor output ---\n"); ok {
		out = rest
	}
	meta := filepath.Join(r.data, "workspaces", jobID)
	replace := []string{filepath.Join(meta, "repo"), "/ws", meta, "/meta", r.home, "/home", r.api.URL(), "http://127.0.0.1:PORT"}
	job := r.s.call(t, "jobs_get", map[string]any{"jobId": jobID})
	if session, _ := job["sessionId"].(string); session != "" {
		replace = append(replace, session, claudeTranscriptSession)
	}
	out = strings.NewReplacer(replace...).Replace(out)
	dir := filepath.Join("..", "..", "internal", "executor", "claude", "testdata", "transcripts")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".jsonl"), []byte(out), 0o644))
}

const claudeReport = "Greeted the relay.\n### TEST_PLAN\n- cat hello.txt\n### NOTES\n- nothing else"

// With the default configuration Claude Code edits the workspace through
// its real tools (Read, Edit, Write) and the job succeeds with the patch,
// the final message as out.md, claude's session id, and the usage and
// cost of the API's responses. The relay's MCP endpoint is wired in (its
// tools are listed from the first turn), nothing is written into the
// workspace but the edits, and claude reaches no other host.
func TestClaudeEditSucceeds(t *testing.T) {
	t.Parallel()
	longTest(t)
	r := claudeStart(t, "")
	r.api.Script(
		claudetest.Turn{Calls: []claudetest.Call{claudetest.Read(claudetest.InCwd("hello.txt"))}, Usage: claudetest.Usage{Input: 1200, Output: 30, CacheCreation: 800}},
		claudetest.Turn{Text: "Editing.", Calls: []claudetest.Call{claudetest.Edit(claudetest.InCwd("hello.txt"), "hello", "hello, relay")},
			Usage: claudetest.Usage{Input: 300, Output: 40, CacheRead: 2000}},
		claudetest.Turn{Calls: []claudetest.Call{claudetest.Write(claudetest.InCwd("notes/claude.md"), "written by claude\n")},
			Usage: claudetest.Usage{Input: 200, Output: 60, CacheRead: 2400}},
		claudetest.Turn{Text: claudeReport, Usage: claudetest.Usage{Input: 100, Output: 80, CacheRead: 2600}},
	)
	jobID, job := r.claudeRun(t, claudeSpec(r, "claude-edit", "workspace-write", ""))
	r.claudeRequireEnded(t, jobID, job, "SUCCEEDED", "")
	r.claudeSaveTranscript(t, jobID, "edit")
	r.claudeRequireUsage(t, job, 0)

	patch := r.claudeArtifact(t, jobID, "patch.diff")
	require.Contains(t, patch, "+hello, relay")
	require.Contains(t, patch, "+++ b/notes/claude.md")
	require.Equal(t, 2, strings.Count(patch, "diff --git"), "only the edits:\n%s", patch)
	require.Equal(t, claudeReport+"\n", r.claudeArtifact(t, jobID, "out.md"))
	logs := r.claudeArtifact(t, jobID, "logs.txt")
	require.Contains(t, logs, "tool: Edit hello.txt")
	require.Contains(t, logs, "tool: Write notes/claude.md")
	require.Contains(t, logs, "mode acceptEdits")

	scripted := r.api.Scripted()
	require.Len(t, scripted, 4)
	first := scripted[0]
	require.Equal(t, claudetest.Model, first.Model)
	require.Contains(t, first.Transcript(), "Test description", "the relay's prompt")
	require.Contains(t, first.System, "executor of mcp-task-relay", "the appended system prompt")
	require.Contains(t, first.Tools, "Write")
	require.Contains(t, first.Tools, claude.ClaudeAskTool, "the relay's MCP tools are there from the first turn")
	require.NotContains(t, first.Tools, claude.ClaudeApproveTool, "claude keeps its permission prompt tool from the model")
	require.Equal(t, filepath.Join(r.data, "workspaces", jobID, "repo"), first.Cwd)
	require.NotEmpty(t, job["sessionId"])
	require.FileExists(t, filepath.Join(r.home, ".claude", "projects", claudeKey(first.Cwd), job["sessionId"].(string)+".jsonl"),
		"the session is in the user's store")
	edited, ok := scripted[2].Result("Edit")
	require.True(t, ok)
	require.Contains(t, edited, "has been updated")
}

// claudeKey is claude's project key of a directory (for short paths).
func claudeKey(dir string) string {
	return regexp.MustCompile(`[^a-zA-Z0-9]`).ReplaceAllString(dir, "-")
}

// A follow-up resumes the parent's session although it runs in a new
// workspace (claude keeps sessions per directory): the model sees the
// earlier conversation, with the parent's file paths moved to the new
// workspace, the session id carries over, and the job reports only its own
// usage.
func TestClaudeFollowupResumesSession(t *testing.T) {
	t.Parallel()
	longTest(t)
	r := claudeStart(t, "")
	r.api.Script(
		claudetest.Turn{Calls: []claudetest.Call{claudetest.Write(claudetest.InCwd("greeting.txt"), "Hello, world!\n")}},
		claudetest.Turn{Text: claudeReport},
	)
	parent, job := r.claudeRun(t, claudeSpec(r, "claude-parent", "workspace-write", ""))
	r.claudeRequireEnded(t, parent, job, "SUCCEEDED", "")
	session := job["sessionId"].(string)
	require.NotEmpty(t, session)
	parentDir := r.api.Scripted()[0].Cwd

	from := len(r.api.Requests())
	r.api.Script(
		claudetest.Turn{Calls: []claudetest.Call{claudetest.Edit(claudetest.InCwd("greeting.txt"), "Hello, world!", "Hello, world!\nAnd a second line.")},
			Usage: claudetest.Usage{Input: 300, Output: 25, CacheRead: 2500}},
		claudetest.Turn{Text: "Added a second line.\n### TEST_PLAN\n- cat greeting.txt\n### NOTES\n- none",
			Usage: claudetest.Usage{Input: 310, Output: 35, CacheRead: 3000}},
	)
	follow := r.s.call(t, "jobs_followup", map[string]any{"jobId": parent, "instruction": "Now add a second line."})["jobId"].(string)
	job = r.s.waitState(t, follow, "SUCCEEDED", "FAILED")
	r.claudeRequireEnded(t, follow, job, "SUCCEEDED", "")
	r.claudeSaveTranscript(t, follow, "followup")
	require.Equal(t, session, job["sessionId"], "the same session")
	r.claudeRequireUsage(t, job, from)
	require.EqualValues(t, 610, job["usage"].(map[string]any)["inputTokens"], "not the thread's total")

	var first *claudetest.Request
	for _, req := range r.api.Requests()[from:] {
		if req.Scripted {
			first = &req
			break
		}
	}
	require.NotNil(t, first)
	require.NotEqual(t, parentDir, first.Cwd, "a new workspace")
	history := first.Transcript()
	require.Contains(t, history, "Test description", "the parent's prompt")
	require.Contains(t, history, `"file_path":"`+first.Cwd+`/greeting.txt"`, "the parent's tool call, its path moved to the new workspace")
	require.Contains(t, history, "user: result Write File created successfully at: "+first.Cwd+"/greeting.txt")
	require.Contains(t, history, "Greeted the relay.", "the parent's report")
	require.Contains(t, history, "Now add a second line.", "the follow-up's instruction")
	require.Less(t, strings.Index(history, "Greeted the relay."), strings.Index(history, "Now add a second line."))
	require.NotContains(t, string(first.Body), parentDir, "no path into the parent's workspace is left")

	edited, ok := r.api.Scripted()[len(r.api.Scripted())-1].Result("Edit")
	require.True(t, ok)
	require.Contains(t, edited, "has been updated", "the edit by the old path's new location was accepted")
	inc := r.claudeArtifact(t, follow, "incremental.diff")
	require.Contains(t, inc, "+And a second line.")
	full := r.claudeArtifact(t, follow, "patch.diff")
	require.Contains(t, full, "+Hello, world!")
}

// A read-only job runs claude in dontAsk mode without its write tools and
// without the permission prompt tool: a write the model tries anyway is
// refused without an approval ask, and the job ends without a patch. When a
// write gets through all the same (here the user's own claude settings
// allow the command), the relay fails the job (POLICY).
func TestClaudeReadOnly(t *testing.T) {
	t.Parallel()
	longTest(t)
	t.Run("writes refused", func(t *testing.T) {
		t.Parallel()
		r := claudeStart(t, "")
		r.api.Script(
			claudetest.Turn{Calls: []claudetest.Call{claudetest.Write(claudetest.InCwd("hello.txt"), "Hello\n")}},
			claudetest.Turn{Calls: []claudetest.Call{claudetest.Bash("echo changed > hello.txt")}},
			claudetest.Turn{Calls: []claudetest.Call{claudetest.Bash("git status --short")}},
			claudetest.Turn{Text: "This job is read-only; I would change hello.txt."},
		)
		jobID, job := r.claudeRun(t, claudeSpec(r, "claude-ro", "read-only", "on-request"))
		r.claudeRequireEnded(t, jobID, job, "SUCCEEDED", "")
		r.claudeSaveTranscript(t, jobID, "read-only")
		require.Contains(t, job["summary"], "changed nothing")
		require.Empty(t, strings.TrimSpace(r.claudeArtifact(t, jobID, "patch.diff")))
		require.Empty(t, r.claudeAsks(t, jobID), "nothing was put to relay_approve")

		scripted := r.api.Scripted()
		require.NotContains(t, scripted[0].Tools, "Write")
		require.NotContains(t, scripted[0].Tools, "Edit")
		require.Contains(t, scripted[0].Tools, claude.ClaudeAskTool, "a read-only job can still ask")
		require.Contains(t, scripted[0].System, "This job is read-only")
		res, _ := scripted[1].Result("Write")
		require.Contains(t, res, "No such tool available: Write")
		res, _ = scripted[2].Result("Bash")
		require.Contains(t, res, "don't ask mode")
		res, _ = scripted[3].Result("Bash")
		require.NotContains(t, res, "denied", "allowed read-only commands run")
		logs := r.claudeArtifact(t, jobID, "logs.txt")
		require.Contains(t, logs, "mode dontAsk")
		require.Contains(t, logs, "denied: Bash echo changed > hello.txt")
	})
	t.Run("write let through", func(t *testing.T) {
		t.Parallel()
		r := claudeStart(t, "")
		require.NoError(t, os.MkdirAll(filepath.Join(r.home, ".claude"), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(r.home, ".claude", "settings.json"),
			[]byte(`{"permissions": {"allow": ["Bash(touch:*)"]}}`), 0o600))
		r.api.Script(
			claudetest.Turn{Calls: []claudetest.Call{claudetest.Bash("touch touched.txt")}},
			claudetest.Turn{Text: "Touched a file."},
		)
		jobID, job := r.claudeRun(t, claudeSpec(r, "claude-ro-write", "read-only", ""))
		r.claudeRequireEnded(t, jobID, job, "FAILED", "POLICY")
		require.Contains(t, job["summary"], "read-only")
		require.Contains(t, job["summary"], "1 file")
		for _, a := range job["artifacts"].([]any) {
			require.NotEqual(t, "patch.diff", a.(map[string]any)["kind"], "a read-only job returns no patch")
		}
	})
}

// execution.askPolicy picks claude's permission mode: untrusted puts every
// edit to relay_approve (here approved, so the file is written); never
// asks nothing, accepts edits inside the workspace and denies any other
// command.
func TestClaudeAskPolicyModes(t *testing.T) {
	t.Parallel()
	longTest(t)
	t.Run("untrusted", func(t *testing.T) {
		t.Parallel()
		r := claudeStart(t, "")
		r.api.Script(
			claudetest.Turn{Calls: []claudetest.Call{claudetest.Write(claudetest.InCwd("approved.txt"), "approved\n")}},
			claudetest.Turn{Text: "Wrote approved.txt."},
		)
		jobID := r.claudeSubmit(t, claudeSpec(r, "claude-untrusted", "workspace-write", "untrusted"))
		ask := r.claudeAnswer(t, jobID, 0, "yes")
		job := r.s.waitState(t, jobID, "SUCCEEDED", "FAILED")
		r.claudeRequireEnded(t, jobID, job, "SUCCEEDED", "")
		require.Equal(t, "APPROVAL", ask["askType"])
		require.Contains(t, ask["prompt"], "Write")
		require.Contains(t, ask["prompt"], "approved.txt")
		require.Contains(t, r.claudeArtifact(t, jobID, "patch.diff"), "+approved")
		require.Contains(t, r.claudeArtifact(t, jobID, "logs.txt"), "mode default")
	})
	t.Run("never", func(t *testing.T) {
		t.Parallel()
		r := claudeStart(t, "")
		r.api.Script(
			claudetest.Turn{Calls: []claudetest.Call{claudetest.Write(claudetest.InCwd("written.txt"), "written\n")}},
			claudetest.Turn{Calls: []claudetest.Call{claudetest.Bash(`sh -c 'echo shell > shell.txt'`)}},
			claudetest.Turn{Calls: []claudetest.Call{claudetest.Write(filepath.Join(r.home, "outside.txt"), "outside\n")}},
			claudetest.Turn{Text: "Done."},
		)
		jobID, job := r.claudeRun(t, claudeSpec(r, "claude-never", "workspace-write", "never"))
		r.claudeRequireEnded(t, jobID, job, "SUCCEEDED", "")
		require.Empty(t, r.claudeAsks(t, jobID))
		patch := r.claudeArtifact(t, jobID, "patch.diff")
		require.Contains(t, patch, "+written")
		require.NotContains(t, patch, "shell.txt")
		require.NoFileExists(t, filepath.Join(r.home, "outside.txt"))
		scripted := r.api.Scripted()
		res, _ := scripted[2].Result("Bash")
		require.Contains(t, res, "requires approval")
		res, _ = scripted[3].Result("Write")
		require.Contains(t, res, "haven't granted it yet")
	})
}

// claudeRelayAsk has the model call relay_ask and checks that the answer,
// given after delay, reaches it.
func claudeRelayAsk(t *testing.T, delay time.Duration) {
	r := claudeStart(t, "")
	r.api.Script(
		claudetest.Turn{Calls: []claudetest.Call{claudetest.MCP(claude.ClaudeMCPServer, "relay_ask",
			map[string]any{"type": "CLARIFICATION", "prompt": "Which greeting should hello.txt contain?"})}},
		claudetest.Turn{Text: "Asked the relay.\n### TEST_PLAN\n- none\n### NOTES\n- none"},
	)
	jobID := r.claudeSubmit(t, claudeSpec(r, "claude-ask", "workspace-write", ""))
	item := r.claudeAnswer(t, jobID, delay, "Bonjour, relay!")
	job := r.s.waitState(t, jobID, "SUCCEEDED", "FAILED")
	r.claudeRequireEnded(t, jobID, job, "SUCCEEDED", "")
	if delay == 0 {
		r.claudeSaveTranscript(t, jobID, "relay-ask")
	}
	require.Equal(t, "CLARIFICATION", item["askType"])
	require.Equal(t, "Which greeting should hello.txt contain?", item["prompt"])
	res, ok := r.api.Scripted()[1].Result(claude.ClaudeAskTool)
	require.True(t, ok)
	require.Contains(t, res, `"answerText":"Bonjour, relay!"`)
	require.Contains(t, res, `"status":"ANSWERED"`)
}

// claudeRelayApprove has the model run a command outside the allowed
// tools, which claude puts to relay_approve; the approval, given after
// delay, reaches claude and the command runs.
func claudeRelayApprove(t *testing.T, delay time.Duration) {
	r := claudeStart(t, "")
	r.api.Script(
		claudetest.Turn{Calls: []claudetest.Call{claudetest.Bash(`sh -c 'echo deployed > deployed.txt'`)}},
		claudetest.Turn{Text: "Deployed.\n### TEST_PLAN\n- none\n### NOTES\n- none"},
	)
	jobID := r.claudeSubmit(t, claudeSpec(r, "claude-approve", "workspace-write", "on-request"))
	item := r.claudeAnswer(t, jobID, delay, "yes")
	job := r.s.waitState(t, jobID, "SUCCEEDED", "FAILED")
	r.claudeRequireEnded(t, jobID, job, "SUCCEEDED", "")
	require.Equal(t, "APPROVAL", item["askType"])
	require.Contains(t, item["prompt"], "echo deployed")
	require.Contains(t, r.claudeArtifact(t, jobID, "patch.diff"), "+deployed", "the approved command ran")
}

// Claude asks through the relay's MCP endpoint: relay_ask calls and its
// permission prompts (relay_approve) become asks, and the answers reach it.
func TestClaudeRelayToolsOverMCP(t *testing.T) {
	t.Parallel()
	longTest(t)
	t.Run("relay_ask", func(t *testing.T) { t.Parallel(); claudeRelayAsk(t, 0) })
	t.Run("relay_approve", func(t *testing.T) { t.Parallel(); claudeRelayApprove(t, 0) })
}

// The README has users register the relay as "task-relay" for their own
// claude, in ~/.claude.json or a project's .mcp.json, which the job's
// checkout then has: the run's --mcp-config server of the same name wins,
// the user's (here a stdio server leaving a mark) is not started, and
// relay_ask reaches the job's relay.
func TestClaudeRunServerWinsOverUsersTaskRelay(t *testing.T) {
	t.Parallel()
	longTest(t)
	r := claudeStart(t, "")
	mark := filepath.Join(r.home, "users-server-started")
	server := `{"mcpServers":{"task-relay":{"type":"stdio","command":"/bin/sh","args":["-c","touch ` + mark + `; sleep 5"]}}}`
	require.NoError(t, os.WriteFile(filepath.Join(r.repo, ".mcp.json"), []byte(server), 0o644))
	git(t, r.repo, "add", ".mcp.json")
	git(t, r.repo, "commit", "--quiet", "-m", "mcp")
	r.base = git(t, r.repo, "rev-parse", "HEAD")
	require.NoError(t, os.WriteFile(filepath.Join(r.home, ".claude.json"), []byte(server), 0o600))
	require.NoError(t, os.MkdirAll(filepath.Join(r.home, ".claude"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(r.home, ".claude", "settings.json"), []byte(`{"enableAllProjectMcpServers": true}`), 0o600))
	r.api.Script(
		claudetest.Turn{Calls: []claudetest.Call{claudetest.MCP(claude.ClaudeMCPServer, "relay_ask",
			map[string]any{"type": "CHOICE", "prompt": "Tabs or spaces?"})}},
		claudetest.Turn{Text: "Asked the relay."},
	)
	jobID := r.claudeSubmit(t, claudeSpec(r, "claude-user-server", "workspace-write", ""))
	item := r.claudeAnswer(t, jobID, 0, "tabs")
	job := r.s.waitState(t, jobID, "SUCCEEDED", "FAILED")
	r.claudeRequireEnded(t, jobID, job, "SUCCEEDED", "")
	require.Equal(t, "Tabs or spaces?", item["prompt"])
	res, _ := r.api.Scripted()[1].Result(claude.ClaudeAskTool)
	require.Contains(t, res, `"answerText":"tabs"`)
	require.NoFileExists(t, mark)
}

// An answer that comes after 90 s still reaches the model: the run's MCP
// timeouts (the server's request and tool timeouts, 60 s by default, and
// the idle timeout) are above the ask deadline.
func TestClaudeLongRelayAskAnsweredAfter90s(t *testing.T) {
	t.Parallel()
	longTest(t)
	claudeRelayAsk(t, 90*time.Second)
}

// As TestClaudeLongRelayAskAnsweredAfter90s, for a permission prompt:
// the approval comes after 90 s and the command runs.
func TestClaudeLongRelayApproveAnsweredAfter90s(t *testing.T) {
	t.Parallel()
	longTest(t)
	claudeRelayApprove(t, 90*time.Second)
}

// claudeAskCommand has the model run the relay's ask command by its
// absolute path, as the prompt says, and checks that claude runs it
// without a permission prompt and that the answer, given after delay,
// reaches the model.
func claudeAskCommand(t *testing.T, delay time.Duration) {
	r := claudeStart(t, "")
	r.api.Script(
		claudetest.Turn{Calls: []claudetest.Call{claudetest.Bash(binary + ` ask --type CLARIFICATION "Which greeting should hello.txt contain?"`)}},
		claudetest.Turn{Text: "Asked the relay.\n### TEST_PLAN\n- none\n### NOTES\n- none"},
	)
	jobID := r.claudeSubmit(t, claudeSpec(r, "claude-ask-command", "workspace-write", "untrusted"))
	item := r.claudeAnswer(t, jobID, delay, "Bonjour, relay!")
	job := r.s.waitState(t, jobID, "SUCCEEDED", "FAILED")
	r.claudeRequireEnded(t, jobID, job, "SUCCEEDED", "")
	require.Equal(t, "CLARIFICATION", item["askType"], "the only ask: no approval of the command")
	require.Len(t, r.claudeAsks(t, jobID), 1)
	res, ok := r.api.Scripted()[1].Result("Bash")
	require.True(t, ok)
	require.Contains(t, res, "Bonjour, relay!")
	require.Contains(t, r.api.Scripted()[0].Transcript(), binary+" ask --type CLARIFICATION", "the prompt names the command")
}

// The prompt tells the agent to ask with the relay's ask command: claude
// runs it (and the answer reaches the model) even in untrusted mode.
func TestClaudeAskCommand(t *testing.T) {
	t.Parallel()
	longTest(t)
	claudeAskCommand(t, 0)
}

// An answer to the ask command that comes after 150 s still reaches the
// model: claude would kill a Bash command after 2 min; the run's default
// Bash timeout is above the ask deadline.
func TestClaudeLongAskCommandAnsweredAfter150s(t *testing.T) {
	t.Parallel()
	longTest(t)
	claudeAskCommand(t, 150*time.Second)
}

// A budget stop (--max-budget-usd: claude ends with error_max_budget_usd
// once its cost, at the model's known prices, passes the budget) fails the
// job with POLICY, not EXECUTOR_ERROR, with claude's own message.
func TestClaudeBudgetStopIsPolicy(t *testing.T) {
	t.Parallel()
	longTest(t)
	r := claudeStart(t, "")
	r.api.Script(
		claudetest.Turn{Calls: []claudetest.Call{claudetest.Bash("git status")}},
		claudetest.Turn{Calls: []claudetest.Call{claudetest.Bash("git log --oneline")}},
	)
	spec := claudeSpec(r, "claude-budget", "workspace-write", "")
	spec["execution"].(map[string]any)["maxBudgetUsd"] = 0.005
	jobID, job := r.claudeRun(t, spec)
	r.claudeRequireEnded(t, jobID, job, "FAILED", "POLICY")
	r.claudeSaveTranscript(t, jobID, "budget")
	require.Contains(t, job["summary"], "stopped at the job's budget")
	require.Contains(t, job["summary"], "Reached maximum budget ($0.005)")
	r.claudeRequireUsage(t, job, 0)
	require.Greater(t, job["usage"].(map[string]any)["costUsd"], 0.005)
}

// Claude's own error text (the result's errors) reaches the job's
// summary: here the turn limit of the executor's maxTurns.
func TestClaudeFailureSummary(t *testing.T) {
	t.Parallel()
	longTest(t)
	r := claudeStart(t, "    maxTurns: 1\n")
	r.api.Script(
		claudetest.Turn{Calls: []claudetest.Call{claudetest.Bash("git status")}},
	)
	jobID, job := r.claudeRun(t, claudeSpec(r, "claude-turns", "workspace-write", ""))
	r.claudeRequireEnded(t, jobID, job, "FAILED", "EXECUTOR_ERROR")
	r.claudeSaveTranscript(t, jobID, "max-turns")
	require.Contains(t, job["summary"], "error_max_turns")
	require.Contains(t, job["summary"], "Reached maximum number of turns (1)")

	r.api.Script(claudetest.Turn{Error: &claudetest.APIError{Status: 400, Type: "invalid_request_error", Message: "prompt is too long: 250000 tokens > 200000 maximum"}})
	jobID, job = r.claudeRun(t, claudeSpec(r, "claude-api-error", "workspace-write", ""))
	r.claudeRequireEnded(t, jobID, job, "FAILED", "EXECUTOR_ERROR")
	r.claudeSaveTranscript(t, jobID, "api-error")
	require.Contains(t, job["summary"], "(API status 400): Prompt is too long")
}

// doctor runs claude's own checks: the version and the auth mode, and
// fails without credentials.
func TestClaudeDoctor(t *testing.T) {
	t.Parallel()
	longTest(t)
	api := claudetest.New(t)
	home := t.TempDir()
	doctor := func(passEnv string) (string, int) {
		dir := t.TempDir()
		cfg := writeConfig(t, dir, "executors:\n  claude:\n    kind: claude\n"+passEnv)
		cmd := exec.Command(binary, "doctor", "--config-dir", cfg, "--storage", "memory")
		cmd.Env = append(os.Environ(), "HOME="+home, "TASK_RELAY_DATA_DIR="+filepath.Join(dir, "data"),
			"PATH="+filepath.Dir(agentCLI(t, "claude"))+string(os.PathListSeparator)+os.Getenv("PATH"))
		for k, v := range api.Env() {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return buf.String(), ee.ExitCode()
		}
		require.NoError(t, err)
		return buf.String(), 0
	}
	report, _ := doctor("    passEnv: [ANTHROPIC_API_KEY]\n")
	require.Regexp(t, `(?m)^agent claude\s+ok\s+claude 2\.1\.197: auth api_key \(ANTHROPIC_API_KEY, base URL http://127\.0\.0\.1:\d+\); permission mode acceptEdits`, report)
	report, code := doctor("")
	require.Equal(t, 1, code, report)
	require.Regexp(t, `(?m)^agent claude\s+FAIL\s+.*claude is not authenticated: no API key and no login`, report)
	require.Contains(t, report, "passEnv: [ANTHROPIC_API_KEY]")
	require.Empty(t, api.Problems())
	require.Empty(t, api.Requests(), "doctor does not call the model")
}
