package claude

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
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
	env     string   // the timeouts the stub saw in its environment
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
	argsFile, mcpFile, envFile := filepath.Join(dir, "args"), filepath.Join(dir, "mcp.json"), filepath.Join(dir, "env")
	cfg.Name, cfg.Binary = "claude", claudeStub(t)
	if cfg.Env == nil {
		cfg.Env = map[string]string{}
	}
	cfg.Env["CLAUDE_STUB_ARGS_FILE"], cfg.Env["CLAUDE_STUB_MCP_FILE"], cfg.Env["CLAUDE_STUB_ENV_FILE"] = argsFile, mcpFile, envFile
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
	if b, err := os.ReadFile(envFile); err == nil {
		r.env = string(b)
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
	require.Contains(t, tools, "Bash(go test:*)")
	for _, w := range claudeWriteTools {
		require.NotContains(t, tools, w, "acceptEdits accepts edits in the workspace; an allow rule would accept them anywhere")
	}
	require.NotContains(t, tools, ClaudeAskTool)
	sys, _ := flagValue(argv, "--append-system-prompt")
	require.Contains(t, sys, `mcp-task-relay ask --type TYPE "your question"`)
	require.Contains(t, sys, "### TEST_PLAN")
	require.NotContains(t, sys, "relay_ask")
	for _, f := range []string{"--mcp-config", "--permission-prompt-tool", "--resume", "--model", "--max-budget-usd", "--disallowedTools"} {
		require.NotContains(t, argv, f)
	}
	require.NoFileExists(t, filepath.Join(r.metaDir, ClaudeMCPConfigFile))
	require.Empty(t, r.mcp)
	require.Equal(t, "BASH_DEFAULT_TIMEOUT_MS=660000\nCLAUDE_CODE_MCP_TOOL_IDLE_TIMEOUT=\n", r.env,
		"the ask command may wait the relay's default ask deadline plus a minute")
}

func TestClaudeRunRelayMCP(t *testing.T) {
	t.Parallel()
	req := executor.Request{
		RelayMCPURL:     "http://127.0.0.1:7777/mcp/executor",
		RelayToken:      "tok-secret",
		ResumeSessionID: "prev-session",
		Model:           "claude-job-model",
		MaxBudgetUSD:    2.5,
		AskTimeout:      90 * time.Second,
		RelayBinary:     "/opt/relay/bin/mcp-task-relay",
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
	requireFlag(t, argv, "--permission-mode", "acceptEdits")
	require.Contains(t, allowedTools(t, argv), ClaudeAskTool)
	require.Contains(t, allowedTools(t, argv), "Bash(/opt/relay/bin/mcp-task-relay ask:*)", "the ask command by the path the prompt gives")
	sys, _ := flagValue(argv, "--append-system-prompt")
	require.Contains(t, sys, "relay_ask tool of the task-relay MCP server")
	require.Contains(t, sys, `/opt/relay/bin/mcp-task-relay ask --type TYPE "your question"`)
	require.Equal(t, "BASH_DEFAULT_TIMEOUT_MS=150000\nCLAUDE_CODE_MCP_TOOL_IDLE_TIMEOUT=150000\n", r.env,
		"the ask's deadline plus a minute")
	for _, a := range argv {
		require.NotContains(t, a, "tok-secret", "the token stays out of argv")
	}

	var cfg map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.mcp), &cfg), r.mcp)
	require.Equal(t, map[string]any{"mcpServers": map[string]any{"task-relay": map[string]any{
		"type":       "http",
		"url":        "http://127.0.0.1:7777/mcp/executor",
		"headers":    map[string]any{"Authorization": "Bearer tok-secret"},
		"timeout":    float64(150000),
		"alwaysLoad": true,
	}}}, cfg)
	fi, err := os.Stat(mcpPath)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

