package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseFull(t *testing.T) {
	t.Parallel()

	const doc = `
profile: staging
transport: stdio
promptsDir: prompts2
server:
  maxConcurrency: 8
  leaseTtlSec: 30
  heartbeatIntervalSec: 5
  artifactRoot: /srv/artifacts
  workspaceRoot: ws
  keepWorkspaces: true
  idempotencyWindowSec: 3600
  dataDir: data
  maxOutputBytes: 0x100000
storage:
  mode: postgres
  postgresUrl: postgres://u@h/db
logging:
  level: debug
askAnswer:
  port: 4000
  host: localhost
  longPollTimeoutSec: 20
  sseHeartbeatSec: 5
  auth: none
  runner:
    enabled: false
    provider: openai
    model: gpt-5
    maxRetries: -1
    defaultTimeout: 90
    baseURL: http://localhost:8080/v1
    apiKeyEnv: MY_KEY
executors:
  default: codex
  codex:
    kind: command
    argv: [codex, exec, --full-auto]
    env: {CODEX_HOME: /tmp/codex, RETRIES: 3}
    timeoutS: 600
  claude:
    argv:
      - claude
      - -p
    binary: /usr/bin/claude
    model: opus
    extraArgs: [--verbose]
`
	c, err := Parse([]byte(doc), "config.yaml")
	require.NoError(t, err)

	enabled := false
	want := &Config{
		Profile:    "staging",
		Transport:  "stdio",
		PromptsDir: "prompts2",
		Server: Server{
			MaxConcurrency:       8,
			LeaseTTLSec:          30,
			HeartbeatIntervalSec: 5,
			ArtifactRoot:         "/srv/artifacts",
			WorkspaceRoot:        "ws",
			KeepWorkspaces:       true,
			IdempotencyWindowSec: 3600,
			DataDir:              "data",
			MaxOutputBytes:       1 << 20,
		},
		Storage: Storage{Mode: "postgres", PostgresURL: "postgres://u@h/db"},
		Logging: Logging{Level: "debug"},
		AskAnswer: AskAnswer{Port: 4000, Host: "localhost", LongPollTimeoutSec: 20, SSEHeartbeatSec: 5, Auth: "none",
			Runner: Runner{Enabled: &enabled, Provider: "openai", Model: "gpt-5", MaxRetries: -1, DefaultTimeout: 90,
				BaseURL: "http://localhost:8080/v1", APIKeyEnv: "MY_KEY"}},
		Executors: Executors{
			Default: "codex",
			ByName: map[string]Executor{
				"codex": {Kind: "command", Argv: []string{"codex", "exec", "--full-auto"},
					Env: map[string]string{"CODEX_HOME": "/tmp/codex", "RETRIES": "3"}, TimeoutS: 600},
				"claude": {Argv: []string{"claude", "-p"}, Binary: "/usr/bin/claude", Model: "opus", ExtraArgs: []string{"--verbose"}},
			},
		},
	}
	want.origins = c.origins
	require.Equal(t, want, c)
	require.Equal(t, "config.yaml:2", c.origins["profile"])
	require.Equal(t, "config.yaml:38", c.origins["executors.codex.argv"])

	d := c.WithDefaults()
	d.ConfigDir, d.DataDir = "/cfg", "/data"
	require.NoError(t, d.Validate())
}

func TestParseEmpty(t *testing.T) {
	t.Parallel()

	for _, doc := range []string{"", "\n", "# only a comment\n", "---\n", "~\n"} {
		c, err := Parse([]byte(doc), "config.yaml")
		require.NoError(t, err, "%q", doc)
		require.Equal(t, &Config{origins: map[string]string{}}, c, "%q", doc)
	}
}

func TestParseNullMeansDefault(t *testing.T) {
	t.Parallel()

	c, err := Parse([]byte("server:\n  maxConcurrency:\n  leaseTtlSec: ~\naskAnswer:\n  runner:\n    enabled: null\n"), "config.yaml")
	require.NoError(t, err)
	require.Zero(t, c.Server.MaxConcurrency)
	require.Nil(t, c.AskAnswer.Runner.Enabled)
}

