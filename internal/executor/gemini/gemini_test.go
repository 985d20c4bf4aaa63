package gemini

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

const geminiStubFinal = "Edited.\n### TEST_PLAN\n- stub\n### NOTES\n- stub"

// geminiBundle is a workspace, a side directory and a home for runs of the
// gemini stub.
type geminiBundle struct {
	stub     string // absolute path of testdata/stubs/gemini
	home     string // HOME of the runs
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
		home:     filepath.Join(dir, "home"),
		workdir:  filepath.Join(dir, "work"),
		metaDir:  filepath.Join(dir, "meta"),
		argsFile: filepath.Join(dir, "args"),
	}
	require.NoError(t, os.Mkdir(b.home, 0o755))
	require.NoError(t, os.Mkdir(b.workdir, 0o755))
	require.NoError(t, os.Mkdir(b.metaDir, 0o700))
	return b
}

// run runs the stub through an executor.Agent with cfg (Name and Binary
// filled in) and env for the stub, and returns the result and the
// arguments the stub was given.
func (b *geminiBundle) run(t *testing.T, cfg executor.AgentConfig, req executor.Request, env map[string]string) (*executor.Result, []string) {
	t.Helper()
	cfg.Name, cfg.Binary = "gemini", b.stub
	cfg.Env = map[string]string{"GEMINI_STUB_ARGS_FILE": b.argsFile, "HOME": b.home}
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
	require.Equal(t, []string{"-p", "Add a greeting.", "-o", "stream-json", "--approval-mode", "auto_edit"}, args)
	out := res.Agent
	require.False(t, out.Failed, out.FailureSummary)
	require.Empty(t, out.FailureSummary)
	require.Equal(t, "sess-1", out.SessionID)
	require.Equal(t, geminiStubFinal, out.FinalMessage)
	require.Equal(t, executor.AgentUsage{InputTokens: 800, CachedInputTokens: 50, OutputTokens: 120}, out.Usage)
	require.Contains(t, out.Log, "gemini: model gemini-2.5-pro: input tokens 800 (50 cached), output tokens 120")
	require.Contains(t, out.Log, `gemini: tool write_file {"file_path":"greeting.txt"}`)

	edited, err := os.ReadFile(filepath.Join(b.workdir, "greeting.txt"))
	require.NoError(t, err)
	require.Equal(t, "gemini was here: Add a greeting.\n", string(edited))
	// The run's home is beside the workspace, never in it.
	entries, err := os.ReadDir(b.workdir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.FileExists(t, filepath.Join(b.metaDir, RunHomeDir, ".gemini", "settings.json"))
}

func TestGeminiApprovalMode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		configured, sandbox, askPolicy, want string
	}{
		{"", "", "", "auto_edit"},
		{"", "workspace-write", "", "auto_edit"},
		{"", "read-only", "", "default"},
		{"yolo", "", "", "yolo"},
		{"default", "", "", "default"},
		// The job's sandbox wins over the configured mode.
		{"yolo", "read-only", "", "default"},
		{"auto_edit", "read-only", "", "default"},
		{"plan", "read-only", "", "plan"},
		// askPolicy picks the mode, never above the configured one.
		{"", "", "untrusted", "auto_edit"},
		{"", "", "on-request", "auto_edit"},
		{"", "", "on-failure", "yolo"},
		{"", "", "never", "yolo"},
		{"auto_edit", "", "never", "auto_edit"},
		{"default", "", "untrusted", "default"},
		{"yolo", "", "untrusted", "auto_edit"},
		{"yolo", "", "on-failure", "yolo"},
		{"", "read-only", "never", "default"},
		{"", "", "someday", "auto_edit"},
	} {
		t.Run(fmt.Sprintf("%s/%s/%s", tc.configured, tc.sandbox, tc.askPolicy), func(t *testing.T) {
			t.Parallel()
			got := ApprovalMode(&executor.AgentConfig{ApprovalMode: tc.configured}, &executor.Request{Sandbox: tc.sandbox, AskPolicy: tc.askPolicy})
			require.Equal(t, tc.want, got)
		})
	}
}