func TestClaudeRunReadOnly(t *testing.T) {
	t.Parallel()
	t.Run("dontAsk", func(t *testing.T) {
		t.Parallel()
		r := runClaude(t, executor.AgentConfig{PermissionMode: "bypassPermissions"},
			executor.Request{Sandbox: "read-only", AskPolicy: "on-request", RelayMCPURL: "http://relay/mcp"}, nil)
		require.False(t, r.out.Failed, r.out.FailureSummary)
		requireFlag(t, r.argv, "--permission-mode", "dontAsk")
		requireFlag(t, r.argv, "--disallowedTools", "Write,Edit,NotebookEdit")
		require.NotContains(t, r.argv, "--permission-prompt-tool", "nothing is put to relay_approve")
		tools := allowedTools(t, r.argv)
		require.Contains(t, tools, ClaudeAskRule)
		require.Contains(t, tools, ClaudeAskTool)
		require.Contains(t, tools, "Read")
		require.NotContains(t, tools, "Bash(gofmt:*)", "gofmt -w writes")
		sys, _ := flagValue(r.argv, "--append-system-prompt")
		require.Contains(t, sys, "read-only")
		require.NoFileExists(t, filepath.Join(r.workdir, "claude-was-here.txt"))
	})
	t.Run("configured mode that writes nothing wins", func(t *testing.T) {
		t.Parallel()
		r := runClaude(t, executor.AgentConfig{PermissionMode: "default"}, executor.Request{Sandbox: "read-only"}, nil)
		require.False(t, r.out.Failed, r.out.FailureSummary)
		requireFlag(t, r.argv, "--permission-mode", "default")
		requireFlag(t, r.argv, "--disallowedTools", "Write,Edit,NotebookEdit")
		require.NoFileExists(t, filepath.Join(r.workdir, "claude-was-here.txt"))
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
	defaultTools := strings.Join(append(append(slices.Clone(claudeReadTools), claudeBuildTools...), ClaudeAskRule), ",")
	sys := claudeSystemPrompt(false, false, false, "")

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
			want: append(slices.Insert(base("Do it.", "dontAsk", "Read,Bash(make:*),"+ClaudeAskRule, claudeSystemPrompt(true, false, false, ""), "12"),
				10, "--disallowedTools", "Write,Edit,NotebookEdit"),
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
			name: "configured mode without askPolicy",
			cfg:  executor.AgentConfig{PermissionMode: "plan"},
			req:  executor.Request{Prompt: "Do it."},
			want: base("Do it.", "plan", defaultTools, sys, "50"),
		},
		{
			name: "askPolicy wins over the configured mode",
			cfg:  executor.AgentConfig{PermissionMode: "plan"},
			req:  executor.Request{Prompt: "Do it.", AskPolicy: "untrusted"},
			want: base("Do it.", "default", defaultTools, sys, "50"),
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
	require.JSONEq(t, `{"mcpServers":{"task-relay":{"type":"http","url":"http://relay/mcp","timeout":660000,"alwaysLoad":true}}}`, string(b),
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
			name: "budget stop is over budget",
			stdout: lines(`{"type":"result","subtype":"error_max_budget_usd","is_error":true,"num_turns":6,"session_id":"s","total_cost_usd":1.07,` +
				`"usage":{"input_tokens":10,"output_tokens":1},"errors":["Reached maximum budget ($1)"],` +
				`"modelUsage":{"claude-sonnet-4-5":{"inputTokens":200000,"outputTokens":30000,"cacheReadInputTokens":100000,"cacheCreationInputTokens":5000,"costUSD":1.0},` +
				`"claude-haiku-4-5":{"inputTokens":1000,"outputTokens":100,"cacheReadInputTokens":0,"cacheCreationInputTokens":0,"costUSD":0.07}}}`),
			exitCode: 1,
			want: executor.AgentOutput{SessionID: "s", CostUSD: 1.07, OverBudget: true, Failed: true,
				FailureSummary: "error_max_budget_usd after 6 turns: Reached maximum budget ($1)",
				Usage:          executor.AgentUsage{InputTokens: 206000, CachedInputTokens: 100000, OutputTokens: 30100},
				Log:            "result: error_max_budget_usd after 6 turns, $1.0700\n"},
		},
		{
			name: "error during execution",
			stdout: lines(initLine, `{"type":"result","subtype":"error_during_execution","is_error":true,"num_turns":0,"session_id":"s-init","total_cost_usd":0,`+
				`"errors":["No conversation found with session ID: s-init"," ","No conversation found with session ID: s-init"]}`),
			exitCode: 1,
			want: executor.AgentOutput{SessionID: "s-init", Failed: true, FailureSummary: "error_during_execution: No conversation found with session ID: s-init",
				Log: "session: s-init model claude-x mode acceptEdits\nresult: error_during_execution after 0 turns, $0.0000\n"},
		},
		{
			name: "API error and permission denials",
			stdout: lines(`{"type":"result","subtype":"success","is_error":true,"api_error_status":400,"num_turns":1,"result":"API Error: 400 bad","session_id":"s",` +
				`"permission_denials":[{"tool_name":"Bash","tool_use_id":"t1","tool_input":{"command":"make deploy"}},{"tool_name":"Write","tool_use_id":"t2","tool_input":{"file_path":"/ws/a.go"}}]}`),
			exitCode: 1,
			want: executor.AgentOutput{SessionID: "s", FinalMessage: "API Error: 400 bad", Failed: true,
				FailureSummary: "error after 1 turns (API status 400): API Error: 400 bad",
				Log:            "denied: Bash make deploy\ndenied: Write a.go\nresult: success after 1 turns, $0.0000\n"},
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

func TestClaudePermissions(t *testing.T) {
	t.Parallel()
	mcp := "http://relay/mcp"
	for _, tt := range []struct {
		name       string
		cfgMode    string
		req        executor.Request
		mode       string
		prompt     bool
		disallowed bool
	}{
		{name: "defaults", req: executor.Request{RelayMCPURL: mcp}, mode: "acceptEdits", prompt: true},
		{name: "no relay MCP, no prompt tool", req: executor.Request{}, mode: "acceptEdits"},
		{name: "configured mode", cfgMode: "default", req: executor.Request{RelayMCPURL: mcp}, mode: "default", prompt: true},
		{name: "untrusted", cfgMode: "bypassPermissions", req: executor.Request{RelayMCPURL: mcp, AskPolicy: "untrusted"}, mode: "default", prompt: true},
		{name: "on-request", cfgMode: "plan", req: executor.Request{RelayMCPURL: mcp, AskPolicy: "on-request"}, mode: "acceptEdits", prompt: true},
		{name: "on-failure", req: executor.Request{RelayMCPURL: mcp, AskPolicy: "on-failure"}, mode: "acceptEdits", prompt: true},
		{name: "never", req: executor.Request{RelayMCPURL: mcp, AskPolicy: "never"}, mode: "acceptEdits"},
		{name: "read-only", req: executor.Request{RelayMCPURL: mcp, Sandbox: "read-only", AskPolicy: "untrusted"}, mode: "dontAsk", disallowed: true},
		{name: "read-only, configured plan", cfgMode: "plan", req: executor.Request{RelayMCPURL: mcp, Sandbox: "read-only"}, mode: "plan", disallowed: true},
		{name: "read-only, configured acceptEdits", cfgMode: "acceptEdits", req: executor.Request{RelayMCPURL: mcp, Sandbox: "read-only"}, mode: "dontAsk", disallowed: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := permissionsFor(&executor.AgentConfig{PermissionMode: tt.cfgMode}, &tt.req)
			require.Equal(t, tt.mode, p.mode)
			require.Equal(t, tt.prompt, p.prompt)
			require.Equal(t, tt.disallowed, len(p.disallowed) > 0)
		})
	}
}

func TestClaudeArgvKeepsConfiguredTimeouts(t *testing.T) {
	t.Parallel()
	cfg := executor.AgentConfig{Binary: "claude", Env: map[string]string{ClaudeBashTimeoutEnv: "5000"}}
	req := executor.Request{Prompt: "Do it.", MetaDir: t.TempDir(), RelayMCPURL: "http://relay/mcp", AskTimeout: 30 * time.Second}
	_, err := Adapter{}.Argv(&cfg, &req)
	require.NoError(t, err)
	require.Equal(t, map[string]string{ClaudeIdleTimeoutEnv: "90000"}, req.Env, "the executor's own setting stays")
}

func TestClaudeSystemPromptFollowsAskPolicy(t *testing.T) {
	t.Parallel()
	sysOf := func(policy string) string {
		cfg := executor.AgentConfig{Binary: "claude"}
		req := executor.Request{Prompt: "Do it.", MetaDir: t.TempDir(), RelayMCPURL: "http://relay/mcp", AskPolicy: policy}
		argv, err := Adapter{}.Argv(&cfg, &req)
		require.NoError(t, err)
		i := slices.Index(argv, "--append-system-prompt")
		require.GreaterOrEqual(t, i, 0)
		return argv[i+1]
	}
	asking := sysOf("on-request")
	require.Contains(t, asking, "ask --type TYPE")
	require.Contains(t, asking, "relay_ask tool")

	never := sysOf("never")
	require.Contains(t, never, "may not ask questions")
	require.NotContains(t, never, "ask --type")
	require.NotContains(t, never, "relay_ask tool")
	require.Contains(t, never, "### NOTES", "the final sections are still asked for")
}
