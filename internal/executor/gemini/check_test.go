package gemini

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// fakeGemini writes a program that answers --version like gemini.
func fakeGemini(t *testing.T, script string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gemini")
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"+script+"\n"), 0o755))
	return p
}

func TestGeminiCheck(t *testing.T) {
	t.Parallel()
	ok := fakeGemini(t, `[ "$1" = --version ] && echo 0.61.0`)
	apiKey := userGemini(t, `{"security": {"auth": {"selectedType": "gemini-api-key"}}}`)
	oauth := userGemini(t, `{"security": {"auth": {"selectedType": "oauth-personal"}}}`, "oauth_creds.json")
	oauthNoCreds := userGemini(t, `{"security": {"auth": {"selectedType": "oauth-personal"}}}`)
	none := userGemini(t, `{}`)
	for _, tc := range []struct {
		name            string
		binary          string
		env             []string
		cfgEnv          map[string]string
		version, detail string
		err, fix        string // substrings; empty err means healthy
	}{
		{name: "api key", binary: ok, env: []string{"HOME=" + apiKey, "GEMINI_API_KEY=k"},
			version: "0.61.0", detail: "auth gemini-api-key (GEMINI_API_KEY); workspaces trusted per run (GEMINI_CLI_TRUST_WORKSPACE=true)"},
		{name: "api key from the executor's env, with a base URL", binary: ok, env: []string{"HOME=" + apiKey},
			cfgEnv:  map[string]string{"GEMINI_API_KEY": "k", "GOOGLE_GEMINI_BASE_URL": "http://127.0.0.1:9"},
			version: "0.61.0", detail: "auth gemini-api-key (GEMINI_API_KEY, base URL http://127.0.0.1:9)"},
		{name: "api key not passed", binary: ok, env: []string{"HOME=" + apiKey},
			version: "0.61.0", err: "GEMINI_API_KEY is not in the executor's environment", fix: "passEnv: [GEMINI_API_KEY]"},
		{name: "key without settings", binary: ok, env: []string{"HOME=" + none, "GEMINI_API_KEY=k"},
			version: "0.61.0", detail: "auth gemini-api-key (GEMINI_API_KEY)"},
		{name: "oauth", binary: ok, env: []string{"HOME=" + oauth}, version: "0.61.0", detail: "auth oauth-personal (cached credentials)"},
		{name: "oauth without credentials", binary: ok, env: []string{"HOME=" + oauthNoCreds},
			version: "0.61.0", err: "no cached credentials", fix: "log in"},
		{name: "no auth", binary: ok, env: []string{"HOME=" + none}, version: "0.61.0",
			err: "gemini has no auth mode", fix: "security.auth.selectedType"},
		{name: "restricted mode", binary: ok, env: []string{"HOME=" + apiKey, "GEMINI_API_KEY=k", "GEMINI_RESTRICTED_MODE=true"},
			version: "0.61.0", err: "GEMINI_RESTRICTED_MODE=true makes every workspace untrusted: headless runs fail with exit 55",
			fix: "unset GEMINI_RESTRICTED_MODE"},
		{name: "GEMINI_CLI_HOME", binary: ok, env: []string{"HOME=" + none, "GEMINI_CLI_HOME=" + apiKey, "GEMINI_API_KEY=k"},
			version: "0.61.0", detail: "auth gemini-api-key (GEMINI_API_KEY)"},
		{name: "missing binary", binary: filepath.Join(t.TempDir(), "gemini"), env: []string{"HOME=" + apiKey},
			err: "--version", fix: "npm install -g @google/gemini-cli"},
		{name: "failing binary", binary: fakeGemini(t, `echo "boom" >&2; exit 3`), env: []string{"HOME=" + apiKey},
			err: "exit status 3: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := append([]string{"PATH=" + os.Getenv("PATH")}, tc.env...)
			h := Adapter{}.Check(context.Background(), &executor.AgentConfig{Name: "g", Binary: tc.binary, Env: tc.cfgEnv}, env)
			require.Equal(t, tc.version, h.Version)
			if tc.err == "" {
				require.NoError(t, h.Err)
				require.Empty(t, h.Fix)
			} else {
				require.ErrorContains(t, h.Err, tc.err)
				require.Contains(t, h.Fix, tc.fix)
			}
			require.Contains(t, h.Detail, tc.detail)
		})
	}
}
