package gemini

import (
	"context"
	"fmt"
	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const geminiStubFinal = "Edited.\n### TEST_PLAN\n- stub\n### NOTES\n- stub"

// geminiBundle is a workspace and side directory for runs of the gemini
// stub.
type geminiBundle struct {
	stub     string // absolute path of testdata/stubs/gemini
	workdir  string
	metaDir  string
	argsFile string // where the stub records its arguments
}

func geminiSetup(t *testing.T) *geminiBundle {
	t.Helper()
	stub, err := filepath.Abs(filepath.Join("testdata", "stubs", "gemini"))
	require.NoError(t, err)
	dir := t.TempDir()
	b := &geminiBundle{
		stub:     stub,
		workdir:  filepath.Join(dir, "work"),
		metaDir:  filepath.Join(dir, "meta"),
		argsFile: filepath.Join(dir, "args"),
	}
	require.NoError(t, os.Mkdir(b.workdir, 0o755))
	require.NoError(t, os.Mkdir(b.metaDir, 0o700))
	return b
}

// run runs the stub through an executor.Agent with cfg (Name and Binary filled in)
// and env for the stub, and returns the result and the arguments the stub
// was given.
func (b *geminiBundle) run(t *testing.T, cfg executor.AgentConfig, req executor.Request, env map[string]string) (*executor.Result, []string) {
	t.Helper()
	cfg.Name, cfg.Binary = "gemini", b.stub
	cfg.Env = map[string]string{"GEMINI_STUB_ARGS_FILE": b.argsFile}
	for k, v := range env {
		cfg.Env[k] = v
	}
	a, err := executor.NewAgent(cfg, Adapter{})
	require.NoError(t, err)
	req.Workdir, req.MetaDir = b.workdir, b.metaDir
	if req.Prompt == "" {
		req.Prompt = "Do the task."
	}
	res, err := a.Run(context.Background(), &req)
	require.NoError(t, err)
	require.NotNil(t, res.Agent)
	raw, err := os.ReadFile(b.argsFile)
	require.NoError(t, err, "the stub recorded no arguments; stderr: %s", res.Stderr)
	return res, strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
}

func TestGeminiRun(t *testing.T) {
	t.Parallel()
	b := geminiSetup(t)
	res, args := b.run(t, executor.AgentConfig{}, executor.Request{Prompt: "Add a greeting."},
		map[string]string{"GEMINI_STUB_SESSION": "sess-1", "GEMINI_STUB_EDIT": "greeting.txt"})

	require.Equal(t, 0, res.ExitCode, "stderr: %s", res.Stderr)
	require.Equal(t, []string{"-p", "Add a greeting.", "-o", "json", "--approval-mode", "auto_edit"}, args)
	out := res.Agent
	require.False(t, out.Failed, out.FailureSummary)
	require.Empty(t, out.FailureSummary)
	require.Equal(t, "sess-1", out.SessionID)
	require.Equal(t, geminiStubFinal, out.FinalMessage)
	require.Equal(t, executor.AgentUsage{InputTokens: 800, CachedInputTokens: 50, OutputTokens: 120}, out.Usage)
	require.Contains(t, out.Log, "gemini: model gemini-2.5-pro: requests 2, prompt tokens 800 (50 cached), output tokens 120")
	require.Contains(t, out.Log, "gemini: tool calls 2 (2 succeeded, 0 failed): read_file 1, replace 1")

	edited, err := os.ReadFile(filepath.Join(b.workdir, "greeting.txt"))
	require.NoError(t, err)
	require.Equal(t, "gemini was here: Add a greeting.\n", string(edited))
}

func TestGeminiArgs(t *testing.T) {
	t.Parallel()
	base := []string{"-p", "Do the task.", "-o", "json", "--approval-mode"}
	for _, tc := range []struct {
		name string
		cfg  executor.AgentConfig
		req  executor.Request
		want []string // after base
	}{
		{"defaults", executor.AgentConfig{}, executor.Request{}, []string{"auto_edit"}},
		{"workspace-write", executor.AgentConfig{}, executor.Request{Sandbox: "workspace-write"}, []string{"auto_edit"}},
		{"read-only", executor.AgentConfig{}, executor.Request{Sandbox: "read-only"}, []string{"default"}},
		{"configured mode", executor.AgentConfig{ApprovalMode: "yolo"}, executor.Request{}, []string{"yolo"}},
		{"configured mode wins over read-only", executor.AgentConfig{ApprovalMode: "auto_edit"}, executor.Request{Sandbox: "read-only"}, []string{"auto_edit"}},
		{"configured model", executor.AgentConfig{Model: "flash"}, executor.Request{}, []string{"auto_edit", "-m", "flash"}},
		{"job model wins", executor.AgentConfig{Model: "flash"}, executor.Request{Model: "gemini-2.5-pro"}, []string{"auto_edit", "-m", "gemini-2.5-pro"}},
		{"resume", executor.AgentConfig{}, executor.Request{ResumeSessionID: "sess-0"}, []string{"auto_edit", "--resume", "sess-0"}},
		{
			"everything", executor.AgentConfig{Model: "pro", ExtraArgs: []string{"--include-directories", "/tmp/x", "--debug"}},
			executor.Request{ResumeSessionID: "sess-0", Sandbox: "read-only"},
			[]string{"default", "-m", "pro", "--resume", "sess-0", "--include-directories", "/tmp/x", "--debug"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := geminiSetup(t)
			res, args := b.run(t, tc.cfg, tc.req, nil)
			require.Equal(t, 0, res.ExitCode, "stderr: %s", res.Stderr)
			require.Equal(t, append(append([]string{}, base...), tc.want...), args)
			require.False(t, res.Agent.Failed, res.Agent.FailureSummary)

			// Headless gemini has no editing tools in default mode; the stub
			// follows suit.
			_, err := os.Stat(filepath.Join(b.workdir, "gemini-was-here.txt"))
			if tc.want[0] == "default" {
				require.ErrorIs(t, err, os.ErrNotExist)
			} else {
				require.NoError(t, err)
			}
		})
	}
}

func TestGeminiResume(t *testing.T) {
	t.Parallel()
	b := geminiSetup(t)
	res, _ := b.run(t, executor.AgentConfig{}, executor.Request{ResumeSessionID: "sess-0"},
		map[string]string{"GEMINI_STUB_EXPECT_RESUME": "sess-0"})
	require.False(t, res.Agent.Failed, res.Agent.FailureSummary)
	require.Equal(t, "sess-0", res.Agent.SessionID)
	require.Equal(t, "Resumed session sess-0.\n"+geminiStubFinal, res.Agent.FinalMessage)

	// A stub expecting another session refuses, as gemini does for an
	// unknown one.
	res, _ = b.run(t, executor.AgentConfig{}, executor.Request{ResumeSessionID: "sess-9"},
		map[string]string{"GEMINI_STUB_EXPECT_RESUME": "sess-0"})
	require.Equal(t, 2, res.ExitCode)
	require.True(t, res.Agent.Failed)
	require.Equal(t, "gemini exited with code 2", res.Agent.FailureSummary)
}

func TestGeminiExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		exit    int
		errorTo string
		want    string
	}{
		// Gemini prints the error object on stderr; the adapter reads both
		// streams, so its message is in the summary either way.
		{42, "stderr", "gemini rejected the input (exit 42): stub: bad input"},
		{53, "stderr", "gemini hit its turn limit (exit 53)"},
		{1, "stderr", "gemini exited with code 1: Error: stub: failure"},
		{42, "stdout", "gemini rejected the input (exit 42): stub: bad input"},
		{53, "stdout", "gemini hit its turn limit (exit 53)"},
		{1, "stdout", "gemini exited with code 1: Error: stub: failure"},
	} {
		t.Run(fmt.Sprintf("%d/%s", tc.exit, tc.errorTo), func(t *testing.T) {
			t.Parallel()
			b := geminiSetup(t)
			res, _ := b.run(t, executor.AgentConfig{}, executor.Request{},
				map[string]string{"GEMINI_STUB_EXIT": strconv.Itoa(tc.exit), "GEMINI_STUB_ERROR_TO": tc.errorTo})
			require.Equal(t, tc.exit, res.ExitCode)
			if tc.errorTo == "stderr" {
				require.Contains(t, string(res.Stderr), `"error": {`)
			}
			require.True(t, res.Agent.Failed)
			require.Equal(t, tc.want, res.Agent.FailureSummary)
			require.Empty(t, res.Agent.FinalMessage)
		})
	}
}

