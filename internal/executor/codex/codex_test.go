package codex

import (
	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
	"github.com/mcp-task-relay/mcp-task-relay/internal/executor/executortest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// codexStubSession is the thread id testdata/stubs/codex reports for a new
// session.
const codexStubSession = "0199a213-81c0-7800-8aa1-bbab2a035a53"

// codexBundle is a workspace, a meta directory and the stub's argument
// record for one run of the codex stub.
type codexBundle struct {
	stub     string
	workdir  string
	metaDir  string
	argsFile string
}

func setupCodex(t *testing.T) *codexBundle {
	t.Helper()
	stub, err := filepath.Abs(filepath.Join("testdata", "stubs", "codex"))
	require.NoError(t, err)
	b := &codexBundle{stub: stub, workdir: t.TempDir(), metaDir: t.TempDir()}
	b.argsFile = filepath.Join(t.TempDir(), "args")
	return b
}

// run runs the stub as codex with cfg and req, filling in what the bundle
// owns: binary, stub environment, workdir and meta directory.
func (b *codexBundle) run(t *testing.T, cfg executor.AgentConfig, req executor.Request, env map[string]string) *executor.Result {
	t.Helper()
	cfg.Name = "codex"
	cfg.Binary = b.stub
	cfg.Env = map[string]string{"CODEX_STUB_ARGS_FILE": b.argsFile}
	for k, v := range env {
		cfg.Env[k] = v
	}
	req.Workdir, req.MetaDir = b.workdir, b.metaDir
	if req.Prompt == "" {
		req.Prompt = "fix the failing test"
	}
	// A stub stuck reading an open stdin fails the test instead of hanging it.
	req.Timeout = 30 * time.Second
	agent, err := executor.NewAgent(cfg, Adapter{})
	require.NoError(t, err)
	res, err := agent.Run(t.Context(), &req)
	require.NoError(t, err)
	require.False(t, res.TimedOut, "codex stub timed out; stderr: %s", res.Stderr)
	require.NotNil(t, res.Agent)
	return res
}

// args returns the arguments the stub was run with, after the binary.
func (b *codexBundle) args(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(b.argsFile)
	require.NoError(t, err)
	return strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
}

func TestCodexRun(t *testing.T) {
	t.Parallel()
	executortest.Modes(t, func(t *testing.T, shim string) {
		b := setupCodex(t)
		res := b.run(t, executor.AgentConfig{Shim: shim}, executor.Request{JobID: "job_1"}, nil)
		require.Equal(t, 0, res.ExitCode, "stderr: %s", res.Stderr)

		out := res.Agent
		require.Equal(t, codexStubSession, out.SessionID)
		require.Equal(t, executor.AgentUsage{InputTokens: 1200, CachedInputTokens: 200, OutputTokens: 300}, out.Usage)
		require.False(t, out.Failed)
		require.Empty(t, out.FailureSummary)
		require.Equal(t, "Appended a line to codex-was-here.txt.\n\n### TEST_PLAN\n- ran the stub\n### NOTES\n- stubbed", out.FinalMessage)
		require.Equal(t, strings.Join([]string{
			"$ go test ./... (exit 0)",
			"changed: add codex-was-here.txt",
			"message: Appended a line to codex-was-here.txt. …",
		}, "\n"), out.Log)

		edited, err := os.ReadFile(filepath.Join(b.workdir, "codex-was-here.txt"))
		require.NoError(t, err)
		require.Equal(t, "codex was here (session "+codexStubSession+")\n", string(edited))

		require.Equal(t, []string{
			"exec", "--json", "--skip-git-repo-check",
			"-C", b.workdir,
			"--sandbox", "workspace-write",
			"-c", "sandbox_workspace_write.network_access=true",
			"-c", `approval_policy="never"`,
			"-o", filepath.Join(b.metaDir, CodexLastMessageFile),
			"--", "fix the failing test",
		}, b.args(t))
	})
}

func TestCodexRunArgv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  executor.AgentConfig
		req  executor.Request
		env  map[string]string
		// want lists the arguments between the -o file and "--".
		want []string
		// sandbox is the --sandbox value and network whether codex is given
		// network access.
		sandbox string
		network bool
		// resume is the session the run resumes, if any.
		resume string
	}{
		{
			name:    "read-only",
			req:     executor.Request{Sandbox: "read-only"},
			sandbox: "read-only",
		},
		{
			name:    "explicit workspace-write",
			req:     executor.Request{Sandbox: "workspace-write"},
			sandbox: "workspace-write", network: true,
		},
		{
			name:    "configured model",
			cfg:     executor.AgentConfig{Model: "gpt-5-codex"},
			want:    []string{"-m", "gpt-5-codex"},
			sandbox: "workspace-write", network: true,
		},
		{
			name:    "job model wins",
			cfg:     executor.AgentConfig{Model: "gpt-5-codex"},
			req:     executor.Request{Model: "o4-mini"},
			want:    []string{"-m", "o4-mini"},
			sandbox: "workspace-write", network: true,
		},
		{
			name:    "extra args",
			cfg:     executor.AgentConfig{Model: "gpt-5-codex", ExtraArgs: []string{"--ephemeral", "-c", "model_reasoning_effort=high"}},
			req:     executor.Request{Sandbox: "read-only"},
			want:    []string{"-m", "gpt-5-codex", "--ephemeral", "-c", "model_reasoning_effort=high"},
			sandbox: "read-only",
		},
		{
			name:    "resume",
			cfg:     executor.AgentConfig{ExtraArgs: []string{"--ephemeral"}},
			req:     executor.Request{ResumeSessionID: "0199a300-0000-7000-8000-000000000001"},
			env:     map[string]string{"CODEX_STUB_EXPECT_RESUME": "0199a300-0000-7000-8000-000000000001"},
			want:    []string{"--ephemeral", "resume", "0199a300-0000-7000-8000-000000000001"},
			sandbox: "workspace-write", network: true,
			resume: "0199a300-0000-7000-8000-000000000001",
		},
		{
			name:    "read-only resume",
			req:     executor.Request{Sandbox: "read-only", ResumeSessionID: "0199a300-0000-7000-8000-000000000002"},
			env:     map[string]string{"CODEX_STUB_EXPECT_RESUME": "0199a300-0000-7000-8000-000000000002"},
			want:    []string{"resume", "0199a300-0000-7000-8000-000000000002"},
			sandbox: "read-only",
			resume:  "0199a300-0000-7000-8000-000000000002",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupCodex(t)
			res := b.run(t, tt.cfg, tt.req, tt.env)
			require.Equal(t, 0, res.ExitCode, "stderr: %s", res.Stderr)

			want := []string{"exec", "--json", "--skip-git-repo-check", "-C", b.workdir, "--sandbox", tt.sandbox}
			if tt.network {
				want = append(want, "-c", "sandbox_workspace_write.network_access=true")
			}
			want = append(want, "-c", `approval_policy="never"`)
			want = append(want, "-o", filepath.Join(b.metaDir, CodexLastMessageFile))
			want = append(want, tt.want...)
			want = append(want, "--", "fix the failing test")
			require.Equal(t, want, b.args(t))

			out := res.Agent
			require.False(t, out.Failed, out.FailureSummary)
			require.Contains(t, out.FinalMessage, "### TEST_PLAN")
			if tt.resume != "" {
				require.Equal(t, tt.resume, out.SessionID)
				require.Contains(t, out.FinalMessage, "Resumed session "+tt.resume+".")
			} else {
				require.Equal(t, codexStubSession, out.SessionID)
			}
			_, err := os.Stat(filepath.Join(b.workdir, "codex-was-here.txt"))
			if tt.sandbox == "read-only" {
				require.ErrorIs(t, err, os.ErrNotExist, "the stub edits nothing in the read-only sandbox")
				require.NotContains(t, out.Log, "changed:")
			} else {
				require.NoError(t, err)
				require.Contains(t, out.Log, "changed: add codex-was-here.txt")
			}
		})
	}
}

