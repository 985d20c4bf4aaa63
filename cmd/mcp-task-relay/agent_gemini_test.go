package main_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor/gemini"
	"github.com/mcp-task-relay/mcp-task-relay/internal/executor/gemini/geminitest"
)

// The tests here run the real Gemini CLI (the pinned @google/gemini-cli in
// testdata/agents) as the relay's executor, pointed at a fake Gemini API
// (geminitest) on 127.0.0.1 through GOOGLE_GEMINI_BASE_URL and
// GEMINI_API_KEY, with a home of its own whose settings choose API-key
// auth and turn off telemetry, usage statistics and update checks.

// geminiRig is a relay whose executor "gemini" is the real Gemini CLI.
type geminiRig struct {
	api  *geminitest.Server
	s    *server
	home string // the user's HOME for the relay and gemini
	dir  string
	repo string
	base string
}

// geminiStart starts a relay with the default gemini executor config
// (kind and passEnv only; the CLI is found on PATH) plus executorYAML
// lines under it.
func geminiStart(t *testing.T, executorYAML string) *geminiRig {
	t.Helper()
	r := &geminiRig{api: geminitest.New(t), dir: t.TempDir()}
	r.home = geminitest.WriteHome(t, filepath.Join(r.dir, "home"))
	r.repo, r.base = newRepo(t)
	cfg := writeConfig(t, r.dir, fmt.Sprintf(`server:
  dataDir: %q
executors:
  gemini:
    kind: gemini
    passEnv: [GEMINI_API_KEY]
%s`, filepath.Join(r.dir, "data"), executorYAML))
	r.s = startServerEnv(t, append(geminiEnv(t, r.api, r.home), "TASK_RELAY_ANSWER_RUNNER_ENABLED=false"),
		"--config-dir", cfg, "--storage", "sqlite", "--sqlite", filepath.Join(r.dir, "relay.db"))
	return r
}

// geminiEnv is the environment of a user who installed the Gemini CLI
// and uses it with an API key: here pointed at the fake API.
func geminiEnv(t *testing.T, api *geminitest.Server, home string) []string {
	t.Helper()
	env := []string{"HOME=" + home, "PATH=" + filepath.Dir(agentCLI(t, "gemini")) + string(os.PathListSeparator) + os.Getenv("PATH")}
	for k, v := range api.Env() {
		env = append(env, k+"="+v)
	}
	return env
}

// geminiSpec is the seed spec without its model (gemini picks its own)
// in the given sandbox.
func geminiSpec(r *geminiRig, key, sandbox string) map[string]any {
	s := seedSpec("file://"+r.repo, r.base, key)
	ex := s["execution"].(map[string]any)
	delete(ex, "preferredModel")
	ex["sandbox"] = sandbox
	return s
}

// run submits spec and waits for the job to end.
func (r *geminiRig) run(t *testing.T, spec map[string]any) (string, map[string]any) {
	t.Helper()
	jobID := r.s.call(t, "jobs_submit", map[string]any{"spec": spec})["jobId"].(string)
	return jobID, r.s.waitState(t, jobID, "SUCCEEDED", "FAILED")
}

// requireSucceeded fails with the job's logs unless it succeeded.
func (r *geminiRig) requireSucceeded(t *testing.T, jobID string, job map[string]any) {
	t.Helper()
	require.Equal(t, "SUCCEEDED", job["state"], "job %v\nlogs:\n%s\nfake API problems: %v", job, r.s.read(t, "mcp://jobs/"+jobID+"/artifacts/logs.txt"), r.api.Problems())
	require.Empty(t, r.api.Problems())
	require.Zero(t, r.api.Pending(), "every scripted turn was taken")
}

// requireUsage checks that the job reports the usage of the fake API's
// responses from request from on.
func (r *geminiRig) requireUsage(t *testing.T, job map[string]any, from int) {
	t.Helper()
	want := r.api.Usage(from)
	usage, ok := job["usage"].(map[string]any)
	require.True(t, ok, "job %v has no usage", job)
	require.EqualValues(t, want.Prompt, usage["inputTokens"])
	require.EqualValues(t, want.Cached, usage["cachedInputTokens"])
	require.EqualValues(t, want.Candidates, usage["outputTokens"])
}

