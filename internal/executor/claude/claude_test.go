package claude

import (
	"context"
	"encoding/json"
	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// claudeStub is the path of the stand-in claude script.
func claudeStub(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "stubs", "claude"))
	require.NoError(t, err)
	return p
}

// claudeRun is one run of the stub and what it recorded.
type claudeRun struct {
	res     *executor.Result
	out     *executor.AgentOutput
	argv    []string // what Argv returns for the run, binary first
	recArgs string   // the stub's argv file: one argument per line
	mcp     string   // the stub's copy of the --mcp-config file, if any
	workdir string
	metaDir string
}

// runClaude runs the stub as claude for req (Workdir, MetaDir and Prompt
// filled in when empty) with env for the stub.
func runClaude(t *testing.T, cfg executor.AgentConfig, req executor.Request, env map[string]string) claudeRun {
	t.Helper()
	dir := t.TempDir()
	r := claudeRun{workdir: filepath.Join(dir, "ws"), metaDir: filepath.Join(dir, "meta")}
	require.NoError(t, os.Mkdir(r.workdir, 0o755))
	require.NoError(t, os.Mkdir(r.metaDir, 0o700))
	if req.Workdir == "" {
		req.Workdir = r.workdir
	} else {
		r.workdir = req.Workdir
	}
	if req.MetaDir == "" {
		req.MetaDir = r.metaDir
	}
	if req.Prompt == "" {
		req.Prompt = "Fix the failing test."
	}
	argsFile, mcpFile := filepath.Join(dir, "args"), filepath.Join(dir, "mcp.json")
	cfg.Name, cfg.Binary = "claude", claudeStub(t)
	cfg.Env = map[string]string{"CLAUDE_STUB_ARGS_FILE": argsFile, "CLAUDE_STUB_MCP_FILE": mcpFile}
	for k, v := range env {
		cfg.Env[k] = v
	}
	a, err := executor.NewAgent(cfg, Adapter{})
	require.NoError(t, err)

	res, err := a.Run(context.Background(), &req)
	require.NoError(t, err)
	require.NotNil(t, res.Agent)
	r.res, r.out = res, res.Agent

	got := a.Config()
	r.argv, err = Adapter{}.Argv(&got, &req)
	require.NoError(t, err)
	if b, err := os.ReadFile(argsFile); err == nil {
		r.recArgs = string(b)
	}
	if b, err := os.ReadFile(mcpFile); err == nil {
		r.mcp = string(b)
	}
	return r
}

// flagValue returns the value after flag in argv, and whether flag is there.
func flagValue(argv []string, flag string) (string, bool) {
	i := slices.Index(argv, flag)
	if i < 0 || i+1 >= len(argv) {
		return "", false
	}
	return argv[i+1], true
}

func requireFlag(t *testing.T, argv []string, flag, want string) {
	t.Helper()
	got, ok := flagValue(argv, flag)
	require.True(t, ok, "%s missing from %q", flag, argv)
	require.Equal(t, want, got, flag)
}

func allowedTools(t *testing.T, argv []string) []string {
	t.Helper()
	v, ok := flagValue(argv, "--allowedTools")
	require.True(t, ok)
	return strings.Split(v, ",")
}