func TestCodexRunFailure(t *testing.T) {
	t.Parallel()
	b := setupCodex(t)
	// A final message left by an earlier run must not be taken for this
	// run's, which writes none.
	stale := filepath.Join(b.metaDir, CodexLastMessageFile)
	require.NoError(t, os.WriteFile(stale, []byte("an old answer\n"), 0o600))

	res := b.run(t, executor.AgentConfig{}, executor.Request{}, map[string]string{"CODEX_STUB_FAIL": "1"})
	require.Equal(t, 1, res.ExitCode)
	out := res.Agent
	require.True(t, out.Failed)
	require.Equal(t, "stub: model refused", out.FailureSummary)
	require.Equal(t, codexStubSession, out.SessionID)
	require.Empty(t, out.FinalMessage)
	require.Zero(t, out.Usage)
	require.Equal(t, "error: stub: model refused\nturn failed: stub: model refused", out.Log)
	require.NoFileExists(t, stale)
}

func TestCodexRunCustomEditAndSession(t *testing.T) {
	t.Parallel()
	b := setupCodex(t)
	require.NoError(t, os.WriteFile(filepath.Join(b.workdir, "NOTES.md"), []byte("notes\n"), 0o600))
	res := b.run(t, executor.AgentConfig{}, executor.Request{}, map[string]string{
		"CODEX_STUB_EDIT":    "NOTES.md",
		"CODEX_STUB_SESSION": "0199a400-0000-7000-8000-00000000000a",
	})
	require.Equal(t, 0, res.ExitCode, "stderr: %s", res.Stderr)
	require.Equal(t, "0199a400-0000-7000-8000-00000000000a", res.Agent.SessionID)
	require.Contains(t, res.Agent.Log, "changed: update NOTES.md")
	edited, err := os.ReadFile(filepath.Join(b.workdir, "NOTES.md"))
	require.NoError(t, err)
	require.Equal(t, "notes\ncodex was here (session 0199a400-0000-7000-8000-00000000000a)\n", string(edited))
}