const geminiReport = "Wrote hello.txt.\n### TEST_PLAN\n- cat hello.txt\n### NOTES\n- nothing else"

// With the default configuration, Gemini edits the workspace and the
// job succeeds with its patch, its report as out.md, its session and the
// usage the API reported. Gemini refuses to run in a folder it does not
// trust (exit 55) and every job runs in a new one: the relay trusts the
// workspace for the run. The relay's MCP endpoint is wired in without a
// file in the workspace.
func TestGeminiDefaultConfigSucceeds(t *testing.T) {
	t.Parallel()
	longTest(t)
	r := geminiStart(t, "")
	r.api.Script(
		geminitest.Turn{Calls: []geminitest.Call{geminitest.WriteFile("hello.txt", "Hello, world!\n")}, Usage: geminitest.Usage{Prompt: 1200, Candidates: 30, Cached: 100}},
		geminitest.Turn{Calls: []geminitest.Call{geminitest.Replace("hello.txt", "world", "relay")}, Usage: geminitest.Usage{Prompt: 1300, Candidates: 20, Cached: 1100}},
		geminitest.Turn{Text: geminiReport, Usage: geminitest.Usage{Prompt: 1400, Candidates: 60, Cached: 1200}},
	)
	jobID, job := r.run(t, geminiSpec(r, "gemini-default", "workspace-write"))
	r.requireSucceeded(t, jobID, job)
	require.NotEmpty(t, job["sessionId"])
	r.requireUsage(t, job, 0)

	patch := r.s.read(t, "mcp://jobs/"+jobID+"/artifacts/patch.diff")
	require.Contains(t, patch, "+++ b/hello.txt")
	require.Contains(t, patch, "+Hello, relay!")
	require.Equal(t, 1, strings.Count(patch, "diff --git"), "only the edit, no .gemini settings:\n%s", patch)
	require.Equal(t, geminiReport+"\n", r.s.read(t, "mcp://jobs/"+jobID+"/artifacts/out.md"))
	logs := r.s.read(t, "mcp://jobs/"+jobID+"/artifacts/logs.txt")
	require.Contains(t, logs, "gemini: tool write_file")

	first := r.api.Scripted()[0]
	require.Contains(t, first.Transcript(), "Test description", "the relay's prompt")
	require.Contains(t, first.Tools, "write_file")
	require.Contains(t, first.Tools, "mcp_task-relay_relay_ask", "the relay's MCP endpoint is configured for the run")
	require.Contains(t, first.Tools, "mcp_task-relay_relay_approve")
	require.Contains(t, first.Tools, "run_shell_command", "for the relay's ask command, the one the run's policy allows")
	require.DirExists(t, filepath.Join(r.home, ".gemini", "tmp"), "sessions are kept in the user's store")
	settings, err := os.ReadFile(filepath.Join(r.home, ".gemini", "settings.json"))
	require.NoError(t, err)
	require.Equal(t, geminitest.Settings, string(settings), "the user's settings are left alone")
}

