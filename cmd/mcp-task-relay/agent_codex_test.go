package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
	"github.com/mcp-task-relay/mcp-task-relay/internal/executor/codex"
	"github.com/mcp-task-relay/mcp-task-relay/internal/executor/codex/codextest"
)

// The tests below run the real Codex CLI (@openai/codex, pinned in
// testdata/agents) as the relay's codex executor, against a fake
// Responses API (codextest) in an isolated CODEX_HOME. Set
// CODEX_UPDATE_TRANSCRIPTS=1 to store the CLI's output of each run under
// internal/executor/codex/testdata/transcripts, where the adapter's unit
// tests read it.

// codexRelay is a relay with one executor, codex, run against model.
type codexRelay struct {
	*server
	model      *codextest.Server
	home       *codextest.Home
	repo, base string
	// dataDir is the relay's data directory; the workspaces are below it.
	dataDir string
}

// codexStart starts the relay with the real codex as its default
// executor, in a home of its own pointed at model. extra, when set, is one
// more key of the executor's YAML (e.g. "extraArgs: [...]").
func codexStart(t *testing.T, model *codextest.Server, extra string) *codexRelay {
	t.Helper()
	bin := agentCLI(t, "codex")
	dir := t.TempDir()
	repo, base := newRepo(t)
	home := model.NewHome(t, "")
	var env strings.Builder
	keys := make([]string, 0, len(home.Env))
	for k := range home.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&env, "        %s: %q\n", k, home.Env[k])
	}
	if extra != "" {
		extra = "    " + extra + "\n"
	}
	cfg := writeConfig(t, dir, fmt.Sprintf(`server:
  dataDir: %q
executors:
  default: codex
  codex:
    kind: codex
    binary: %q
    timeoutS: 120
    env:
%s%s`, filepath.Join(dir, "data"), bin, env.String(), extra))
	s := startServer(t, "--config-dir", cfg, "--storage", "sqlite", "--sqlite", filepath.Join(dir, "relay.db"))
	return &codexRelay{server: s, model: model, home: home, repo: repo, base: base, dataDir: filepath.Join(dir, "data")}
}

// codexSpec is the seed spec for codex: the model the fake server plays
// and the sandbox given.
func codexSpec(r *codexRelay, key, sandbox string) map[string]any {
	s := seedSpec("file://"+r.repo, r.base, key)
	ex := s["execution"].(map[string]any)
	ex["preferredModel"] = codextest.Model
	ex["sandbox"] = sandbox
	return s
}

// codexRun submits spec and waits for the job to end.
func (r *codexRelay) codexRun(t *testing.T, spec map[string]any) (string, map[string]any) {
	t.Helper()
	jobID := r.call(t, "jobs_submit", map[string]any{"spec": spec})["jobId"].(string)
	return jobID, r.waitState(t, jobID, "SUCCEEDED", "FAILED", "CANCELED")
}

// codexArtifact reads an artifact of a job.
func (r *codexRelay) codexArtifact(t *testing.T, jobID, name string) string {
	t.Helper()
	return r.read(t, "mcp://jobs/"+jobID+"/artifacts/"+name)
}

// codexRequireUsage checks a job's usage against what the fake model
// reported in its responses.
func codexRequireUsage(t *testing.T, want codextest.Usage, job map[string]any) {
	t.Helper()
	u, _ := job["usage"].(map[string]any)
	require.NotNil(t, u, "job %v has no usage", job)
	require.EqualValues(t, want.Input, u["inputTokens"], "usage %v", u)
	require.EqualValues(t, want.Output, u["outputTokens"], "usage %v", u)
	require.EqualValues(t, want.Cached, u["cachedInputTokens"], "usage %v", u)
}

// codexClean checks that codex reached nothing but the fake model and
// that the model's script was followed to its end.
func (r *codexRelay) codexClean(t *testing.T) {
	t.Helper()
	require.Empty(t, r.model.Outbound(), "codex tried to reach other hosts")
	require.Empty(t, r.model.Unexpected())
	require.Zero(t, r.model.Pending(), "turns of the script were not asked for")
}