// TestCodexStubRejects checks that the stub is strict about the command
// line, so that the tests above prove the adapter's argv is right.
func TestCodexStubRejects(t *testing.T) {
	t.Parallel()
	b := setupCodex(t)
	last := filepath.Join(b.metaDir, CodexLastMessageFile)
	good := []string{"exec", "--json", "--skip-git-repo-check", "-C", b.workdir, "--sandbox", "workspace-write",
		"-c", "sandbox_workspace_write.network_access=true", "-o", last}
	// without returns good without the run of arguments drop.
	without := func(drop ...string) []string {
		i := slices.Index(good, drop[0])
		return slices.Delete(slices.Clone(good), i, i+len(drop))
	}
	with := func(extra ...string) []string { return append(slices.Clone(good), extra...) }
	prompted := func(args []string) []string { return append(args, "--", "p") }
	tests := []struct {
		name  string
		args  []string
		env   []string
		stdin string
		want  string
	}{
		{name: "no exec", args: []string{"--json", "--", "p"}, want: "want exec"},
		{name: "no --json", args: prompted(without("--json")), want: "--json is missing"},
		{name: "no --skip-git-repo-check", args: prompted(without("--skip-git-repo-check")), want: "--skip-git-repo-check is missing"},
		{name: "no -C", args: prompted(without("-C", b.workdir)), want: "-C is missing"},
		{name: "missing workdir", args: []string{"exec", "--json", "--skip-git-repo-check", "-C", filepath.Join(b.workdir, "nope"), "--sandbox", "read-only", "-o", last, "--", "p"}, want: "not a directory"},
		{name: "no --sandbox", args: prompted(without("--sandbox", "workspace-write")), want: "--sandbox is missing"},
		{name: "bad sandbox", args: []string{"exec", "--json", "--skip-git-repo-check", "-C", b.workdir, "--sandbox", "danger-full-access", "-o", last, "--", "p"}, want: "want read-only or workspace-write"},
		{name: "no network", args: prompted(without("-c", "sandbox_workspace_write.network_access=true")), want: "network_access=true is missing"},
		{name: "network when read-only", args: []string{"exec", "--json", "--skip-git-repo-check", "-C", b.workdir, "--sandbox", "read-only", "-c", "sandbox_workspace_write.network_access=true", "-o", last, "--", "p"}, want: "read-only sandbox"},
		{name: "no -o", args: prompted(without("-o", last)), want: "-o is missing"},
		{name: "no prompt", args: with(), want: "prompt is missing"},
		{name: "sandbox after resume", args: []string{"exec", "--json", "--skip-git-repo-check", "-C", b.workdir, "-o", last, "resume", "s1", "--sandbox", "read-only", "--", "p"}, want: "after resume"},
		{name: "wrong session", args: prompted(with("resume", "s1")), env: []string{"CODEX_STUB_EXPECT_RESUME=s2"}, want: "want 's2'"},
		{name: "not resuming", args: prompted(with()), env: []string{"CODEX_STUB_EXPECT_RESUME=s2"}, want: "want 's2'"},
		{name: "stdin not empty", args: prompted(with()), stdin: "more prompt", want: "stdin is not empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), b.stub, tt.args...)
			cmd.Dir = b.workdir
			cmd.Env = append(os.Environ(), tt.env...)
			cmd.Stdin = strings.NewReader(tt.stdin)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee)
			require.Equal(t, 2, ee.ExitCode())
			require.Contains(t, stderr.String(), tt.want)
		})
	}
}