// A follow-up resumes the parent's session although it runs in a new
// workspace (gemini keeps sessions per project directory): the model sees
// the earlier conversation, the session id carries over, and the job
// reports only its own usage.
func TestGeminiFollowupResumesSession(t *testing.T) {
	t.Parallel()
	longTest(t)
	r := geminiStart(t, "")
	r.api.Script(
		geminitest.Turn{Calls: []geminitest.Call{geminitest.WriteFile("hello.txt", "Hello, world!\n")}},
		geminitest.Turn{Text: geminiReport},
	)
	parent, job := r.run(t, geminiSpec(r, "gemini-parent", "workspace-write"))
	r.requireSucceeded(t, parent, job)
	session := job["sessionId"].(string)
	require.NotEmpty(t, session)

	from := len(r.api.Requests())
	r.api.Script(
		geminitest.Turn{Calls: []geminitest.Call{geminitest.Replace("hello.txt", "Hello, world!", "Hello, world!\nAnd a second line.")},
			Usage: geminitest.Usage{Prompt: 3000, Candidates: 25, Cached: 2500}},
		geminitest.Turn{Text: "Added a second line.\n### TEST_PLAN\n- cat hello.txt\n### NOTES\n- none",
			Usage: geminitest.Usage{Prompt: 3100, Candidates: 35, Cached: 3000}},
	)
	follow := r.s.call(t, "jobs_followup", map[string]any{"jobId": parent, "instruction": "Now add a second line."})["jobId"].(string)
	job = r.s.waitState(t, follow, "SUCCEEDED", "FAILED")
	r.requireSucceeded(t, follow, job)
	require.Equal(t, session, job["sessionId"], "the same session")
	r.requireUsage(t, job, from)
	require.Less(t, job["usage"].(map[string]any)["inputTokens"].(float64), float64(r.api.Usage(0).Prompt), "not the thread's total")

	var first *geminitest.Request
	for _, req := range r.api.Requests()[from:] {
		if req.Scripted {
			first = &req
			break
		}
	}
	require.NotNil(t, first)
	history := first.Transcript()
	require.Contains(t, history, "Test description", "the parent's prompt")
	require.Contains(t, history, `model: call write_file {"content":"Hello, world!\n","file_path":"hello.txt"}`, "the parent's tool call")
	require.Contains(t, history, "result write_file", "the parent's tool result")
	require.Contains(t, history, "Wrote hello.txt.", "the parent's report")
	require.Contains(t, history, "Now add a second line.", "the follow-up's instruction")
	require.Less(t, strings.Index(history, "Wrote hello.txt."), strings.Index(history, "Now add a second line."))

	inc := r.s.read(t, "mcp://jobs/"+follow+"/artifacts/incremental.diff")
	require.Contains(t, inc, "+And a second line.")
	full := r.s.read(t, "mcp://jobs/"+follow+"/artifacts/patch.diff")
	require.Contains(t, full, "+Hello, world!")
}

// A read-only job gets gemini's default mode, which offers no tool that
// writes: a write the model tries anyway is refused and the job ends
// without a patch. If the user's own gemini policy lets the write through
// all the same, the relay fails the job (POLICY).
func TestGeminiReadOnly(t *testing.T) {
	t.Parallel()
	longTest(t)
	t.Run("write refused", func(t *testing.T) {
		t.Parallel()
		r := geminiStart(t, "")
		r.api.Script(
			geminitest.Turn{Calls: []geminitest.Call{geminitest.WriteFile("hello.txt", "Hello\n")}},
			geminitest.Turn{Text: "This job is read-only; I would write hello.txt."},
		)
		jobID, job := r.run(t, geminiSpec(r, "gemini-ro", "read-only"))
		r.requireSucceeded(t, jobID, job)
		require.Contains(t, job["summary"], "changed nothing")
		require.Empty(t, strings.TrimSpace(r.s.read(t, "mcp://jobs/"+jobID+"/artifacts/patch.diff")))
		scripted := r.api.Scripted()
		require.NotContains(t, scripted[0].Tools, "write_file")
		require.NotContains(t, scripted[0].Tools, "replace")
		require.Contains(t, scripted[0].Tools, "mcp_task-relay_relay_ask", "a read-only job can still ask")
		require.Contains(t, scripted[1].Transcript(), `result write_file {"error":"Tool \"write_file\" not found`)
	})
	t.Run("write let through", func(t *testing.T) {
		t.Parallel()
		r := geminiStart(t, "")
		policies := filepath.Join(r.home, ".gemini", "policies")
		require.NoError(t, os.MkdirAll(policies, 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(policies, "mine.toml"),
			[]byte("[[rule]]\ntoolName = \"write_file\"\ndecision = \"allow\"\npriority = 999\n"), 0o600))
		r.api.Script(
			geminitest.Turn{Calls: []geminitest.Call{geminitest.WriteFile("hello.txt", "Hello\n")}},
			geminitest.Turn{Text: "Wrote hello.txt."},
		)
		jobID, job := r.run(t, geminiSpec(r, "gemini-ro-write", "read-only"))
		require.Equal(t, "FAILED", job["state"], "job %v\nlogs:\n%s", job, r.s.read(t, "mcp://jobs/"+jobID+"/artifacts/logs.txt"))
		require.Equal(t, "POLICY", job["reasonCode"])
		require.Contains(t, job["summary"], "read-only")
	})
}

