package executor_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

func TestScrubEnv(t *testing.T) {
	t.Parallel()
	env := []string{
		"PATH=/bin", "HOME=/root", "ANTHROPIC_API_KEY=sk-ant", "OPENAI_API_KEY=sk", "GITHUB_TOKEN=gh",
		"AWS_SECRET_ACCESS_KEY=aws", "DB_PASSWORD=pw", "TASK_RELAY_API_TOKEN=op", "TOKENIZER=keep", "LANG=C",
	}
	require.Equal(t, []string{"PATH=/bin", "HOME=/root", "OPENAI_API_KEY=sk", "TOKENIZER=keep", "LANG=C"},
		executor.ScrubEnv(env, []string{"OPENAI_API_KEY"}))
	require.True(t, executor.LooksSecret("my_api_key"))
	require.False(t, executor.LooksSecret("KEYBOARD"))
}

func TestLooksSecret(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		// The ones an adversarial review found passing.
		"PGPASSWORD", "MYSQL_PWD", "OPENAI_KEY", "DATABASE_URL",
		// The relay's own tokens.
		"TASK_RELAY_API_TOKEN", "TASK_RELAY_TOKEN", "task_relay_token",
		// Keys, tokens, passwords, in every spelling.
		"ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "STRIPE_KEY", "SSH_PRIVATE_KEY", "LICENSE_KEY",
		"GITHUB_TOKEN", "GH_TOKEN", "NPM_TOKEN", "NODE_AUTH_TOKEN", "HF_TOKEN", "VAULT_TOKEN", "CI_JOB_TOKEN",
		"GITHUB_TOKEN_FILE", "NGROK_AUTHTOKEN", "CI_JOB_JWT", "ACTIONS_ID_TOKEN_REQUEST_URL",
		"DB_PASSWORD", "TWINE_PASSWORD", "REDIS_PASSWD", "SMTP_PASS", "KEY_PASSPHRASE", "MYSQLPASSWORD",
		"CLIENT_SECRET", "AZURE_CLIENT_SECRET", "DJANGO_SECRET_KEY", "JWT_SECRET",
		"GOOGLE_APPLICATION_CREDENTIALS", "DOCKER_CREDS", "SENTRY_DSN", "DB_DSN",
		"AZURE_STORAGE_CONNECTION_STRING", "NPM_CONFIG__AUTH", "npm_config__auth", "SESSION_COOKIE",
		"NETRC", "PGPASSFILE", "KUBECONFIG",
		// Every AWS_* variable: the SDKs read keys and tokens from many.
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
	} {
		require.True(t, executor.LooksSecret(name), name)
	}
	for _, name := range []string{
		"PATH", "HOME", "USER", "SHELL", "LANG", "LC_ALL", "TERM", "TZ", "TMPDIR", "PWD", "OLDPWD",
		"TOKENIZERS_PARALLELISM", "KEYBOARD", "KEYMAP", "GIT_AUTHOR_NAME", "SSH_AUTH_SOCK", "SSH_ASKPASS",
		"GOPATH", "GOFLAGS", "NODE_ENV", "TASK_RELAY_JOB_ID", "TASK_RELAY_PROMPT_FILE", "ASK_ANSWER_ORIGIN",
		"HTTP_PROXY", "PASSENGER_ENV", "GNOME_KEYRING_CONTROL", "XDG_CONFIG_HOME",
	} {
		require.False(t, executor.LooksSecret(name), name)
	}
}

func TestLooksSecretEntry(t *testing.T) {
	t.Parallel()
	for _, kv := range []string{
		"REDIS_URL=redis://:hunter2@cache:6379/0",
		"MONGO_URI=mongodb://app:pw@db1,db2/app",
		"UPSTREAM_URL=https://ghp_abc@github.com/o/r.git",
		"MIRRORS_URL=https://a.example https://u:p@b.example/x",
		"VAULT_ADDR=https://user:pw@vault:8200",
		"PGPASSWORD=whatever",
	} {
		require.True(t, executor.LooksSecretEntry(kv), kv)
	}
	for _, kv := range []string{
		"API_URL=https://api.example.com/v1?x=a@b",
		"HOME_URL=https://example.com/~me/a@b",
		"REPO_URL=git@github.com:o/r.git",
		"EMAIL=someone@example.com",
		"HTTP_PROXY=http://proxy:3128",
		"DOCS=see https://u:p@example.com", // not a URL variable
	} {
		require.False(t, executor.LooksSecretEntry(kv), kv)
	}
}

func TestScrubEnvNeverPassesRelayTokens(t *testing.T) {
	t.Parallel()
	env := []string{"TASK_RELAY_API_TOKEN=op", "TASK_RELAY_TOKEN=other-job", "DATABASE_URL=postgres://u:p@h/db", "PATH=/bin"}
	got := executor.ScrubEnv(env, []string{"TASK_RELAY_API_TOKEN", "TASK_RELAY_TOKEN", "DATABASE_URL"})
	require.Equal(t, []string{"DATABASE_URL=postgres://u:p@h/db", "PATH=/bin"}, got,
		"a pass list passes credentials, never the relay's own tokens")
}

// secretEnv is an environment holding one credential of every kind the
// relay must keep to itself, and the values that must never show up in a
// child's environment.
func secretEnv() (env, secrets []string) {
	env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=/nonexistent", "LANG=C", "KEEP_ME=visible",
		"TASK_RELAY_API_TOKEN=operator-token-0123456789", "TASK_RELAY_TOKEN=other-job-token-0123",
		"ANTHROPIC_API_KEY=sk-ant-secret", "OPENAI_KEY=sk-openai-secret", "PGPASSWORD=pg-secret",
		"MYSQL_PWD=mysql-secret", "DATABASE_URL=postgres://app:db-secret@db/app",
		"CACHE_URL=redis://:redis-secret@cache/0", "AWS_SECRET_ACCESS_KEY=aws-secret",
		"GOOGLE_APPLICATION_CREDENTIALS=/secret/gcp.json", "SENTRY_DSN=https://dsn-secret@sentry.io/1",
	}
	for _, kv := range env[4:] {
		_, v, _ := strings.Cut(kv, "=")
		secrets = append(secrets, v)
	}
	return env, secrets
}

// TestScrubbedChildSeesNoSecret runs real children (directly, and under
// the shim, as setup commands run) from ScrubEnv(env, nil) and checks
// what they see.
func TestScrubbedChildSeesNoSecret(t *testing.T) {
	t.Parallel()
	env, secrets := secretEnv()
	exe, err := os.Executable()
	require.NoError(t, err)
	for name, shim := range map[string]string{"direct": "", "shim": exe} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := executor.NewCommand(executor.CommandConfig{
				Name: "setup", Argv: []string{"/bin/sh", "-c", "env"}, Shim: shim,
				BaseEnv: executor.ScrubEnv(env, nil),
			})
			require.NoError(t, err)
			res, err := c.Run(t.Context(), &executor.Request{Workdir: t.TempDir(), Env: map[string]string{"TASK_RELAY_JOB_ID": "job_x"}})
			require.NoError(t, err)
			require.Equal(t, 0, res.ExitCode, string(res.Output))
			out := string(res.Stdout)
			require.Contains(t, out, "KEEP_ME=visible")
			require.Contains(t, out, "TASK_RELAY_JOB_ID=job_x")
			for _, s := range secrets {
				require.NotContains(t, out, s)
			}
		})
	}
}