func TestCodexArgv(t *testing.T) {
	t.Parallel()
	meta := t.TempDir()
	promptFile := filepath.Join(t.TempDir(), "prompt.md")
	require.NoError(t, os.WriteFile(promptFile, []byte("from the file"), 0o600))
	cfg := &executor.AgentConfig{Binary: "/opt/codex"}
	// Side files of an earlier run are removed.
	for _, name := range []string{CodexLastMessageFile, CodexUsageBaselineFile} {
		require.NoError(t, os.WriteFile(filepath.Join(meta, name), []byte("old"), 0o600))
	}

	argv, err := Adapter{}.Argv(cfg, &executor.Request{Workdir: "/ws", MetaDir: meta, PromptFile: promptFile, Model: "m1"})
	require.NoError(t, err)
	require.Equal(t, []string{
		"/opt/codex", "exec", "--json", "--skip-git-repo-check", "-C", "/ws", "--sandbox", "workspace-write",
		"-c", "sandbox_workspace_write.network_access=true", "-c", `approval_policy="never"`,
		"-o", filepath.Join(meta, CodexLastMessageFile), "-m", "m1", "--", "from the file",
	}, argv)
	require.NoFileExists(t, filepath.Join(meta, CodexLastMessageFile))
	require.NoFileExists(t, filepath.Join(meta, CodexUsageBaselineFile))

	// Without a meta directory codex gets no -o.
	argv, err = Adapter{}.Argv(cfg, &executor.Request{Workdir: "/ws", Sandbox: "read-only", Prompt: "-v is a prompt too"})
	require.NoError(t, err)
	require.Equal(t, []string{
		"/opt/codex", "exec", "--json", "--skip-git-repo-check", "-C", "/ws", "--sandbox", "read-only",
		"-c", `approval_policy="never"`, "--", "-v is a prompt too",
	}, argv)

	// The relay's executor MCP endpoint, for this run only: the token by
	// the name of its variable, the tool timeout past the ask deadline.
	for name, tc := range map[string]struct {
		askTimeout time.Duration
		want       string
	}{
		"ask timeout": {askTimeout: 90*time.Second + 500*time.Millisecond, want: "121"},
		"default":     {want: "630"},
	} {
		argv, err = Adapter{}.Argv(cfg, &executor.Request{Workdir: "/ws", Sandbox: "read-only", Prompt: "p", AskPolicy: "on-request",
			RelayMCPURL: "http://127.0.0.1:4100/mcp", RelayToken: "tok-secret", AskTimeout: tc.askTimeout})
		require.NoError(t, err, name)
		require.Equal(t, []string{
			"/opt/codex", "exec", "--json", "--skip-git-repo-check", "-C", "/ws", "--sandbox", "read-only",
			"-c", `approval_policy="never"`,
			"-c", `mcp_servers.task-relay-job.url="http://127.0.0.1:4100/mcp"`,
			"-c", `mcp_servers.task-relay-job.bearer_token_env_var="TASK_RELAY_TOKEN"`,
			"-c", "mcp_servers.task-relay-job.tool_timeout_sec=" + tc.want,
			"-c", `mcp_servers.task-relay-job.default_tools_approval_mode="approve"`,
			"--", "p",
		}, argv, name)
		require.NotContains(t, strings.Join(argv, " "), "tok-secret", "the token is not on the command line")
	}
	// Without a token there is nothing to authenticate with.
	argv, err = Adapter{}.Argv(cfg, &executor.Request{Workdir: "/ws", Prompt: "p", RelayMCPURL: "http://127.0.0.1:4100/mcp"})
	require.NoError(t, err)
	require.NotContains(t, strings.Join(argv, " "), "mcp_servers")

	for _, policy := range []string{"", "never", "on-request", "on-failure", "untrusted"} {
		argv, err := Adapter{}.Argv(cfg, &executor.Request{Workdir: "/ws", Prompt: "p", AskPolicy: policy})
		require.NoError(t, err, policy)
		require.Contains(t, argv, `approval_policy="never"`, "codex exec cannot wait for approvals (askPolicy %q)", policy)
	}

	for name, req := range map[string]*executor.Request{
		"unknown sandbox":    {Workdir: "/ws", Sandbox: "danger-full-access", Prompt: "p"},
		"unknown ask policy": {Workdir: "/ws", AskPolicy: "sometimes", Prompt: "p"},
		"empty prompt":       {Workdir: "/ws", Prompt: " \n"},
		"no prompt file":     {Workdir: "/ws", PromptFile: filepath.Join(meta, "missing.md")},
		"prompt too large":   {Workdir: "/ws", Prompt: strings.Repeat("x", 128<<10)},
	} {
		_, err := Adapter{}.Argv(cfg, req)
		require.Error(t, err, name)
	}
}