func TestClaudeRun(t *testing.T) {
	t.Parallel()
	r := runClaude(t, executor.AgentConfig{}, executor.Request{JobID: "job_1"}, map[string]string{"CLAUDE_STUB_SESSION": "sess-42"})

	require.Zero(t, r.res.ExitCode, "stderr: %s", r.res.Stderr)
	require.Equal(t, strings.Join(r.argv[1:], "\n")+"\n", r.recArgs, "the stub ran with Argv's command line")
	out := r.out
	require.False(t, out.Failed, out.FailureSummary)
	require.Equal(t, "sess-42", out.SessionID)
	require.InDelta(t, 0.0421, out.CostUSD, 1e-9)
	require.Equal(t, executor.AgentUsage{InputTokens: 900, CachedInputTokens: 100, OutputTokens: 250}, out.Usage)
	require.Equal(t, "Done.\n### TEST_PLAN\n- stub plan\n### NOTES\n- stub notes", out.FinalMessage)
	require.Equal(t, "session: sess-42 model claude-stub-model mode acceptEdits\n"+
		"tool: Edit claude-was-here.txt\n"+
		"message: I edited claude-was-here.txt.\n"+
		"result: success after 3 turns, $0.0421, 1.234s\n", out.Log)

	edited, err := os.ReadFile(filepath.Join(r.workdir, "claude-was-here.txt"))
	require.NoError(t, err)
	require.Equal(t, "edited by the claude stub\n", string(edited))

	argv := r.argv
	require.Equal(t, []string{claudeStub(t), "-p", "Fix the failing test."}, argv[:3])
	requireFlag(t, argv, "--output-format", "stream-json")
	require.Contains(t, argv, "--verbose")
	requireFlag(t, argv, "--permission-mode", "acceptEdits")
	requireFlag(t, argv, "--max-turns", "50")
	tools := allowedTools(t, argv)
	require.Contains(t, tools, ClaudeAskRule)
	require.Contains(t, tools, "Edit")
	require.Contains(t, tools, "Bash(go test:*)")
	require.NotContains(t, tools, ClaudeAskTool)
	sys, _ := flagValue(argv, "--append-system-prompt")
	require.Contains(t, sys, `mcp-task-relay ask --type TYPE "your question"`)
	require.Contains(t, sys, "### TEST_PLAN")
	require.NotContains(t, sys, "relay_ask")
	for _, f := range []string{"--mcp-config", "--permission-prompt-tool", "--resume", "--model", "--max-budget-usd"} {
		require.NotContains(t, argv, f)
	}
	require.NoFileExists(t, filepath.Join(r.metaDir, ClaudeMCPConfigFile))
	require.Empty(t, r.mcp)
}

func TestClaudeRunRelayMCP(t *testing.T) {
	t.Parallel()
	req := executor.Request{
		RelayMCPURL:     "http://127.0.0.1:7777/mcp/executor",
		RelayToken:      "tok-secret",
		ResumeSessionID: "prev-session",
		Model:           "claude-job-model",
		MaxBudgetUSD:    2.5,
	}
	r := runClaude(t, executor.AgentConfig{Model: "claude-config-model"}, req, map[string]string{"CLAUDE_STUB_EXPECT_RESUME": "prev-session"})

	require.Zero(t, r.res.ExitCode, "stderr: %s", r.res.Stderr)
	require.Equal(t, strings.Join(r.argv[1:], "\n")+"\n", r.recArgs)
	require.False(t, r.out.Failed, r.out.FailureSummary)
	require.Contains(t, r.out.FinalMessage, "Resumed session prev-session.")
	require.Contains(t, r.out.Log, "session: stub-session-1 model claude-job-model")

	argv := r.argv
	mcpPath := filepath.Join(r.metaDir, ClaudeMCPConfigFile)
	requireFlag(t, argv, "--mcp-config", mcpPath)
	requireFlag(t, argv, "--permission-prompt-tool", "mcp__task-relay__relay_approve")
	requireFlag(t, argv, "--resume", "prev-session")
	requireFlag(t, argv, "--model", "claude-job-model")
	requireFlag(t, argv, "--max-budget-usd", "2.5")
	require.Contains(t, allowedTools(t, argv), ClaudeAskTool)
	sys, _ := flagValue(argv, "--append-system-prompt")
	require.Contains(t, sys, "relay_ask tool of the task-relay MCP server")
	for _, a := range argv {
		require.NotContains(t, a, "tok-secret", "the token stays out of argv")
	}

	var cfg map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.mcp), &cfg), r.mcp)
	require.Equal(t, map[string]any{"mcpServers": map[string]any{"task-relay": map[string]any{
		"type":    "http",
		"url":     "http://127.0.0.1:7777/mcp/executor",
		"headers": map[string]any{"Authorization": "Bearer tok-secret"},
	}}}, cfg)
	fi, err := os.Stat(mcpPath)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

