package codex

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// codexCheckScript stands in for `codex --version` and `codex login
// status`, which print as codex 0.171 does (the status on stderr, exit 1
// when not logged in). The e2e tests check the real CLI.
const codexCheckScript = `#!/bin/sh
echo 'WARNING: proceeding, even though we could not create PATH aliases' >&2
case "$1" in
--version)
	if [ -n "${FAKE_VERSION_FAIL:-}" ]; then echo "boom: $FAKE_VERSION_FAIL" >&2; exit 3; fi
	echo "codex-cli 0.171.0" ;;
login)
	[ "$2" = status ] || exit 2
	if [ -n "${FAKE_LOGIN:-}" ]; then echo "$FAKE_LOGIN" >&2; exit 0; fi
	echo "Not logged in" >&2
	exit 1 ;;
*) exit 2 ;;
esac
`

func TestCodexCheck(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "codex")
	require.NoError(t, os.WriteFile(bin, []byte(codexCheckScript), 0o755))
	home := t.TempDir()
	providerHome, openaiHome := t.TempDir(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(providerHome, "config.toml"),
		[]byte("# mine\nmodel = \"gpt-oss\"\nmodel_provider = \"ollama\" # local\n\n[model_providers.ollama]\nbase_url = \"http://localhost:11434/v1\"\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(openaiHome, "config.toml"),
		[]byte("[profiles.x]\nmodel_provider = \"ollama\"\n"), 0o600))
	path := "PATH=" + filepath.Dir(bin)
	tests := []struct {
		name   string
		cfg    executor.AgentConfig
		env    []string
		detail string
		err    string
		fix    string
	}{
		{name: "chatgpt login", cfg: executor.AgentConfig{Binary: bin}, env: []string{"HOME=" + home, "FAKE_LOGIN=Logged in using ChatGPT"},
			detail: "auth: Logged in using ChatGPT"},
		{name: "binary found on the runs' PATH", cfg: executor.AgentConfig{Binary: "codex"}, env: []string{path, "FAKE_LOGIN=API key configured - sk-***abcd"},
			detail: "auth: API key configured - sk-***abcd"},
		{name: "key in the environment", cfg: executor.AgentConfig{Binary: bin}, env: []string{"HOME=" + home, "CODEX_API_KEY=sk-1"},
			detail: "auth: API key in CODEX_API_KEY"},
		{name: "key in the executor's env", cfg: executor.AgentConfig{Binary: bin, Env: map[string]string{"CODEX_API_KEY": "sk-1"}}, env: []string{"HOME=" + home},
			detail: "auth: API key in CODEX_API_KEY"},
		{name: "model provider", cfg: executor.AgentConfig{Binary: bin}, env: []string{"HOME=" + home, "CODEX_HOME=" + providerHome},
			detail: `auth: model provider "ollama" of config.toml (its env_key or auth)`},
		{name: "not logged in", cfg: executor.AgentConfig{Name: "cx", Binary: bin}, env: []string{"HOME=" + home, "OPENAI_API_KEY=sk-not-read", "CODEX_HOME=" + openaiHome},
			detail: "auth: Not logged in", err: "codex is not logged in (Not logged in) and has no API key in CODEX_API_KEY",
			fix: "run `codex login` (or `codex login --with-api-key`) as the user the relay runs as, or pass CODEX_API_KEY to the executor (executors.cx.passEnv), or configure a model_provider in " + filepath.Join(openaiHome, "config.toml")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := Adapter{}.Check(t.Context(), &tt.cfg, tt.env)
			require.Equal(t, "0.171.0", h.Version)
			require.Equal(t, tt.detail, h.Detail)
			if tt.err == "" {
				require.NoError(t, h.Err)
				require.Empty(t, h.Fix)
				return
			}
			require.EqualError(t, h.Err, tt.err)
			require.Equal(t, tt.fix, h.Fix)
		})
	}

	t.Run("not installed", func(t *testing.T) {
		t.Parallel()
		for _, cfg := range []executor.AgentConfig{{Name: "cx"}, {Name: "cx", Binary: filepath.Join(home, "codex")}} {
			h := Adapter{}.Check(t.Context(), &cfg, []string{"PATH=" + home})
			require.Error(t, h.Err)
			require.Empty(t, h.Version)
			require.Equal(t, "install the Codex CLI (npm install -g @openai/codex) or set executors.cx.binary", h.Fix)
		}
	})
	t.Run("version fails", func(t *testing.T) {
		t.Parallel()
		h := Adapter{}.Check(t.Context(), &executor.AgentConfig{Name: "cx", Binary: bin}, []string{"FAKE_VERSION_FAIL=bad install"})
		require.ErrorContains(t, h.Err, "--version: exit 3: boom: bad install")
		require.Contains(t, h.Fix, "set executors.cx.binary")
	})
}