// codexTranscriptSession stands for codex's thread id in stored
// transcripts.
const codexTranscriptSession = "01a21d97-0000-7000-8000-00000000c0de"

// codexSaveTranscript stores the CLI's output of a job's run (logs.txt
// after the condensed log, if any) for the adapter's unit tests, with the
// workspace written as /ws, its meta directory as /meta, the home as
// /home and codex's thread id as codexTranscriptSession, when
// CODEX_UPDATE_TRANSCRIPTS=1.
func (r *codexRelay) codexSaveTranscript(t *testing.T, jobID, name string) {
	t.Helper()
	if os.Getenv("CODEX_UPDATE_TRANSCRIPTS") != "1" {
		return
	}
	logs := r.codexArtifact(t, jobID, "logs.txt")
	out := logs
	if _, rest, ok := strings.Cut(logs, "--- executor output ---\n"); ok {
		out = rest
	}
	meta := filepath.Join(r.dataDir, "workspaces", jobID)
	job := r.call(t, "jobs_get", map[string]any{"jobId": jobID})
	replace := []string{filepath.Join(meta, "repo"), "/ws", meta, "/meta", r.home.Dir, "/home"}
	if session, _ := job["sessionId"].(string); session != "" {
		replace = append(replace, session, codexTranscriptSession)
	}
	out = strings.NewReplacer(replace...).Replace(out)
	dir := filepath.Join("..", "..", "internal", "executor", "codex", "testdata", "transcripts")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".jsonl"), []byte(out), 0o644))
}

// An edit: codex applies a patch and runs a command as the fake model
// says, and the job succeeds with the change as its patch, the final
// message as out.md, the session id and the tokens the model reported.
func TestCodexEditSucceeds(t *testing.T) {
	t.Parallel()
	longTest(t)
	final := "Added a line to hello.txt.\n\n### TEST_PLAN\n- cat hello.txt\n\n### NOTES\n- nothing else"
	model := codextest.New(t,
		codextest.ReplyUsage(codextest.Usage{Input: 1000, Cached: 100, Output: 40},
			codextest.ApplyPatch("call_patch", "*** Begin Patch\n*** Update File: hello.txt\n@@\n hello\n+edited by codex\n*** Add File: notes/codex.md\n+# Notes\n*** End Patch\n")),
		codextest.ReplyUsage(codextest.Usage{Input: 1100, Cached: 900, Output: 30},
			codextest.ExecCommand("call_cat", "cat hello.txt")),
		codextest.ReplyUsage(codextest.Usage{Input: 1200, Cached: 1000, Output: 60, Reasoning: 7},
			codextest.Message(final)),
	)
	r := codexStart(t, model, "")
	jobID, job := r.codexRun(t, codexSpec(r, "codex-edit", "workspace-write"))
	require.Equal(t, "SUCCEEDED", job["state"], "job %v\nlogs: %s", job, r.codexArtifact(t, jobID, "logs.txt"))
	r.codexSaveTranscript(t, jobID, "edit")

	patch := r.codexArtifact(t, jobID, "patch.diff")
	require.Contains(t, patch, "+edited by codex")
	require.Contains(t, patch, "notes/codex.md")
	require.Equal(t, final+"\n", r.codexArtifact(t, jobID, "out.md"))
	require.Contains(t, r.codexArtifact(t, jobID, "logs.txt"), "changed: update hello.txt, add notes/codex.md")

	reqs := model.Requests()
	require.Len(t, reqs, 3)
	require.NotEmpty(t, reqs[0].SessionID())
	require.Equal(t, reqs[0].SessionID(), job["sessionId"], "the job's session is codex's thread")
	require.Equal(t, codextest.Model, reqs[0].Model)
	require.Equal(t, "Bearer "+codextest.Key, reqs[0].Header.Get("Authorization"), "the key comes from the provider's env_key")
	require.True(t, reqs[0].HasTool("apply_patch") && reqs[0].HasTool("exec_command"), "tools %v", reqs[0].Tools)
	user := strings.Join(reqs[0].Texts("user"), "\n")
	require.Contains(t, user, "# Task: Test Task", "the relay's prompt is the user message")
	patched, ok := reqs[1].ToolOutput("call_patch")
	require.True(t, ok)
	require.Contains(t, patched, "Success")
	cat, ok := reqs[2].ToolOutput("call_cat")
	require.True(t, ok)
	require.Contains(t, cat, "hello\nedited by codex")
	// codex's turn.completed states the thread's total, which for a new
	// thread is what the model reported in this run.
	codexRequireUsage(t, model.ServedTotal(0), job)
	r.codexClean(t)
}