func TestCodexTOMLString(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"http://127.0.0.1:1/mcp?project=/a b": `"http://127.0.0.1:1/mcp?project=/a b"`,
		`say "hi" \ bye`:                      `"say \"hi\" \\ bye"`,
		"tab\tnew\nline\x7f":                  `"tab\u0009new\u000Aline\u007F"`,
		"é":                                   `"é"`,
	} {
		require.Equal(t, want, codexTOMLString(in), in)
	}
}

func TestCodexParse(t *testing.T) {
	t.Parallel()
	lines := func(l ...string) []byte { return []byte(strings.Join(l, "\n") + "\n") }
	const (
		threadStarted = `{"type":"thread.started","thread_id":"th-1"}`
		turnStarted   = `{"type":"turn.started"}`
		turnCompleted = `{"type":"turn.completed","usage":{"input_tokens":100,"cached_input_tokens":40,"output_tokens":7}}`
	)
	tests := []struct {
		name     string
		stdout   []byte
		exitCode int
		// lastMessage, when not nil, is the content of the -o file.
		lastMessage *string
		// baseline, when set, is the content of the usage baseline file.
		baseline string
		want     executor.AgentOutput
	}{
		{
			name: "a run among garbage",
			stdout: lines(
				"Reading prompt from stdin...",
				"",
				"{not json",
				`[1,2,3]`,
				`"a string"`,
				threadStarted,
				turnStarted,
				`{"type":"item.started","item":{"id":"item_0","type":"command_execution","command":"bash -lc ls","aggregated_output":"","exit_code":null,"status":"in_progress"}}`,
				`{"type":"item.updated","item":{"id":"item_1","type":"todo_list","items":[{"text":"look","completed":false}]}}`,
				`{"type":"item.completed","item":{"id":"item_2","type":"reasoning","text":"**Thinking**"}}`,
				`{"type":"item.completed","item":{"id":"item_0","type":"command_execution","command":"bash -lc ls","aggregated_output":"a.go\n","exit_code":0,"status":"completed"}}`,
				`{"type":"item.completed","item":{"id":"item_3","type":"agent_message","text":"First, a look around."}}`,
				`{"type":"item.completed","item":{"id":"item_4","type":"command_execution","command":"/bin/bash -lc 'go test ./...'","aggregated_output":"FAIL","exit_code":1,"status":"failed"}}`,
				`{"type":"item.completed","item":{"id":"item_5","type":"file_change","changes":[{"path":"/ws/a.go","kind":"add"},{"path":"/ws/pkg/b.go","kind":"update"},{"path":"/elsewhere/c.go","kind":"delete"}],"status":"completed"}}`,
				`{"type":"item.completed","item":{"id":"item_6","type":"todo_list","items":[{"text":"look","completed":true}]}}`,
				`{"type":"item.completed","item":{"id":"item_7","type":"agent_message","text":"Done.\n### TEST_PLAN\n- go test"}}`,
				turnCompleted,
			),
			want: executor.AgentOutput{
				SessionID:    "th-1",
				FinalMessage: "Done.\n### TEST_PLAN\n- go test",
				Usage:        executor.AgentUsage{InputTokens: 100, CachedInputTokens: 40, OutputTokens: 7},
				Log: strings.Join([]string{
					"$ ls (exit 0)",
					"message: First, a look around.",
					"$ go test ./... (exit 1)",
					"changed: add a.go, update pkg/b.go, delete /elsewhere/c.go",
					"message: Done. …",
				}, "\n"),
			},
		},
		{
			// codex states the thread's running total in turn.completed:
			// the last one counts, not their sum.
			name: "usage is the last running total",
			stdout: lines(
				threadStarted,
				turnStarted,
				`{"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"one"}}`,
				turnCompleted,
				turnStarted,
				`{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"two"}}`,
				`{"type":"turn.completed","usage":{"input_tokens":101,"cached_input_tokens":40,"output_tokens":9}}`,
			),
			want: executor.AgentOutput{
				SessionID:    "th-1",
				FinalMessage: "two",
				Usage:        executor.AgentUsage{InputTokens: 101, CachedInputTokens: 40, OutputTokens: 9},
				Log:          "message: one\nmessage: two",
			},
		},
		{
			name:     "usage less the resumed thread's baseline",
			stdout:   lines(threadStarted, turnStarted, turnCompleted),
			baseline: `{"input_tokens":60,"cached_input_tokens":40,"output_tokens":2}`,
			want: executor.AgentOutput{
				SessionID: "th-1",
				Usage:     executor.AgentUsage{InputTokens: 40, CachedInputTokens: 0, OutputTokens: 5},
			},
		},
		{
			name:     "a baseline over the total is not subtracted",
			stdout:   lines(threadStarted, turnStarted, turnCompleted),
			baseline: `{"input_tokens":60,"cached_input_tokens":41,"output_tokens":2}`,
			want: executor.AgentOutput{
				SessionID: "th-1",
				Usage:     executor.AgentUsage{InputTokens: 100, CachedInputTokens: 40, OutputTokens: 7},
			},
		},
		{
			name:     "a broken baseline is ignored",
			stdout:   lines(threadStarted, turnStarted, turnCompleted),
			baseline: `{"input_tokens":`,
			want: executor.AgentOutput{
				SessionID: "th-1",
				Usage:     executor.AgentUsage{InputTokens: 100, CachedInputTokens: 40, OutputTokens: 7},
			},
		},
		{
			name: "refused tool calls from stderr",
			stdout: lines(
				"WARNING: proceeding, even though we could not create PATH aliases",
				threadStarted,
				"2026-11-27T15:03:53.190068Z ERROR codex_core::tools::router: error=approval policy is Never; reject command — you cannot ask for escalated permissions",
				"2026-11-27T15:03:53.190068Z ERROR codex_core::tools::router: error=",
				"2026-11-27T15:05:54.521031Z ERROR codex_api::endpoint::responses_websocket: failed to connect",
				turnCompleted,
			),
			want: executor.AgentOutput{
				SessionID: "th-1",
				Usage:     executor.AgentUsage{InputTokens: 100, CachedInputTokens: 40, OutputTokens: 7},
				Log:       "refused: approval policy is Never; reject command — you cannot ask for escalated permissions",
			},
		},
		{
			name: "turn failed",
			stdout: lines(
				threadStarted,
				turnStarted,
				`{"type":"error","message":"unexpected status 401 Unauthorized"}`,
				`{"type":"turn.failed","error":{"message":"unexpected status 401 Unauthorized: Missing bearer"}}`,
			),
			exitCode: 1,
			want: executor.AgentOutput{
				SessionID:      "th-1",
				Failed:         true,
				FailureSummary: "unexpected status 401 Unauthorized: Missing bearer",
				Log:            "error: unexpected status 401 Unauthorized\nturn failed: unexpected status 401 Unauthorized: Missing bearer",
			},
		},
		{
			name: "turn failed without a message",
			stdout: lines(
				`{"type":"turn.failed"}`,
			),
			exitCode: 1,
			want:     executor.AgentOutput{Failed: true, FailureSummary: "turn failed", Log: "turn failed: turn failed"},
		},
		{
			name: "error retried past",
			stdout: lines(
				threadStarted,
				turnStarted,
				`{"type":"error","message":"Reconnecting... 1/5"}`,
				`{"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"ok"}}`,
				turnCompleted,
			),
			want: executor.AgentOutput{
				SessionID:    "th-1",
				FinalMessage: "ok",
				Usage:        executor.AgentUsage{InputTokens: 100, CachedInputTokens: 40, OutputTokens: 7},
				Log:          "error: Reconnecting... 1/5\nmessage: ok",
			},
		},
		{
			name:     "error event ends the run",
			stdout:   lines(threadStarted, turnStarted, `{"type":"error","message":"stream disconnected before completion"}`),
			exitCode: 1,
			want: executor.AgentOutput{
				SessionID:      "th-1",
				Failed:         true,
				FailureSummary: "stream disconnected before completion",
				Log:            "error: stream disconnected before completion",
			},
		},
		{
			name:     "non-zero exit without a failure event",
			stdout:   lines("WARNING: proceeding", "Error: unexpected argument '--bogus' found", "", "Usage: codex exec [OPTIONS]", "Error: second"),
			exitCode: 2,
			want:     executor.AgentOutput{Failed: true, FailureSummary: "codex exited with code 2: Error: unexpected argument '--bogus' found"},
		},
		{
			name:     "killed",
			stdout:   lines(threadStarted, turnStarted),
			exitCode: 128 + 15,
			want:     executor.AgentOutput{SessionID: "th-1", Failed: true, FailureSummary: "codex exited with code 143"},
		},
		{
			name: "no output",
			want: executor.AgentOutput{},
		},
		{
			name: "final message file wins",
			stdout: lines(
				threadStarted,
				`{"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"from the events"}}`,
				turnCompleted,
			),
			lastMessage: codexPtr("from the file\n\n### TEST_PLAN\n- none\n"),
			want: executor.AgentOutput{
				SessionID:    "th-1",
				FinalMessage: "from the file\n\n### TEST_PLAN\n- none",
				Usage:        executor.AgentUsage{InputTokens: 100, CachedInputTokens: 40, OutputTokens: 7},
				Log:          "message: from the events",
			},
		},
		{
			name: "empty final message file",
			stdout: lines(
				`{"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"from the events"}}`,
			),
			lastMessage: codexPtr(" \n"),
			want:        executor.AgentOutput{FinalMessage: "from the events", Log: "message: from the events"},
		},
		{
			name: "other items",
			stdout: lines(
				`{"type":"item.completed","item":{"id":"item_0","type":"command_execution","command":"rm -rf /","aggregated_output":"","exit_code":null,"status":"declined"}}`,
				`{"type":"item.completed","item":{"id":"item_1","type":"mcp_tool_call","server":"relay","tool":"relay_ask","arguments":{},"result":null,"error":{"message":"no route"},"status":"failed"}}`,
				`{"type":"item.completed","item":{"id":"item_2","type":"web_search","query":"codex exec flags"}}`,
				`{"type":"item.completed","item":{"id":"item_3","type":"error","message":"model rerouted: a -> b"}}`,
				`{"type":"item.completed","item":{"id":"item_4","type":"file_change","changes":[{"path":"x.go","kind":"update"}],"status":"failed"}}`,
				`{"type":"item.completed","item":{"id":"item_5","type":"agent_message","text":"`+strings.Repeat("é", 300)+`"}}`,
				`{"type":"item.completed"}`,
				`{"type":"item.plan.delta","item_id":"item_9","delta":"step"}`,
			),
			want: executor.AgentOutput{
				FinalMessage: strings.Repeat("é", 300),
				Log: strings.Join([]string{
					"$ rm -rf / (declined)",
					"mcp: relay/relay_ask (failed): no route",
					"search: codex exec flags",
					"warning: model rerouted: a -> b",
					"changed: update x.go (failed)",
					"message: " + strings.Repeat("é", codexLogLineMax-1) + "…",
				}, "\n"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := &executor.Request{Workdir: "/ws", MetaDir: t.TempDir()}
			if tt.lastMessage != nil {
				require.NoError(t, os.WriteFile(filepath.Join(req.MetaDir, CodexLastMessageFile), []byte(*tt.lastMessage), 0o600))
			}
			if tt.baseline != "" {
				require.NoError(t, os.WriteFile(filepath.Join(req.MetaDir, CodexUsageBaselineFile), []byte(tt.baseline), 0o600))
			}
			got := Adapter{}.Parse(&executor.AgentConfig{}, req, tt.stdout, tt.exitCode)
			require.Equal(t, tt.want, got)
		})
	}
}

func codexPtr[T any](v T) *T { return &v }

func TestCodexUnwrapShell(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`/bin/bash -lc 'go test ./...'`:         `go test ./...`,
		`bash -lc ls`:                           `ls`,
		`/usr/bin/zsh -c "make lint"`:           `make lint`,
		`bash -lc "echo $HOME"`:                 `"echo $HOME"`,
		`bash -lc 'it'"'"'s'`:                   `'it'"'"'s'`,
		`go test ./...`:                         `go test ./...`,
		`python -c 'print(1)'`:                  `python -c 'print(1)'`,
		`bash script.sh`:                        `bash script.sh`,
		`ls`:                                    `ls`,
		`/bin/sh -c 'cd sub && go vet ./...'`:   `cd sub && go vet ./...`,
		`/bin/bash -lc 'rg -n "codex" docs/'`:   `rg -n "codex" docs/`,
		`/bin/bash --login -c 'go build ./...'`: `/bin/bash --login -c 'go build ./...'`,
	} {
		require.Equal(t, want, codexUnwrapShell(in), in)
	}
}

func TestCodexKind(t *testing.T) {
	t.Parallel()
	require.Equal(t, "codex", Adapter{}.Kind())
	require.Equal(t, "codex", Adapter{}.DefaultBinary())
	agent, err := executor.NewAgent(executor.AgentConfig{Name: "codex"}, Adapter{})
	require.NoError(t, err)
	require.Equal(t, "codex", agent.Config().Binary)
}