func TestClaudeRunReadOnly(t *testing.T) {
	t.Parallel()
	t.Run("plan", func(t *testing.T) {
		t.Parallel()
		r := runClaude(t, executor.AgentConfig{}, executor.Request{Sandbox: "read-only"}, nil)
		require.False(t, r.out.Failed, r.out.FailureSummary)
		requireFlag(t, r.argv, "--permission-mode", "plan")
		tools := allowedTools(t, r.argv)
		require.Contains(t, tools, ClaudeAskRule)
		require.Contains(t, tools, "Read")
		for _, edit := range claudeEditTools {
			require.NotContains(t, tools, edit)
		}
		sys, _ := flagValue(r.argv, "--append-system-prompt")
		require.Contains(t, sys, "read-only")
		require.NoFileExists(t, filepath.Join(r.workdir, "claude-was-here.txt"))
	})
	t.Run("configured mode wins", func(t *testing.T) {
		t.Parallel()
		r := runClaude(t, executor.AgentConfig{PermissionMode: "default"}, executor.Request{Sandbox: "read-only"}, nil)
		require.False(t, r.out.Failed, r.out.FailureSummary)
		requireFlag(t, r.argv, "--permission-mode", "default")
	})
}

func TestClaudeRunFailures(t *testing.T) {
	t.Parallel()
	t.Run("max turns", func(t *testing.T) {
		t.Parallel()
		r := runClaude(t, executor.AgentConfig{MaxTurns: 7}, executor.Request{}, map[string]string{"CLAUDE_STUB_FAIL": "max_turns"})
		require.Equal(t, 1, r.res.ExitCode)
		requireFlag(t, r.argv, "--max-turns", "7")
		require.True(t, r.out.Failed)
		require.Equal(t, "error_max_turns after 7 turns", r.out.FailureSummary)
		require.Equal(t, "stub-session-1", r.out.SessionID)
		require.InDelta(t, 0.5, r.out.CostUSD, 1e-9)
		require.Equal(t, executor.AgentUsage{InputTokens: 9000, CachedInputTokens: 1000, OutputTokens: 2500}, r.out.Usage)
		require.Equal(t, "I edited claude-was-here.txt.", r.out.FinalMessage, "the last text stands in for the missing result")
		require.Contains(t, r.out.Log, "result: error_max_turns after 7 turns, $0.5000, 5.678s\n")
	})
	t.Run("crash", func(t *testing.T) {
		t.Parallel()
		r := runClaude(t, executor.AgentConfig{}, executor.Request{}, map[string]string{"CLAUDE_STUB_FAIL": "crash"})
		require.Equal(t, 7, r.res.ExitCode)
		require.True(t, r.out.Failed)
		require.Equal(t, "claude exited with code 7", r.out.FailureSummary)
		require.Equal(t, "stub-session-1", r.out.SessionID, "the init event was read")
	})
	t.Run("wrong resume", func(t *testing.T) {
		t.Parallel()
		r := runClaude(t, executor.AgentConfig{}, executor.Request{ResumeSessionID: "other"}, map[string]string{"CLAUDE_STUB_EXPECT_RESUME": "prev"})
		require.Equal(t, 2, r.res.ExitCode)
		require.Contains(t, string(r.res.Stderr), "--resume is 'other', want 'prev'")
		require.True(t, r.out.Failed)
		require.Equal(t, "claude exited with code 2", r.out.FailureSummary)
	})
}