// execution.askPolicy picks gemini's approval mode: on-request lets it edit
// but runs no command but the relay's ask; never runs everything.
func TestGeminiAskPolicyModes(t *testing.T) {
	t.Parallel()
	longTest(t)
	for _, tc := range []struct {
		policy  string
		written bool
	}{
		{"on-request", false},
		{"never", true},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			t.Parallel()
			r := geminiStart(t, "")
			r.api.Script(
				geminitest.Turn{Calls: []geminitest.Call{geminitest.Shell("echo from-the-shell > shell.txt")}},
				geminitest.Turn{Text: "Done."},
			)
			spec := geminiSpec(r, "gemini-"+tc.policy, "workspace-write")
			spec["execution"].(map[string]any)["askPolicy"] = tc.policy
			jobID, job := r.run(t, spec)
			r.requireSucceeded(t, jobID, job)
			patch := r.s.read(t, "mcp://jobs/"+jobID+"/artifacts/patch.diff")
			result := r.api.Scripted()[1].Transcript()
			if tc.written {
				require.Contains(t, patch, "+from-the-shell")
				require.NotContains(t, result, "denied")
			} else {
				require.NotContains(t, patch, "shell.txt")
				require.Contains(t, result, "denied by policy")
			}
		})
	}
}

// geminiAskTurns scripts a call of a relay tool, then a final answer.
func geminiAskTurns(call geminitest.Call) []geminitest.Turn {
	return []geminitest.Turn{{Calls: []geminitest.Call{call}}, {Text: "Asked the relay.\n### TEST_PLAN\n- none\n### NOTES\n- none"}}
}

// answerAfter waits for the job's ask, answers it after delay with
// answer, lets the job finish and returns what the model got back from
// the tool.
func (r *geminiRig) answerAfter(t *testing.T, jobID string, delay time.Duration, answer map[string]any) (map[string]any, string) {
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
	answer["askId"] = item["askId"]
	r.s.call(t, "asks_answer", answer)
	job := r.s.waitState(t, jobID, "SUCCEEDED", "FAILED")
	r.requireSucceeded(t, jobID, job)
	scripted := r.api.Scripted()
	require.Len(t, scripted, 2)
	return item, scripted[1].Transcript()
}

// geminiRelayAsk has the model call relay_ask and checks the answer reaches
// it after delay.
func geminiRelayAsk(t *testing.T, delay time.Duration) {
	t.Helper()
	r := geminiStart(t, "")
	r.api.Script(geminiAskTurns(geminitest.MCP(gemini.MCPServer, "relay_ask", map[string]any{"type": "CLARIFICATION", "prompt": "Which greeting should hello.txt contain?"}))...)
	jobID := r.s.call(t, "jobs_submit", map[string]any{"spec": geminiSpec(r, "gemini-ask", "workspace-write")})["jobId"].(string)
	item, result := r.answerAfter(t, jobID, delay, map[string]any{"answerText": "Bonjour, relay!"})
	require.Equal(t, "CLARIFICATION", item["askType"])
	require.Equal(t, "Which greeting should hello.txt contain?", item["prompt"])
	require.Contains(t, result, "result mcp_task-relay_relay_ask")
	require.Contains(t, result, `\"answerText\":\"Bonjour, relay!\"`)
}

// geminiRelayApprove has the model ask for an approval with relay_approve
// and checks the decision reaches it after delay.
func geminiRelayApprove(t *testing.T, delay time.Duration) {
	t.Helper()
	r := geminiStart(t, "")
	r.api.Script(geminiAskTurns(geminitest.MCP(gemini.MCPServer, "relay_approve", map[string]any{
		"tool_name": "run_shell_command", "input": map[string]any{"command": "make deploy"}, "tool_use_id": "call-1"}))...)
	jobID := r.s.call(t, "jobs_submit", map[string]any{"spec": geminiSpec(r, "gemini-approve", "workspace-write")})["jobId"].(string)
	item, result := r.answerAfter(t, jobID, delay, map[string]any{"answerText": "approved"})
	require.Equal(t, "APPROVAL", item["askType"])
	require.Contains(t, item["prompt"], "make deploy")
	require.Contains(t, result, "result mcp_task-relay_relay_approve")
	require.Contains(t, result, `\"behavior\":\"allow\"`)
}

// Gemini asks through the relay's MCP endpoint: relay_ask and
// relay_approve calls become asks, and the answers reach the model.
func TestGeminiRelayToolsOverMCP(t *testing.T) {
	t.Parallel()
	longTest(t)
	t.Run("relay_ask", func(t *testing.T) { t.Parallel(); geminiRelayAsk(t, 0) })
	t.Run("relay_approve", func(t *testing.T) { t.Parallel(); geminiRelayApprove(t, 0) })
}