// A follow-up resumes the parent's codex session (`codex exec resume`):
// the model gets the earlier conversation with the new instruction, the
// job keeps the session id, and it reports only its own run's tokens
// although codex states the thread's running total.
func TestCodexFollowupResumesSession(t *testing.T) {
	t.Parallel()
	longTest(t)
	parentUsage := []codextest.Usage{{Input: 5000, Cached: 1000, Output: 300}, {Input: 5200, Cached: 5000, Output: 100}}
	ownUsage := []codextest.Usage{{Input: 7000, Cached: 6000, Output: 70}, {Input: 7100, Cached: 7000, Output: 20}}
	model := codextest.New(t,
		codextest.ReplyUsage(parentUsage[0],
			codextest.ApplyPatch("call_first", "*** Begin Patch\n*** Update File: hello.txt\n@@\n hello\n+first line\n*** End Patch\n")),
		codextest.ReplyUsage(parentUsage[1], codextest.Message("First line added.\n\n### TEST_PLAN\n- none\n\n### NOTES\n- parent")),
		codextest.ReplyUsage(ownUsage[0],
			codextest.ApplyPatch("call_second", "*** Begin Patch\n*** Update File: hello.txt\n@@\n hello\n first line\n+second line\n*** End Patch\n")),
		codextest.ReplyUsage(ownUsage[1], codextest.Message("Second line added.\n\n### TEST_PLAN\n- none\n\n### NOTES\n- follow-up")),
	)
	r := codexStart(t, model, "")
	parent, pjob := r.codexRun(t, codexSpec(r, "codex-followup", "workspace-write"))
	require.Equal(t, "SUCCEEDED", pjob["state"], "job %v\nlogs: %s", pjob, r.codexArtifact(t, parent, "logs.txt"))
	r.codexSaveTranscript(t, parent, "followup-parent")
	codexRequireUsage(t, parentUsage[0].Plus(parentUsage[1]), pjob)
	session := pjob["sessionId"].(string)
	require.NotEmpty(t, session)

	follow := r.call(t, "jobs_followup", map[string]any{"jobId": parent, "instruction": "Now add a second line."})["jobId"].(string)
	job := r.waitState(t, follow, "SUCCEEDED", "FAILED")
	require.Equal(t, "SUCCEEDED", job["state"], "job %v\nlogs: %s", job, r.codexArtifact(t, follow, "logs.txt"))
	r.codexSaveTranscript(t, follow, "followup-resumed")
	require.Equal(t, session, job["sessionId"], "the follow-up continues the same codex thread")
	codexRequireUsage(t, ownUsage[0].Plus(ownUsage[1]), job)

	reqs := model.Requests()
	require.Len(t, reqs, 4)
	resumed := reqs[2]
	require.Equal(t, session, resumed.SessionID())
	user := resumed.Texts("user")
	require.Contains(t, strings.Join(user, "\n"), "# Task: Test Task", "the parent's prompt is in the history")
	require.Contains(t, user[len(user)-1], "Now add a second line.", "the follow-up's prompt comes last")
	require.Contains(t, resumed.Texts("assistant"), "First line added.\n\n### TEST_PLAN\n- none\n\n### NOTES\n- parent")
	out, ok := resumed.ToolOutput("call_first")
	require.True(t, ok, "the parent's tool call and its output are in the history")
	require.Contains(t, out, "Success")
	require.Contains(t, strings.Join(user, "\n"), "<cwd>"+filepath.Join(r.dataDir, "workspaces", follow, "repo")+"</cwd>",
		"the resumed turn runs in the follow-up's workspace")

	full := r.codexArtifact(t, follow, "patch.diff")
	require.Contains(t, full, "+first line\n+second line")
	inc := r.codexArtifact(t, follow, "incremental.diff")
	require.Contains(t, inc, "+second line")
	require.NotContains(t, inc, "+first line")
	r.codexClean(t)
}

