package claude

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

func TestClaudeCheck(t *testing.T) {
	t.Parallel()
	base := []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	for _, tt := range []struct {
		name   string
		cfg    executor.AgentConfig
		env    []string
		detail string
		err    string
		fix    string
	}{
		{
			name:   "API key",
			env:    []string{"ANTHROPIC_API_KEY=sk-x", "ANTHROPIC_BASE_URL=http://127.0.0.1:9"},
			detail: "auth api_key (ANTHROPIC_API_KEY, base URL http://127.0.0.1:9); permission mode acceptEdits unless the job's askPolicy or sandbox says otherwise",
		},
		{
			name:   "login, configured mode",
			cfg:    executor.AgentConfig{PermissionMode: "default", Env: map[string]string{"CLAUDE_STUB_AUTH": "claude.ai"}},
			detail: "auth claude.ai; permission mode default unless the job's askPolicy or sandbox says otherwise",
		},
		{
			name:   "not authenticated",
			detail: "auth none; permission mode acceptEdits unless the job's askPolicy or sandbox says otherwise",
			err:    "claude is not authenticated: no API key and no login",
			fix:    "pass ANTHROPIC_API_KEY to the executor (executors.claude.passEnv: [ANTHROPIC_API_KEY]), or run `claude auth login` as the user the relay runs as",
		},
		{
			name:   "unknown mode",
			cfg:    executor.AgentConfig{PermissionMode: "yolo"},
			env:    []string{"ANTHROPIC_API_KEY=sk-x"},
			detail: "auth api_key (ANTHROPIC_API_KEY)",
			err:    `permissionMode "yolo" is not one of claude's modes`,
			fix:    "correct executors.claude.permissionMode",
		},
		{
			name: "no binary",
			cfg:  executor.AgentConfig{Binary: "/nonexistent/claude"},
			err:  "/nonexistent/claude --version",
			fix:  "install Claude Code (npm install -g @anthropic-ai/claude-code) or set executors.claude.binary",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg
			cfg.Name = "claude"
			if cfg.Binary == "" {
				cfg.Binary = claudeStub(t)
			}
			h := Adapter{}.Check(context.Background(), &cfg, append(append([]string(nil), base...), tt.env...))
			if tt.err == "" {
				require.NoError(t, h.Err)
				require.Equal(t, "2.1.197", h.Version)
			} else {
				require.ErrorContains(t, h.Err, tt.err)
			}
			require.Equal(t, tt.fix, h.Fix)
			require.Equal(t, tt.detail, h.Detail)
		})
	}
}

func TestClaudeModeProblem(t *testing.T) {
	t.Parallel()
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	cfg := &executor.AgentConfig{Name: "claude", PermissionMode: "bypassPermissions"}
	fix, err := claudeModeProblem(cfg, 0, env(nil))
	require.EqualError(t, err, "claude refuses permissionMode bypassPermissions as root")
	require.Contains(t, fix, `IS_SANDBOX: "1" in executors.claude.env`)
	_, err = claudeModeProblem(cfg, 0, env(map[string]string{"IS_SANDBOX": "1"}))
	require.NoError(t, err)
	_, err = claudeModeProblem(cfg, 1000, env(nil))
	require.NoError(t, err)
	_, err = claudeModeProblem(&executor.AgentConfig{Name: "claude", PermissionMode: "acceptEdits"}, 0, env(nil))
	require.NoError(t, err)
}