func TestClaudeArgv(t *testing.T) {
	t.Parallel()
	base := func(prompt, mode, tools, sys, turns string) []string {
		return []string{"claude", "-p", prompt, "--output-format", "stream-json", "--verbose",
			"--permission-mode", mode, "--allowedTools", tools, "--append-system-prompt", sys, "--max-turns", turns}
	}
	defaultTools := strings.Join(append(append(slices.Clone(claudeReadTools), claudeEditTools...), ClaudeAskRule), ",")
	sys := claudeSystemPrompt(false, false)

	promptFile := filepath.Join(t.TempDir(), "prompt.md")
	require.NoError(t, os.WriteFile(promptFile, []byte("Prompt from a file."), 0o600))

	tests := []struct {
		name string
		cfg  executor.AgentConfig
		req  executor.Request
		want []string
		err  string
	}{
		{
			name: "defaults",
			req:  executor.Request{Prompt: "Do it."},
			want: base("Do it.", "acceptEdits", defaultTools, sys, "50"),
		},
		{
			name: "configured",
			cfg: executor.AgentConfig{PermissionMode: "bypassPermissions", AllowedTools: []string{"Read", " Bash(make:*) ", ClaudeAskRule, "Read", ""},
				MaxTurns: 12, Model: "sonnet", ExtraArgs: []string{"--add-dir", "/shared"}},
			req: executor.Request{Prompt: "Do it.", Sandbox: "read-only"},
			want: append(base("Do it.", "bypassPermissions", "Read,Bash(make:*),"+ClaudeAskRule, claudeSystemPrompt(true, false), "12"),
				"--model", "sonnet", "--add-dir", "/shared"),
		},
		{
			name: "job model and resume",
			cfg:  executor.AgentConfig{Model: "sonnet"},
			req:  executor.Request{Prompt: "Do it.", Model: "opus", ResumeSessionID: "s-1", MaxBudgetUSD: 0.25},
			want: append(base("Do it.", "acceptEdits", defaultTools, sys, "50"),
				"--model", "opus", "--resume", "s-1", "--max-budget-usd", "0.25"),
		},
		{
			name: "prompt file",
			req:  executor.Request{PromptFile: promptFile},
			want: base("Prompt from a file.", "acceptEdits", defaultTools, sys, "50"),
		},
		{
			name: "prompt that looks like an option",
			req:  executor.Request{Prompt: "--help me fix this"},
			want: base(" --help me fix this", "acceptEdits", defaultTools, sys, "50"),
		},
		{
			name: "empty prompt",
			req:  executor.Request{Prompt: " \n"},
			err:  "claude: empty prompt",
		},
		{
			name: "missing prompt file",
			req:  executor.Request{PromptFile: filepath.Join(t.TempDir(), "none")},
			err:  "read prompt:",
		},
		{
			name: "relay MCP without a meta dir",
			req:  executor.Request{Prompt: "Do it.", RelayMCPURL: "http://relay/mcp"},
			err:  "needs a meta directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg
			cfg.Binary = "claude"
			got, err := Adapter{}.Argv(&cfg, &tt.req)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestClaudeArgvMCPConfig(t *testing.T) {
	t.Parallel()
	meta := t.TempDir()
	path := filepath.Join(meta, ClaudeMCPConfigFile)
	require.NoError(t, os.WriteFile(path, []byte("stale"), 0o644))

	cfg := executor.AgentConfig{Binary: "claude"}
	req := executor.Request{Prompt: "Do it.", MetaDir: meta, RelayMCPURL: "http://relay/mcp"}
	argv, err := Adapter{}.Argv(&cfg, &req)
	require.NoError(t, err)
	requireFlag(t, argv, "--mcp-config", path)
	require.Equal(t, "--max-turns", argv[slices.Index(argv, "--permission-prompt-tool")+2],
		"--mcp-config and its tool come before the single-valued options")

	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "a stale file's mode is not kept")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.JSONEq(t, `{"mcpServers":{"task-relay":{"type":"http","url":"http://relay/mcp"}}}`, string(b),
		"no Authorization header without a token")
	entries, err := os.ReadDir(meta)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file is left behind")
}

func TestClaudeParse(t *testing.T) {
	t.Parallel()
	const (
		initLine = `{"type":"system","subtype":"init","session_id":"s-init","model":"claude-x","permissionMode":"acceptEdits","tools":["Bash"]}`
		toolLine = `{"type":"assistant","message":{"id":"m1","content":[` +
			`{"type":"text","text":"Let me look.\nFirst the status."},` +
			`{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"git status","description":"status"}}` +
			`],"usage":{"input_tokens":10,"cache_creation_input_tokens":5,"cache_read_input_tokens":100,"output_tokens":20}},"parent_tool_use_id":null,"session_id":"s-init"}`
		// The same message again, as claude emits one event per content block.
		toolLine2 = `{"type":"assistant","message":{"id":"m1","content":[` +
			`{"type":"tool_use","id":"t2","name":"Edit","input":{"file_path":"/ws/pkg/a.go","old_string":"x","new_string":"y"}}` +
			`],"usage":{"input_tokens":10,"cache_creation_input_tokens":5,"cache_read_input_tokens":100,"output_tokens":20}},"session_id":"s-init"}`
		toolErrLine = `{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","is_error":true,"content":[{"type":"text","text":"exit status 1"}]}]}}`
		subLine     = `{"type":"assistant","message":{"id":"m2","content":[{"type":"text","text":"subagent text"},` +
			`{"type":"tool_use","name":"Grep","input":{"pattern":"TODO"}}]},"parent_tool_use_id":"t9"}`
		textLine = `{"type":"assistant","message":{"id":"m3","content":[{"type":"text","text":"All done."}],` +
			`"usage":{"input_tokens":1,"cache_read_input_tokens":2,"output_tokens":3}}}`
		userString = `{"type":"user","message":{"role":"user","content":"plain string content"}}`
	)
	lines := func(ls ...string) []byte { return []byte(strings.Join(ls, "\n") + "\n") }

	tests := []struct {
		name     string
		stdout   []byte
		exitCode int
		want     executor.AgentOutput
	}{
		{
			name: "success",
			stdout: lines(initLine, "not json", `["an array"]`, `{"broken":`, toolLine, toolLine2, toolErrLine, subLine, userString, textLine,
				`{"type":"result","subtype":"success","is_error":false,"duration_ms":2500,"num_turns":4,"result":"Finished.\n### TEST_PLAN\n- go test","session_id":"s-result","total_cost_usd":0.12,`+
					`"usage":{"input_tokens":50,"cache_creation_input_tokens":25,"cache_read_input_tokens":300,"output_tokens":70}}`),
			want: executor.AgentOutput{
				SessionID:    "s-result",
				FinalMessage: "Finished.\n### TEST_PLAN\n- go test",
				CostUSD:      0.12,
				Usage:        executor.AgentUsage{InputTokens: 75, CachedInputTokens: 300, OutputTokens: 70},
				Log: "session: s-init model claude-x mode acceptEdits\n" +
					"message: Let me look. First the status.\n" +
					"tool: Bash git status\n" +
					"tool: Edit pkg/a.go\n" +
					"tool error: exit status 1\n" +
					"message: subagent text\n" +
					"tool: Grep TODO\n" +
					"message: All done.\n" +
					"result: success after 4 turns, $0.1200, 2.5s\n",
			},
		},
		{
			name:   "empty result text keeps the last message",
			stdout: lines(initLine, textLine, subLine, `{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"","session_id":"s-init","total_cost_usd":0.01}`),
			want: executor.AgentOutput{SessionID: "s-init", FinalMessage: "All done.", CostUSD: 0.01,
				Log: "session: s-init model claude-x mode acceptEdits\nmessage: All done.\nmessage: subagent text\ntool: Grep TODO\nresult: success after 1 turns, $0.0100\n"},
		},
		{
			name:     "is_error with success subtype",
			stdout:   lines(`{"type":"result","subtype":"success","is_error":true,"num_turns":2,"result":"API Error: 529 overloaded\nretry later","session_id":"s","total_cost_usd":0.02}`),
			exitCode: 1,
			want: executor.AgentOutput{SessionID: "s", FinalMessage: "API Error: 529 overloaded\nretry later", CostUSD: 0.02,
				Failed: true, FailureSummary: "error after 2 turns: API Error: 529 overloaded retry later",
				Log: "result: success after 2 turns, $0.0200\n"},
		},
		{
			name:   "budget stop is a failure though not is_error",
			stdout: lines(`{"type":"result","subtype":"error_max_budget_usd","is_error":false,"num_turns":6,"session_id":"s","total_cost_usd":1.07}`),
			want: executor.AgentOutput{SessionID: "s", CostUSD: 1.07, Failed: true, FailureSummary: "error_max_budget_usd after 6 turns",
				Log: "result: error_max_budget_usd after 6 turns, $1.0700\n"},
		},
		{
			name:     "error during execution",
			stdout:   lines(initLine, `{"type":"result","subtype":"error_during_execution","is_error":true,"num_turns":0,"session_id":"s-init","total_cost_usd":0}`),
			exitCode: 1,
			want: executor.AgentOutput{SessionID: "s-init", Failed: true, FailureSummary: "error_during_execution",
				Log: "session: s-init model claude-x mode acceptEdits\nresult: error_during_execution after 0 turns, $0.0000\n"},
		},
		{
			name:   "old cost field",
			stdout: lines(`{"type":"result","subtype":"success","result":"ok","session_id":"s","cost_usd":0.3,"num_turns":1}`),
			want:   executor.AgentOutput{SessionID: "s", FinalMessage: "ok", CostUSD: 0.3, Log: "result: success after 1 turns, $0.3000\n"},
		},
		{
			name:     "killed without a result",
			stdout:   lines(initLine, toolLine, toolLine2, textLine, `{"type":"assistant","message":{"id":"m4","content":[{"type":"tool_use","name":"mcp__task-relay__relay_ask","input":{"type":"CLARIFICATION"}}`),
			exitCode: 143,
			want: executor.AgentOutput{SessionID: "s-init", FinalMessage: "All done.",
				Usage:  executor.AgentUsage{InputTokens: 16, CachedInputTokens: 102, OutputTokens: 23},
				Failed: true, FailureSummary: "claude exited with code 143",
				Log: "session: s-init model claude-x mode acceptEdits\nmessage: Let me look. First the status.\ntool: Bash git status\ntool: Edit pkg/a.go\nmessage: All done.\nresult: none, claude exited with code 143\n"},
		},
		{
			name:   "no output",
			stdout: nil,
			want:   executor.AgentOutput{Failed: true, FailureSummary: "claude ended without a result", Log: "result: none, claude ended without a result\n"},
		},
		{
			name:     "garbage and a non-zero exit",
			stdout:   []byte("Error: unknown option '--bogus'\n"),
			exitCode: 1,
			want:     executor.AgentOutput{Failed: true, FailureSummary: "claude exited with code 1", Log: "result: none, claude exited with code 1\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Adapter{}.Parse(&executor.AgentConfig{}, &executor.Request{Workdir: "/ws"}, tt.stdout, tt.exitCode)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestClaudeToolSummary(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, input, want string
	}{
		{"Bash", `{"command":"go test ./...\n&& echo ok"}`, "Bash go test ./... && echo ok"},
		{"Read", `{"file_path":"/ws/a.go"}`, "Read a.go"},
		{"Write", `{"file_path":"/elsewhere/b.go"}`, "Write /elsewhere/b.go"},
		{"Edit", `{"file_path":"/ws/../wsx/c.go"}`, "Edit /ws/../wsx/c.go"},
		{"NotebookEdit", `{"notebook_path":"/ws/n.ipynb"}`, "NotebookEdit n.ipynb"},
		{"Glob", `{"pattern":"**/*.go"}`, "Glob **/*.go"},
		{"WebFetch", `{"url":"https://go.dev"}`, "WebFetch https://go.dev"},
		{"Task", `{"description":"find callers","prompt":"..."}`, "Task find callers"},
		{"mcp__task-relay__relay_ask", `{"type":"CHOICE"}`, "mcp__task-relay__relay_ask"},
		{"Bash", `not json`, "Bash"},
		{"Bash", `{"command":"` + strings.Repeat("x", 300) + `"}`, "Bash " + strings.Repeat("x", claudeLogClip-5) + "…"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, claudeToolSummary(tt.name, json.RawMessage(tt.input), "/ws"), tt.input)
	}
}