// A read-only job (execution.sandbox) runs codex with --sandbox
// read-only: a write the model attempts is refused by codex, so the job
// has no patch. Should codex's sandbox be off all the same (here by the
// executor's extraArgs), the relay fails the job with POLICY.
func TestCodexReadOnlyWriteHasNoPatch(t *testing.T) {
	t.Parallel()
	longTest(t)
	t.Run("codex refuses", func(t *testing.T) {
		t.Parallel()
		model := codextest.New(t,
			codextest.Reply(codextest.ApplyPatch("call_patch", "*** Begin Patch\n*** Add File: ro.txt\n+not allowed\n*** End Patch\n")),
			codextest.Reply(codextest.ExecCommand("call_echo", "echo not allowed >> hello.txt")),
			codextest.Reply(codextest.Message("Could not write: the sandbox is read-only.\n\n### TEST_PLAN\n- none\n\n### NOTES\n- read-only")),
		)
		r := codexStart(t, model, "")
		jobID, job := r.codexRun(t, codexSpec(r, "codex-ro", "read-only"))
		require.Equal(t, "SUCCEEDED", job["state"], "job %v\nlogs: %s", job, r.codexArtifact(t, jobID, "logs.txt"))
		r.codexSaveTranscript(t, jobID, "read-only")
		require.Contains(t, job["summary"], "empty patch")
		require.Empty(t, strings.TrimSpace(r.codexArtifact(t, jobID, "patch.diff")))
		reqs := model.Requests()
		require.Len(t, reqs, 3)
		refused, _ := reqs[1].ToolOutput("call_patch")
		require.Contains(t, refused, "read-only sandbox")
		echoed, _ := reqs[2].ToolOutput("call_echo")
		require.Contains(t, echoed, "Read-only file system")
		require.Contains(t, r.codexArtifact(t, jobID, "logs.txt"), "refused: patch rejected")
		r.codexClean(t)
	})
	t.Run("sandbox off", func(t *testing.T) {
		t.Parallel()
		model := codextest.New(t,
			codextest.Reply(codextest.ExecCommand("call_echo", "echo written anyway >> hello.txt")),
			codextest.Reply(codextest.Message("Wrote hello.txt.\n\n### TEST_PLAN\n- none\n\n### NOTES\n- none")),
		)
		r := codexStart(t, model, `extraArgs: ["--dangerously-bypass-approvals-and-sandbox"]`)
		jobID, job := r.codexRun(t, codexSpec(r, "codex-ro-off", "read-only"))
		require.Equal(t, "FAILED", job["state"], "job %v\nlogs: %s", job, r.codexArtifact(t, jobID, "logs.txt"))
		require.Equal(t, "POLICY", job["reasonCode"])
		require.Contains(t, job["summary"], "read-only")
		r.codexClean(t)
	})
}

// codexAskAnswer is the answer the orchestrator gives in the ask tests.
const codexAskAnswer = "Bonjour from the orchestrator"