func TestGeminiArgs(t *testing.T) {
	t.Parallel()
	base := []string{"-p", "Do the task.", "-o", "stream-json", "--approval-mode"}
	for _, tc := range []struct {
		name string
		cfg  executor.AgentConfig
		req  executor.Request
		want []string // after base
	}{
		{"defaults", executor.AgentConfig{}, executor.Request{}, []string{"auto_edit"}},
		{"read-only", executor.AgentConfig{}, executor.Request{Sandbox: "read-only"}, []string{"default"}},
		{"ask policy never", executor.AgentConfig{}, executor.Request{AskPolicy: "never"}, []string{"yolo"}},
		{"configured mode", executor.AgentConfig{ApprovalMode: "yolo"}, executor.Request{}, []string{"yolo"}},
		{"read-only wins over the configured mode", executor.AgentConfig{ApprovalMode: "auto_edit"}, executor.Request{Sandbox: "read-only"}, []string{"default"}},
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

// The run trusts its workspace and has a Gemini home of its own, in the
// environment Agent.Run gives it.
func TestGeminiArgvEnv(t *testing.T) {
	t.Parallel()
	meta := t.TempDir()
	cfg := &executor.AgentConfig{Binary: "gemini", BaseEnv: []string{}, Env: map[string]string{"HOME": t.TempDir()}}
	req := &executor.Request{Workdir: t.TempDir(), MetaDir: meta, Prompt: "p", Env: map[string]string{"TASK_RELAY_JOB_ID": "j1"}}
	_, err := Adapter{}.Argv(cfg, req)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"TASK_RELAY_JOB_ID": "j1", "GEMINI_CLI_TRUST_WORKSPACE": "true",
		"GEMINI_CLI_HOME": filepath.Join(meta, RunHomeDir)}, req.Env)

	// The relay's endpoint is never proxied.
	req = &executor.Request{Workdir: t.TempDir(), Prompt: "p", RelayMCPURL: "http://127.0.0.1:3415/mcp"}
	_, err = Adapter{}.Argv(cfg, req)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", req.Env["NO_PROXY"])

	// Without a meta directory there is no run home, and no request env
	// to start from is fine.
	req = &executor.Request{Workdir: t.TempDir(), Prompt: "p"}
	_, err = Adapter{}.Argv(cfg, req)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"GEMINI_CLI_TRUST_WORKSPACE": "true"}, req.Env)
}

func TestGeminiResume(t *testing.T) {
	t.Parallel()
	b := geminiSetup(t)
	res, _ := b.run(t, executor.AgentConfig{}, executor.Request{ResumeSessionID: "sess-0"},
		map[string]string{"GEMINI_STUB_EXPECT_RESUME": "sess-0"})
	require.False(t, res.Agent.Failed, res.Agent.FailureSummary)
	require.Equal(t, "sess-0", res.Agent.SessionID)
	require.Equal(t, "Resumed session sess-0.\n"+geminiStubFinal, res.Agent.FinalMessage)

	// A stub expecting another session refuses.
	res, _ = b.run(t, executor.AgentConfig{}, executor.Request{ResumeSessionID: "sess-9"},
		map[string]string{"GEMINI_STUB_EXPECT_RESUME": "sess-0"})
	require.Equal(t, 2, res.ExitCode)
	require.True(t, res.Agent.Failed)
	require.Equal(t, "gemini exited (exit 2): gemini stub: --resume sess-9, want sess-0", res.Agent.FailureSummary)
}

func TestGeminiExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		exit int
		want string
	}{
		// Gemini prints fatal errors on stderr; the adapter reads both
		// streams.
		{42, "gemini rejected the input (exit 42): Error resuming session: stub: bad input"},
		{53, "gemini hit its turn limit (exit 53): FatalTurnLimitedError: Reached max session turns for this session. Increase the number of turns by specifying maxSessionTurns in settings.json."},
		{1, "gemini failed (exit 1): stub: failure"},
		{7, "gemini exited (exit 7): stub: failure"},
	} {
		t.Run(strconv.Itoa(tc.exit), func(t *testing.T) {
			t.Parallel()
			b := geminiSetup(t)
			res, _ := b.run(t, executor.AgentConfig{}, executor.Request{}, map[string]string{"GEMINI_STUB_EXIT": strconv.Itoa(tc.exit)})
			require.Equal(t, tc.exit, res.ExitCode)
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

// userGemini makes a user's ~/.gemini under a new home with settings and
// other entries, and returns the home.
func userGemini(t *testing.T, settings string, entries ...string) string {
	t.Helper()
	home := t.TempDir()
	dir := filepath.Join(home, ".gemini")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	if settings != "" {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "settings.json"), []byte(settings), 0o600))
	}
	for _, e := range entries {
		if strings.HasSuffix(e, "/") {
			require.NoError(t, os.MkdirAll(filepath.Join(dir, e), 0o700))
		} else {
			require.NoError(t, os.WriteFile(filepath.Join(dir, e), []byte(e), 0o600))
		}
	}
	return home
}