func TestParseUnknownKey(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		doc  string
		want string
	}{
		{
			name: "typo with suggestion",
			doc:  "# relay\n\nserver:\n  leaseTtlSec: 60\n\n  # concurrency\n  maxConcurency: 4\n",
			want: `config.yaml:7: unknown key "server.maxConcurency" (did you mean "server.maxConcurrency"?)`,
		},
		{
			name: "case difference",
			doc:  "askAnswer:\n  runner:\n    baseUrl: http://x\n",
			want: `config.yaml:3: unknown key "askAnswer.runner.baseUrl" (did you mean "askAnswer.runner.baseURL"?)`,
		},
		{
			name: "top level without suggestion",
			doc:  "sandbox:\n  keep: true\n",
			want: `config.yaml:1: unknown key "sandbox"`,
		},
		{
			name: "top level snake case",
			doc:  "ask_answer:\n  port: 1\n",
			want: `config.yaml:1: unknown key "ask_answer" (did you mean "askAnswer"?)`,
		},
		{
			name: "inside an executor",
			doc:  "executors:\n  codex:\n    agrv: [codex]\n",
			want: `config.yaml:3: unknown key "executors.codex.agrv" (did you mean "executors.codex.argv"?)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.doc), "config.yaml")
			require.EqualError(t, err, tt.want)
			require.ErrorIs(t, err, ErrUnknownKey)
		})
	}
}

func TestParseWrongType(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"int from word", "# c\nserver:\n  maxConcurrency: three\n", `config.yaml:3: server.maxConcurrency: must be an integer, got "three"`},
		{"int from float", "server:\n  leaseTtlSec: 1.5\n", `config.yaml:2: server.leaseTtlSec: must be an integer, got "1.5"`},
		{"int from quoted", "askAnswer:\n  port: \"3415\"\n", `config.yaml:2: askAnswer.port: must be an integer, got "3415"`},
		{"int from list", "askAnswer:\n  port: [1]\n", `config.yaml:2: askAnswer.port: must be an integer, got a list`},
		{"bool from yes", "server:\n  keepWorkspaces: yes\n", `config.yaml:2: server.keepWorkspaces: must be true or false, got "yes"`},
		{"ptr bool", "askAnswer:\n  runner:\n    enabled: 1\n", `config.yaml:3: askAnswer.runner.enabled: must be true or false, got "1"`},
		{"string from mapping", "storage:\n  mode: {a: b}\n", `config.yaml:2: storage.mode: must be a string, got a mapping`},
		{"struct from scalar", "server: fast\n", `config.yaml:1: server: must be a mapping, got "fast"`},
		{"root from list", "- a\n", `config.yaml:1: must be a mapping, got a list`},
		{"argv from string", "executors:\n  a:\n    argv: codex exec\n", `config.yaml:3: executors.a.argv: must be a list, got "codex exec"`},
		{"argv item", "executors:\n  a:\n    argv: [codex, [x]]\n", `config.yaml:3: executors.a.argv[1]: must be a string, got a list`},
		{"env from list", "executors:\n  a:\n    env: [A=1]\n", `config.yaml:3: executors.a.env: must be a mapping, got a list`},
		{"executors from list", "executors: [a]\n", `config.yaml:1: executors: must be a mapping of executor names to executors, got a list`},
		{"default from mapping", "executors:\n  default: {a: 1}\n", `config.yaml:2: executors.default: must be the name of an executor, got a mapping`},
		{"executor from scalar", "executors:\n  a: codex\n", `config.yaml:2: executors.a: must be a mapping, got "codex"`},
		{"duplicate key", "server:\n  maxConcurrency: 1\n  maxConcurrency: 2\n", `config.yaml:3: server.maxConcurrency: duplicate key (first set on line 2)`},
		{"syntax", "server:\n  a: b\nc: d: e\n", `config.yaml:3: invalid YAML: mapping values are not allowed in this context`},
		{"two documents", "profile: dev\n---\nprofile: prod\n", `config.yaml:2: only one YAML document is allowed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.doc), "config.yaml")
			require.EqualError(t, err, tt.want)
			require.ErrorIs(t, err, ErrInvalid)
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	t.Parallel()

	_, err := Parse([]byte("server:\n  maxConcurrency: x\n  nope: 1\nlogging:\n  level: [a]\n"), "c.yaml")
	require.EqualError(t, err, `c.yaml:2: server.maxConcurrency: must be an integer, got "x"`+"\n"+
		`c.yaml:3: unknown key "server.nope"`+"\n"+
		`c.yaml:5: logging.level: must be a string, got a list`)
}

func TestParseAnchorsAndMerge(t *testing.T) {
	t.Parallel()

	const doc = `
executors:
  default: a
  a: &base
    argv: [agent, run]
    timeoutS: 100
  b:
    <<: *base
    timeoutS: 200
`
	c, err := Parse([]byte(doc), "config.yaml")
	require.NoError(t, err)
	require.Equal(t, Executor{Argv: []string{"agent", "run"}, TimeoutS: 100}, c.Executors.ByName["a"])
	require.Equal(t, Executor{Argv: []string{"agent", "run"}, TimeoutS: 200}, c.Executors.ByName["b"])
}