// codexAsk runs a job whose model asks the orchestrator through relay_ask
// on the relay's executor MCP endpoint, which the adapter configured for
// the run, answers after wait, and checks that the answer reached the
// model (it writes it into hello.txt).
func codexAsk(t *testing.T, wait time.Duration) {
	t.Helper()
	// The model's view of the tool call, reported by the turns (which run
	// on the fake server's goroutines) for the test to check.
	type seen struct {
		search string
		answer string
	}
	seenc := make(chan seen, 1)
	model := codextest.New(t,
		codextest.Reply(codextest.ToolSearch("call_search", "relay_ask")),
		codextest.Reply(codextest.MCPCall("call_ask", codex.CodexMCPServer, "relay_ask",
			map[string]any{"type": "CLARIFICATION", "prompt": "Which greeting should hello.txt get?"})),
		func(req *codextest.Request) codextest.Response {
			found, _ := req.ToolOutput("call_search")
			out, _ := req.ToolOutput("call_ask")
			var ans struct {
				Status     string `json:"status"`
				AnswerText string `json:"answerText"`
			}
			if i := strings.Index(out, "{"); i >= 0 {
				_ = json.Unmarshal([]byte(out[i:]), &ans)
			}
			seenc <- seen{search: found, answer: out}
			if ans.Status != "ANSWERED" || ans.AnswerText == "" {
				return codextest.Response{Items: []codextest.Item{codextest.Message("relay_ask gave no answer: " + out)}}
			}
			return codextest.Response{Items: []codextest.Item{codextest.ApplyPatch("call_patch",
				"*** Begin Patch\n*** Update File: hello.txt\n@@\n hello\n+"+ans.AnswerText+"\n*** End Patch\n")}}
		},
		codextest.Reply(codextest.Message("Wrote the greeting I was given.\n\n### TEST_PLAN\n- cat hello.txt\n\n### NOTES\n- asked")),
	)
	r := codexStart(t, model, "")
	jobID := r.call(t, "jobs_submit", map[string]any{"spec": codexSpec(r, "codex-ask", "workspace-write")})["jobId"].(string)
	var ask map[string]any
	waitFor(t, func() bool {
		items := r.call(t, "asks_list", map[string]any{"jobId": jobID})["items"].([]any)
		if len(items) == 0 {
			return false
		}
		ask = items[0].(map[string]any)
		return true
	})
	require.Equal(t, "CLARIFICATION", ask["askType"])
	require.Equal(t, "Which greeting should hello.txt get?", ask["prompt"])
	require.Equal(t, "WAITING_ON_ANSWER", r.call(t, "jobs_get", map[string]any{"jobId": jobID})["state"])
	asked := time.Now()
	if wait > 0 {
		// The point of the test: the answer comes after codex's default
		// tool-call timeout would have given up.
		<-time.After(wait)
	}
	r.call(t, "asks_answer", map[string]any{"askId": ask["askId"], "answerText": codexAskAnswer})

	job := r.waitState(t, jobID, "SUCCEEDED", "FAILED")
	require.Equal(t, "SUCCEEDED", job["state"], "job %v\nlogs: %s", job, r.codexArtifact(t, jobID, "logs.txt"))
	require.GreaterOrEqual(t, time.Since(asked), wait)
	var s seen
	select {
	case s = <-seenc:
	default:
		t.Fatal("the model never got the ask's result")
	}
	require.Contains(t, s.search, "relay_ask", "tool_search finds the relay's tool")
	require.Contains(t, s.search, codextest.Namespace(codex.CodexMCPServer))
	require.Contains(t, s.answer, codexAskAnswer)
	require.Contains(t, r.codexArtifact(t, jobID, "patch.diff"), "+"+codexAskAnswer)
	require.Contains(t, r.codexArtifact(t, jobID, "logs.txt"), "mcp: "+codex.CodexMCPServer+"/relay_ask (completed)")
	r.codexClean(t)
	if wait == 0 {
		r.codexSaveTranscript(t, jobID, "ask")
	}
}

// The model asks through relay_ask on the relay's executor MCP endpoint
// (configured per run, with the job's token from the environment), the
// orchestrator answers, and the answer reaches the model.
func TestCodexAskOverMCP(t *testing.T) {
	t.Parallel()
	longTest(t)
	codexAsk(t, 0)
}

// An answer that takes more than 90 s still reaches the agent: the
// adapter raises codex's tool-call timeout for the relay's endpoint to
// the ask deadline.
func TestCodexLongAskAnsweredAfter90s(t *testing.T) {
	t.Parallel()
	longTest(t)
	codexAsk(t, 95*time.Second)
}