func TestGeminiRunHome(t *testing.T) {
	t.Parallel()
	home := userGemini(t, `{
  // the user's own
  "security": {"auth": {"selectedType": "oauth-personal"}, "environmentVariableRedaction": {"enabled": true}},
  "mcpServers": {"mine": {"command": "my-server"}, "task-relay": {"command": "mcp-task-relay", "args": ["serve"]}},
  "mcp": {"allowed": ["mine"], "excluded": ["task-relay", "other"]},
  /* a URL is not a comment: */ "general": {"homepage": "http://example.com//x"}
}`, "oauth_creds.json", "policies/", "tmp/")
	meta := t.TempDir()
	cfg := &executor.AgentConfig{Binary: "gemini", Env: map[string]string{"HOME": home}}
	req := &executor.Request{Workdir: t.TempDir(), MetaDir: meta, Prompt: "p", Sandbox: "read-only",
		RelayMCPURL: "http://127.0.0.1:3415/mcp", RelayToken: "tok-1", RelayBinary: "/opt/relay dir/mcp-task-relay",
		AskTimeout: 20 * time.Minute, Env: map[string]string{"TASK_RELAY_TOKEN": "tok-1"}}
	_, err := Adapter{}.Argv(cfg, req)
	require.NoError(t, err)

	runDir := filepath.Join(meta, RunHomeDir, ".gemini")
	userDir := filepath.Join(home, ".gemini")
	for _, e := range []string{"oauth_creds.json", "policies", "tmp", "history"} {
		target, err := os.Readlink(filepath.Join(runDir, e))
		require.NoError(t, err, e)
		require.Equal(t, filepath.Join(userDir, e), target)
	}
	require.DirExists(t, filepath.Join(userDir, "history"), "the session store is made where it lasts")

	raw, err := os.ReadFile(filepath.Join(runDir, "settings.json"))
	require.NoError(t, err)
	fi, err := os.Stat(filepath.Join(runDir, "settings.json"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	var got map[string]any
	require.NoError(t, json.Unmarshal(raw, &got))
	policy := filepath.Join(meta, RunHomeDir, PolicyFile)
	want := map[string]any{
		"security": map[string]any{"auth": map[string]any{"selectedType": "oauth-personal"},
			"environmentVariableRedaction": map[string]any{"enabled": true, "allowed": []any{"TASK_RELAY_TOKEN"}}},
		"mcpServers": map[string]any{
			"mine": map[string]any{"command": "my-server"},
			"task-relay": map[string]any{
				"httpUrl":     "http://127.0.0.1:3415/mcp",
				"headers":     map[string]any{"Authorization": "Bearer ${TASK_RELAY_TOKEN}"},
				"timeout":     float64(21 * 60 * 1000),
				"trust":       true,
				"description": "The mcp-task-relay running this job: relay_ask asks a question and waits for the answer; relay_approve asks for an approval.",
			},
		},
		"mcp":         map[string]any{"allowed": []any{"mine", "task-relay"}, "excluded": []any{"other"}},
		"general":     map[string]any{"homepage": "http://example.com//x"},
		"policyPaths": []any{filepath.Join(userDir, "policies"), policy},
		"tools":       map[string]any{"shell": map[string]any{"inactivityTimeout": float64(21 * 60)}},
	}
	require.Equal(t, want, got)

	rules, err := os.ReadFile(policy)
	require.NoError(t, err)
	require.Equal(t, `# The rules of one mcp-task-relay job run (mode default).

[[rule]]
toolName = "run_shell_command"
commandPrefix = "'/opt/relay dir/mcp-task-relay' ask"
decision = "allow"
priority = 999

[[rule]]
toolName = "mcp_task-relay_*"
decision = "allow"
priority = 999

[[rule]]
toolName = ["write_file", "replace", "run_shell_command"]
decision = "deny"
priority = 998
denyMessage = "This job is read-only (execution.sandbox): do not change files; report what you would change instead."
`, string(rules))

	// A second attempt starts over; a token not in the environment is
	// written out, and the ask timeout never lowers gemini's own.
	req.Sandbox, req.Env, req.AskTimeout = "", nil, time.Minute
	_, err = Adapter{}.Argv(cfg, req)
	require.NoError(t, err)
	raw, err = os.ReadFile(filepath.Join(runDir, "settings.json"))
	require.NoError(t, err)
	require.Contains(t, string(raw), `"Authorization": "Bearer tok-1"`)
	require.Contains(t, string(raw), `"timeout": 600000`)
	require.Contains(t, string(raw), `"inactivityTimeout": 600`)
	rules, err = os.ReadFile(policy)
	require.NoError(t, err)
	require.NotContains(t, string(rules), "deny")
}

func TestGeminiRunHomeWithoutUserSettings(t *testing.T) {
	t.Parallel()
	home := t.TempDir() // no .gemini at all
	meta := t.TempDir()
	_, err := Adapter{}.Argv(&executor.AgentConfig{Binary: "gemini", Env: map[string]string{"HOME": home}},
		&executor.Request{Workdir: t.TempDir(), MetaDir: meta, Prompt: "p"})
	require.NoError(t, err)
	raw, err := os.ReadFile(filepath.Join(meta, RunHomeDir, ".gemini", "settings.json"))
	require.NoError(t, err)
	require.JSONEq(t, fmt.Sprintf(`{"policyPaths": [%q]}`, filepath.Join(meta, RunHomeDir, PolicyFile)), string(raw))
	require.DirExists(t, filepath.Join(home, ".gemini", "tmp"))

	// GEMINI_CLI_HOME names the user's home for gemini, over HOME.
	other := userGemini(t, `{"model": {"name": "gemini-2.5-flash"}}`)
	_, err = Adapter{}.Argv(&executor.AgentConfig{Binary: "gemini", Env: map[string]string{"HOME": home, "GEMINI_CLI_HOME": other}},
		&executor.Request{Workdir: t.TempDir(), MetaDir: meta, Prompt: "p"})
	require.NoError(t, err)
	raw, err = os.ReadFile(filepath.Join(meta, RunHomeDir, ".gemini", "settings.json"))
	require.NoError(t, err)
	require.Contains(t, string(raw), "gemini-2.5-flash")
}

func TestGeminiRunHomeBadSettings(t *testing.T) {
	t.Parallel()
	home := userGemini(t, `{"model": `)
	_, err := Adapter{}.Argv(&executor.AgentConfig{Binary: "gemini", Env: map[string]string{"HOME": home}},
		&executor.Request{Workdir: t.TempDir(), MetaDir: t.TempDir(), Prompt: "p"})
	require.ErrorContains(t, err, "gemini: gemini settings "+filepath.Join(home, ".gemini", "settings.json"))
}

func TestStripJSONComments(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`{"a": 1} // c`:                   `{"a": 1} `,
		"{\"a\": 1, // c\n\"b\": 2}":      "{\"a\": 1, \n\"b\": 2}",
		`{"a": /* x */ 1}`:                `{"a":   1}`,
		`{"u": "http://x//y", "s": "/*"}`: `{"u": "http://x//y", "s": "/*"}`,
		`{"q": "a\"//b"}`:                 `{"q": "a\"//b"}`,
		`{"a": 1} /* unterminated`:        `{"a": 1}  `,
	} {
		require.Equal(t, want, string(stripJSONComments([]byte(in))), in)
	}
}

func TestGeminiNoProxy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		url  string
		want string
	}{
		{nil, "http://127.0.0.1:3415/mcp", "127.0.0.1"},
		{map[string]string{"NO_PROXY": "example.com"}, "http://127.0.0.1:3415/mcp", "example.com,127.0.0.1"},
		{map[string]string{"no_proxy": "example.com"}, "http://[::1]:3415/mcp", "example.com,::1"},
		{map[string]string{"NO_PROXY": "example.com, 127.0.0.1"}, "http://127.0.0.1:3415/mcp", ""},
		{nil, "", ""},
	} {
		got := noProxy(func(k string) string { return tc.env[k] }, tc.url)
		require.Equal(t, tc.want, got, "%v %s", tc.env, tc.url)
	}
}