// An answer that comes after 90 s still reaches the model: the run's MCP
// timeout is above the ask deadline.
func TestGeminiLongRelayAskAnsweredAfter90s(t *testing.T) {
	t.Parallel()
	longTest(t)
	geminiRelayAsk(t, 90*time.Second)
}

// As TestGeminiLongRelayAskAnsweredAfter90s, for relay_approve.
func TestGeminiLongRelayApproveAnsweredAfter90s(t *testing.T) {
	t.Parallel()
	longTest(t)
	geminiRelayApprove(t, 90*time.Second)
}

// The prompt tells the agent to ask with the relay's ask command: gemini's
// shell runs it (and only it) in auto_edit, and the answer reaches the
// model.
func TestGeminiAskCommand(t *testing.T) {
	t.Parallel()
	longTest(t)
	r := geminiStart(t, "")
	r.api.Script(geminiAskTurns(geminitest.Shell(binary + ` ask --type CLARIFICATION "Which greeting should hello.txt contain?"`))...)
	jobID := r.s.call(t, "jobs_submit", map[string]any{"spec": geminiSpec(r, "gemini-ask-command", "workspace-write")})["jobId"].(string)
	item, result := r.answerAfter(t, jobID, 0, map[string]any{"answerText": "Bonjour, relay!"})
	require.Equal(t, "Which greeting should hello.txt contain?", item["prompt"])
	require.Contains(t, result, "result run_shell_command")
	require.Contains(t, result, "Bonjour, relay!")
}

// A gemini that cannot run jobs fails them with its exit code explained
// and its own message.
func TestGeminiUntrustedWorkspaceFails(t *testing.T) {
	t.Parallel()
	longTest(t)
	r := geminiStart(t, "    env:\n      GEMINI_RESTRICTED_MODE: \"true\"\n")
	_, job := r.run(t, geminiSpec(r, "gemini-untrusted", "workspace-write"))
	require.Equal(t, "FAILED", job["state"], "job %v", job)
	require.Equal(t, "EXECUTOR_ERROR", job["reasonCode"])
	require.Contains(t, job["summary"], "gemini does not trust the workspace (exit 55): Gemini CLI is not running in a trusted directory.")
	require.Empty(t, r.api.Requests(), "gemini stopped before calling the API")
}

// doctor runs gemini's own health check: fine with the default setup, and
// a failure for a setup whose jobs would fail with exit 55.
func TestGeminiDoctor(t *testing.T) {
	t.Parallel()
	longTest(t)
	api := geminitest.New(t)
	home := geminitest.WriteHome(t, filepath.Join(t.TempDir(), "home"))
	t.Cleanup(func() { require.Empty(t, api.Requests(), "doctor never calls the model") })
	doctor := func(t *testing.T, executorYAML string) (string, int) {
		dir := t.TempDir()
		cfg := writeConfig(t, dir, "executors:\n  gemini:\n    kind: gemini\n    passEnv: [GEMINI_API_KEY]\n"+executorYAML)
		cmd := exec.Command(binary, "doctor", "--config-dir", cfg, "--storage", "memory")
		cmd.Env = append(append(os.Environ(), geminiEnv(t, api, home)...), "TASK_RELAY_DATA_DIR="+filepath.Join(dir, "data"))
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
	t.Run("default", func(t *testing.T) {
		t.Parallel()
		report, _ := doctor(t, "")
		require.Regexp(t, `(?m)^agent gemini\s+ok\s+gemini 0\.61\.0: auth gemini-api-key \(GEMINI_API_KEY, base URL http://127\.0\.0\.1:\d+\); workspaces trusted per run`, report)
	})
	t.Run("restricted", func(t *testing.T) {
		t.Parallel()
		report, code := doctor(t, "    env:\n      GEMINI_RESTRICTED_MODE: \"true\"\n")
		require.Equal(t, 1, code, report)
		require.Regexp(t, `(?m)^agent gemini\s+FAIL\s+GEMINI_RESTRICTED_MODE=true makes every workspace untrusted: headless runs fail with exit 55`, report)
	})
}