func TestGeminiArgvNeedsPrompt(t *testing.T) {
	t.Parallel()
	_, err := Adapter{}.Argv(&executor.AgentConfig{Binary: "gemini"}, &executor.Request{Workdir: t.TempDir()})
	require.ErrorContains(t, err, "without a prompt")
}

func TestParseGemini(t *testing.T) {
	t.Parallel()
	const result = `{
  "session_id": "s-1",
  "response": "Done.\n",
  "stats": {
    "models": {
      "gemini-2.5-pro": {"api": {"totalRequests": 3}, "tokens": {"prompt": 1000, "candidates": 200, "total": 1300, "cached": 100, "thoughts": 100}},
      "gemini-2.5-flash": {"api": {"totalRequests": 1, "totalErrors": 1}, "tokens": {"prompt": 10, "candidates": 2, "cached": 0}}
    },
    "tools": {"totalCalls": 3, "totalSuccess": 2, "totalFail": 1, "byName": {"run_shell_command": {"count": 2}, "replace": {"count": 1}}},
    "files": {"totalLinesAdded": 7, "totalLinesRemoved": 2}
  }
}`
	summed := executor.AgentUsage{InputTokens: 1010, CachedInputTokens: 100, OutputTokens: 202}
	for _, tc := range []struct {
		name    string
		stdout  string
		exit    int
		want    executor.AgentOutput // Log is checked separately
		wantLog []string
	}{
		{
			name:   "result",
			stdout: result + "\n",
			want:   executor.AgentOutput{SessionID: "s-1", FinalMessage: "Done.", Usage: summed},
			wantLog: []string{
				"gemini: session s-1",
				"gemini: model gemini-2.5-flash: requests 1 (1 failed), prompt tokens 10 (0 cached), output tokens 2",
				"gemini: model gemini-2.5-pro: requests 3, prompt tokens 1000 (100 cached), output tokens 200, thought tokens 100",
				"gemini: tool calls 3 (2 succeeded, 1 failed): replace 1, run_shell_command 2",
				"gemini: lines +7 -2",
			},
		},
		{
			name:   "other output around it",
			stdout: "Loaded cached credentials.\n{\"level\":\"info\",\"msg\":\"mcp server up\"}\n" + result + "\nData collection is disabled.\n",
			want:   executor.AgentOutput{SessionID: "s-1", FinalMessage: "Done.", Usage: summed},
		},
		{
			name:   "compact, no session, no stats",
			stdout: `{"response":"Only this."}`,
			want:   executor.AgentOutput{FinalMessage: "Only this."},
		},
		{
			name:   "braces in the response and in text before it",
			stdout: "config { not json\n  {also not\n" + `{"response":"func f() {\n}\n{\"a\":1}"}` + "\n",
			want:   executor.AgentOutput{FinalMessage: "func f() {\n}\n{\"a\":1}"},
		},
		{
			name:   "an object mid-line is not the result",
			stdout: `note: {"response":"no"}` + "\n" + `{"response":"yes"}`,
			want:   executor.AgentOutput{FinalMessage: "yes"},
		},
		{
			name:   "the last result wins",
			stdout: `{"response":"first"}` + "\n" + `{"response":"second","session_id":"s-2"}`,
			want:   executor.AgentOutput{FinalMessage: "second", SessionID: "s-2"},
		},
		{
			name:   "stats of another shape cost only the stats",
			stdout: `{"response":"ok","stats":{"models":[1,2]}}`,
			want:   executor.AgentOutput{FinalMessage: "ok"},
		},
		{
			name:   "error object with exit 0",
			stdout: `{"session_id":"s-3","error":{"type":"ApiError","message":"quota\nexceeded","code":"RESOURCE_EXHAUSTED"}}`,
			want: executor.AgentOutput{SessionID: "s-3", Failed: true,
				FailureSummary: "ApiError: quota exceeded"},
			wantLog: []string{"gemini: error: ApiError: quota exceeded"},
		},
		{
			name:   "error object without a type",
			stdout: `{"error":{"message":"boom"}}`,
			want:   executor.AgentOutput{Failed: true, FailureSummary: "boom"},
		},
		{
			name:   "error that is not an object",
			stdout: `{"error":"boom"}`,
			want:   executor.AgentOutput{Failed: true, FailureSummary: `"boom"`},
		},
		{
			name:   "null error",
			stdout: `{"response":"fine","error":null}`,
			want:   executor.AgentOutput{FinalMessage: "fine"},
		},
		{
			name:   "exit 42 with the error object",
			stdout: `{"error":{"type":"FatalInputError","message":"No input provided via stdin.","code":42}}`,
			exit:   42,
			want:   executor.AgentOutput{Failed: true, FailureSummary: "gemini rejected the input (exit 42): No input provided via stdin."},
		},
		{
			name: "exit 42 alone",
			exit: 42,
			want: executor.AgentOutput{Failed: true, FailureSummary: "gemini rejected the input (exit 42)"},
		},
		{
			name:   "exit 53",
			stdout: `{"error":{"type":"FatalTurnLimitedError","message":"Reached max session turns.","code":53}}`,
			exit:   53,
			want:   executor.AgentOutput{Failed: true, FailureSummary: "gemini hit its turn limit (exit 53)"},
		},
		{
			name:   "exit 1 keeps what was reported",
			stdout: result,
			exit:   1,
			want: executor.AgentOutput{SessionID: "s-1", FinalMessage: "Done.", Usage: summed, Failed: true,
				FailureSummary: "gemini exited with code 1"},
			wantLog: []string{"gemini: exit code 1"},
		},
		{
			name:   "killed",
			stdout: "Thinking...\n",
			exit:   143,
			want:   executor.AgentOutput{Failed: true, FailureSummary: "gemini exited with code 143"},
		},
		{
			name:    "exit 0 without a result",
			stdout:  "The answer is 4.\n",
			want:    executor.AgentOutput{Failed: true, FailureSummary: "gemini printed no JSON result"},
			wantLog: []string{"gemini: no JSON result in 17 bytes of stdout"},
		},
		{
			name:   "truncated result",
			stdout: result[:len(result)/2],
			want:   executor.AgentOutput{Failed: true, FailureSummary: "gemini printed no JSON result"},
		},
		{
			name:   "JSON that is not a result",
			stdout: `{"level":"warn","msg":"deprecated flag"}`,
			want:   executor.AgentOutput{Failed: true, FailureSummary: "gemini printed no JSON result"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Adapter{}.Parse(&executor.AgentConfig{}, &executor.Request{}, []byte(tc.stdout), tc.exit)
			log := got.Log
			got.Log = ""
			require.Equal(t, tc.want, got)
			for _, line := range tc.wantLog {
				require.Contains(t, strings.Split(log, "\n"), line, "log:\n%s", log)
			}
		})
	}
}