// A model error ends codex's turn; the job fails with the error codex
// reported.
func TestCodexModelFailureIsSummarized(t *testing.T) {
	t.Parallel()
	longTest(t)
	model := codextest.New(t, codextest.Fail("the fake model is overloaded"))
	r := codexStart(t, model, "")
	jobID, job := r.codexRun(t, codexSpec(r, "codex-fail", "workspace-write"))
	require.Equal(t, "FAILED", job["state"], "job %v", job)
	r.codexSaveTranscript(t, jobID, "model-failure")
	require.Equal(t, "EXECUTOR_ERROR", job["reasonCode"])
	require.Contains(t, job["summary"], "the fake model is overloaded")
	require.Empty(t, r.model.Outbound())
}

// The adapter's health check (for doctor) runs the real CLI offline:
// its version, and how it would authenticate.
func TestCodexCheck(t *testing.T) {
	t.Parallel()
	longTest(t)
	bin := agentCLI(t, "codex")
	model := codextest.New(t)
	cfg := &executor.AgentConfig{Name: "codex", Binary: bin}
	env := func(h *codextest.Home, extra ...string) []string {
		out := []string{"PATH=" + os.Getenv("PATH")}
		for k, v := range h.Env {
			if k != codextest.KeyEnv {
				out = append(out, k+"="+v)
			}
		}
		return append(out, extra...)
	}

	// The fake provider of the test homes authenticates by its env_key.
	h := codex.Adapter{}.Check(t.Context(), cfg, env(model.NewHome(t, "")))
	require.NoError(t, h.Err)
	require.Equal(t, "0.171.0", h.Version)
	require.Equal(t, `auth: model provider "codextest" of config.toml (its env_key or auth)`, h.Detail)

	// A home without config or login cannot run jobs.
	bare := model.NewHome(t, "")
	require.NoError(t, os.Remove(filepath.Join(bare.CodexHome, "config.toml")))
	h = codex.Adapter{}.Check(t.Context(), cfg, env(bare))
	require.ErrorContains(t, h.Err, "codex is not logged in (Not logged in)")
	require.Contains(t, h.Fix, "codex login")
	// OPENAI_API_KEY does not count: codex 0.171 does not read it.
	h = codex.Adapter{}.Check(t.Context(), cfg, env(bare, "OPENAI_API_KEY=sk-ignored"))
	require.Error(t, h.Err)
	h = codex.Adapter{}.Check(t.Context(), cfg, env(bare, "CODEX_API_KEY=sk-codextest"))
	require.NoError(t, h.Err)
	require.Equal(t, "auth: API key in CODEX_API_KEY", h.Detail)

	// A key stored by `codex login --with-api-key` (offline).
	login := exec.CommandContext(t.Context(), bin, "login", "--with-api-key")
	login.Env = env(bare)
	login.Stdin = strings.NewReader("sk-codextest-stored-1234\n")
	out, err := login.CombinedOutput()
	require.NoError(t, err, "%s", out)
	h = codex.Adapter{}.Check(t.Context(), cfg, env(bare))
	require.NoError(t, h.Err)
	require.Contains(t, h.Detail, "auth: API key configured")
	require.NotContains(t, h.Detail, "stored-1234")
	require.Empty(t, model.Outbound(), "the check stays offline")
}

// codex refuses to start with approval_policy "untrusted" (0.171: "no
// longer supported"), which is why the adapter always passes "never";
// an executor whose extraArgs set it anyway fails with codex's own error.
func TestCodexStartErrorIsSummarized(t *testing.T) {
	t.Parallel()
	longTest(t)
	model := codextest.New(t)
	r := codexStart(t, model, `extraArgs: ["-c", "approval_policy=\"untrusted\""]`)
	jobID, job := r.codexRun(t, codexSpec(r, "codex-start-error", "workspace-write"))
	require.Equal(t, "FAILED", job["state"], "job %v", job)
	r.codexSaveTranscript(t, jobID, "start-error")
	require.Equal(t, "EXECUTOR_ERROR", job["reasonCode"])
	require.Contains(t, job["summary"], `codex exited with code 1: Error: approval_policy = "untrusted" is no longer supported`)
	require.Empty(t, model.Requests())
	require.Empty(t, model.Outbound())
}
