package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func TestWithDefaults(t *testing.T) {
	t.Parallel()

	in := &Config{
		ConfigDir: "/etc/relay",
		DataDir:   "/var/relay",
		Executors: Executors{ByName: map[string]Executor{"only": {Argv: []string{"true"}}}},
	}
	got := in.WithDefaults()

	require.Equal(t, ProfileDev, got.Profile)
	require.Equal(t, TransportStdio, got.Transport)
	require.Equal(t, "/var/relay", got.DataDir)
	require.Equal(t, "/var/relay", got.Server.DataDir)
	require.Equal(t, "/etc/relay/prompts", got.PromptsDir)
	require.Equal(t, "/etc/relay/schemata", got.SchemataDir)
	require.Equal(t, "/etc/relay/policy.yaml", got.PolicyFile)
	require.Equal(t, Server{
		MaxConcurrency:       DefaultMaxConcurrency,
		AdmitTimeoutSec:      DefaultAdmitTimeoutSec,
		LeaseTTLSec:          DefaultLeaseTTLSec,
		HeartbeatIntervalSec: DefaultHeartbeatIntervalSec,
		ArtifactRoot:         "/var/relay/artifacts",
		WorkspaceRoot:        "/var/relay/workspaces",
		IdempotencyWindowSec: DefaultIdempotencyWindowSec,
		DataDir:              "/var/relay",
		MaxOutputBytes:       8 << 20,
	}, got.Server)
	require.Equal(t, Storage{Mode: StorageSQLite, SQLitePath: "/var/relay/relay.db", MaxArtifactBytes: 64 << 20}, got.Storage)
	require.Equal(t, "only", got.Executors.Default)
	require.Equal(t, Executor{Kind: KindCommand, Argv: []string{"true"}, TimeoutS: 1800}, got.Executors.ByName["only"])
	require.Equal(t, LogLevelInfo, got.Logging.Level)
	require.Equal(t, 3415, got.AskAnswer.Port)
	require.Equal(t, "127.0.0.1", got.AskAnswer.Host)
	require.Equal(t, 25, got.AskAnswer.LongPollTimeoutSec)
	require.Equal(t, 10, got.AskAnswer.SSEHeartbeatSec)
	require.Equal(t, AuthToken, got.AskAnswer.Auth)
	r := got.AskAnswer.Runner
	require.True(t, r.IsEnabled())
	require.NotNil(t, r.Enabled)
	require.Equal(t, ProviderAnthropic, r.Provider)
	require.Equal(t, "claude-sonnet-4-5", r.Model)
	require.Equal(t, 1, r.MaxRetries)
	require.Equal(t, 60, r.DefaultTimeout)
	require.Equal(t, "ANTHROPIC_API_KEY", r.APIKeyEnv)
	require.NoError(t, got.Validate())

	// The receiver is untouched, including its maps.
	require.Empty(t, in.Profile)
	require.Empty(t, in.Executors.ByName["only"].Kind)
	require.Nil(t, in.AskAnswer.Runner.Enabled)
}

func TestWithDefaultsHeartbeatFollowsShortLease(t *testing.T) {
	t.Parallel()

	tests := []struct {
		lease, want int
	}{
		{lease: 0, want: 15},
		{lease: 60, want: 15},
		{lease: 120, want: 15},
		{lease: 20, want: 5},
		{lease: 5, want: 1},
	}
	for _, tt := range tests {
		c := (&Config{DataDir: "/d", Server: Server{LeaseTTLSec: tt.lease}}).WithDefaults()
		require.Equal(t, tt.want, c.Server.HeartbeatIntervalSec, "lease %d", tt.lease)
		require.NoError(t, c.Validate(), "lease %d", tt.lease)
	}
}

func TestDurations(t *testing.T) {
	t.Parallel()

	require.Equal(t, 60*time.Second, Server{}.LeaseTTL())
	require.Equal(t, 15*time.Second, Server{}.HeartbeatInterval())
	require.Equal(t, 24*time.Hour, Server{}.IdempotencyWindow())
	s := Server{LeaseTTLSec: 10, HeartbeatIntervalSec: 3, IdempotencyWindowSec: 60}
	require.Equal(t, 10*time.Second, s.LeaseTTL())
	require.Equal(t, 3*time.Second, s.HeartbeatInterval())
	require.Equal(t, time.Minute, s.IdempotencyWindow())
	require.Equal(t, 2*time.Second, Server{LeaseTTLSec: 10}.HeartbeatInterval())

	require.Equal(t, 30*time.Minute, Executor{}.Timeout())
	require.Equal(t, 25*time.Second, AskAnswer{}.LongPollTimeout())
	require.Equal(t, 10*time.Second, AskAnswer{}.SSEHeartbeat())
	require.Equal(t, time.Minute, Runner{}.Timeout())

	require.Equal(t, 1, Runner{}.Retries())
	require.Equal(t, 0, Runner{MaxRetries: -1}.Retries())
	require.Equal(t, 4, Runner{MaxRetries: 4}.Retries())
}

func TestDefaultDataDir(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"xdg", map[string]string{"XDG_DATA_HOME": "/xdg", "HOME": "/home/u"}, "/xdg/mcp-task-relay"},
		{"relative xdg ignored", map[string]string{"XDG_DATA_HOME": "xdg", "HOME": "/home/u"}, "/home/u/.local/share/mcp-task-relay"},
		{"home", map[string]string{"HOME": "/home/u"}, "/home/u/.local/share/mcp-task-relay"},
		{"nothing", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, DefaultDataDir(envFunc(tt.env)))
		})
	}
}

// valid returns a defaulted Config that passes Validate.
func valid() *Config {
	return (&Config{
		ConfigDir: "/cfg",
		DataDir:   "/data",
		Executors: Executors{ByName: map[string]Executor{
			"codex":  {Argv: []string{"codex", "exec"}},
			"claude": {Argv: []string{"claude", "-p"}},
		}, Default: "codex"},
	}).WithDefaults()
}

func TestValidate(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		mutate  func(c *Config)
		wantErr string // empty: valid
	}{
		{"valid", func(*Config) {}, ""},
		{"profile", func(c *Config) { c.Profile = "production" }, `profile: must be one of dev, staging, prod; got "production"`},
		{"transport http reserved but valid", func(c *Config) { c.Transport = TransportHTTP }, ""},
		{"transport", func(c *Config) { c.Transport = "sse" }, `transport: must be one of stdio, http; got "sse"`},
		{"maxConcurrency high", func(c *Config) { c.Server.MaxConcurrency = 257 }, "server.maxConcurrency: must be between 1 and 256, got 257"},
		{"maxConcurrency negative", func(c *Config) { c.Server.MaxConcurrency = -1 }, "server.maxConcurrency: must be between 1 and 256, got -1"},
		{"leaseTtlSec", func(c *Config) { c.Server.LeaseTTLSec = 4; c.Server.HeartbeatIntervalSec = 1 }, "server.leaseTtlSec: must be at least 5, got 4"},
		{"heartbeat not below lease", func(c *Config) { c.Server.HeartbeatIntervalSec = 60 }, "server.heartbeatIntervalSec: must be less than server.leaseTtlSec (60), got 60"},
		{"heartbeat negative", func(c *Config) { c.Server.HeartbeatIntervalSec = -1 }, "server.heartbeatIntervalSec: must be at least 1, got -1"},
		{"idempotency window", func(c *Config) { c.Server.IdempotencyWindowSec = -5 }, "server.idempotencyWindowSec: must be at least 1, got -5"},
		{"maxOutputBytes", func(c *Config) { c.Server.MaxOutputBytes = -1 }, "server.maxOutputBytes: must be at least 1, got -1"},
		{"maxArtifactBytes", func(c *Config) { c.Storage.MaxArtifactBytes = -1 }, "storage.maxArtifactBytes: must be at least 1, got -1"},
		{"storage mode", func(c *Config) { c.Storage.Mode = "mysql" }, `storage.mode: must be one of memory, sqlite, postgres; got "mysql"`},
		{"postgres needs url", func(c *Config) { c.Storage.Mode = StoragePostgres }, "storage.postgresUrl: required when storage.mode is postgres (or set TASK_RELAY_POSTGRES_URL)"},
		{"postgres with url", func(c *Config) { c.Storage.Mode = StoragePostgres; c.Storage.PostgresURL = "postgres://x" }, ""},
		{"memory", func(c *Config) { c.Storage.Mode = StorageMemory }, ""},
		{"default executor missing", func(c *Config) { c.Executors.Default = "gemini" }, `executors.default: names executor "gemini", which is not defined (defined: claude, codex)`},
		{"default executor none defined", func(c *Config) { c.Executors = Executors{Default: "x"} }, `executors.default: names executor "x", which is not defined (none are defined)`},
		{"no executors is valid", func(c *Config) { c.Executors = Executors{} }, ""},
		{"argv required", func(c *Config) { c.Executors.ByName["claude"] = Executor{Kind: KindCommand} }, `executors.claude.argv: required for kind command, e.g. argv: [my-agent, "{{prompt_file}}"]`},
		{"sandbox unknown", func(c *Config) {
			c.Executors.ByName["claude"] = Executor{Kind: KindCommand, Argv: []string{"x"}, Sandbox: "chroot"}
		}, `executors.claude.sandbox: must be landlock or empty, got "chroot"`},
		{"sandbox on an agent", func(c *Config) {
			c.Executors.ByName["claude"] = Executor{Kind: KindClaude, Sandbox: SandboxLandlock}
		}, "executors.claude.sandbox: is for kind command; a claude executor is confined by the agent's own sandbox (execution.sandbox)"},
		{"argv[0] empty", func(c *Config) {
			c.Executors.ByName["claude"] = Executor{Kind: KindCommand, Argv: []string{""}}
		}, `executors.claude.argv[0]: must name the program to run, got ""`},
		{"agent kind with argv", func(c *Config) { c.Executors.ByName["claude"] = Executor{Kind: KindClaude, Argv: []string{"x"}} }, `executors.claude.argv: is for kind command; a claude executor builds its own command line (use binary, model, extraArgs)`},
		{"claude setting on codex", func(c *Config) { c.Executors.ByName["codex"] = Executor{Kind: KindCodex, MaxTurns: 3} }, `executors.codex: permissionMode, allowedTools and maxTurns are claude settings`},
		{"bad approval mode", func(c *Config) { c.Executors.ByName["gemini"] = Executor{Kind: KindGemini, ApprovalMode: "always"} }, `executors.gemini.approvalMode: must be one of default, auto_edit, yolo; got "always"`},
		{"unknown kind", func(c *Config) { c.Executors.ByName["claude"] = Executor{Kind: "docker", Argv: []string{"x"}} }, `executors.claude.kind: must be command, codex, claude or gemini, got "docker"`},
		{"timeoutS", func(c *Config) {
			c.Executors.ByName["claude"] = Executor{Kind: KindCommand, Argv: []string{"x"}, TimeoutS: -1}
		}, "executors.claude.timeoutS: must be at least 0, got -1"},
		{"executor name", func(c *Config) { c.Executors.ByName["a.b"] = Executor{Kind: KindCommand, Argv: []string{"x"}} }, "executors.a.b: executor names may only hold letters, digits, '_' and '-'"},
		{"executor env", func(c *Config) {
			c.Executors.ByName["claude"] = Executor{Kind: KindCommand, Argv: []string{"x"}, Env: map[string]string{"A=B": "c"}}
		}, `executors.claude.env: invalid variable name "A=B"`},
		{"log level", func(c *Config) { c.Logging.Level = "trace" }, `logging.level: must be one of debug, info, warn, error; got "trace"`},
		{"port", func(c *Config) { c.AskAnswer.Port = 70000 }, "askAnswer.port: must be between 1 and 65535, got 70000"},
		{"auth", func(c *Config) { c.AskAnswer.Auth = "basic" }, `askAnswer.auth: must be one of token, none; got "basic"`},
		{"auth none on loopback", func(c *Config) { c.AskAnswer.Auth = AuthNone; c.AskAnswer.Host = "localhost" }, ""},
		{"auth none exposed", func(c *Config) { c.AskAnswer.Auth = AuthNone; c.AskAnswer.Host = "0.0.0.0" }, `askAnswer.auth: none is only allowed when askAnswer.host is a loopback address, got host "0.0.0.0"`},
		{"long poll", func(c *Config) { c.AskAnswer.LongPollTimeoutSec = 301 }, "askAnswer.longPollTimeoutSec: must be between 1 and 300, got 301"},
		{"sse heartbeat", func(c *Config) { c.AskAnswer.SSEHeartbeatSec = -1 }, "askAnswer.sseHeartbeatSec: must be at least 1, got -1"},
		{"provider", func(c *Config) { c.AskAnswer.Runner.Provider = "bedrock" }, `askAnswer.runner.provider: must be one of anthropic, openai, sampling, none; got "bedrock"`},
		{"openai needs model", func(c *Config) { c.AskAnswer.Runner.Provider = ProviderOpenAI; c.AskAnswer.Runner.Model = "" }, "askAnswer.runner.model: must not be empty"},
		{"sampling needs no model", func(c *Config) { c.AskAnswer.Runner.Provider = ProviderSampling; c.AskAnswer.Runner.Model = "" }, ""},
		{"maxRetries", func(c *Config) { c.AskAnswer.Runner.MaxRetries = -2 }, "askAnswer.runner.maxRetries: must be at least -1, got -2"},
		{"baseURL", func(c *Config) { c.AskAnswer.Runner.BaseURL = "localhost:8080" }, `askAnswer.runner.baseURL: must be an http or https URL, got "localhost:8080"`},
		{"apiKeyEnv", func(c *Config) { c.AskAnswer.Runner.APIKeyEnv = "MY-KEY" }, `askAnswer.runner.apiKeyEnv: must be an environment variable name, got "MY-KEY"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := valid()
			tt.mutate(c)
			err := c.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tt.wantErr)
			require.ErrorIs(t, err, ErrInvalid)
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()

	c := valid()
	c.Profile = "x"
	c.Server.MaxConcurrency = 0
	err := c.Validate()
	require.Error(t, err)
	require.Contains(t, err.Error(), "profile: must be one of")
	require.Contains(t, err.Error(), "server.maxConcurrency: must be between 1 and 256, got 0")
	require.Len(t, strings.Split(err.Error(), "\n"), 2)
}

func TestExecutorLookup(t *testing.T) {
	t.Parallel()

	two := valid()
	noDefault := valid()
	noDefault.Executors.Default = ""
	one := (&Config{ConfigDir: "/cfg", DataDir: "/d", Executors: Executors{ByName: map[string]Executor{"only": {Argv: []string{"x"}}}}}).WithDefaults()
	none := (&Config{ConfigDir: "/cfg", DataDir: "/d"}).WithDefaults()

	tests := []struct {
		name     string
		cfg      *Config
		ask      string
		wantName string
		wantIs   error
		wantErr  string
	}{
		{name: "default", cfg: two, ask: "", wantName: "codex"},
		{name: "named", cfg: two, ask: "claude", wantName: "claude"},
		{name: "unknown", cfg: two, ask: "gemini", wantIs: ErrUnknownExecutor, wantErr: `unknown executor "gemini" (known: claude, codex)`},
		{name: "only one", cfg: one, ask: "", wantName: "only"},
		{name: "several no default", cfg: noDefault, ask: "", wantIs: ErrNoExecutor,
			wantErr: "no executor configured: no default among claude, codex; set executors.default in /cfg/config.yaml or name an executor in the job"},
		{name: "none", cfg: none, ask: "", wantIs: ErrNoExecutor,
			wantErr: "no executor configured: add executors.<name> with kind: command and argv to /cfg/config.yaml"},
		{name: "none named", cfg: none, ask: "codex", wantIs: ErrUnknownExecutor,
			wantErr: `unknown executor "codex": none are configured; add executors.codex with kind: command and argv to /cfg/config.yaml`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name, e, err := tt.cfg.Executor(tt.ask)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, tt.wantIs)
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantName, name)
			require.Equal(t, KindCommand, e.Kind)
			require.NotEmpty(t, e.Argv)
		})
	}

	// The returned executor is a copy.
	_, e, err := two.Executor("codex")
	require.NoError(t, err)
	e.Argv[0] = "changed"
	require.Equal(t, "codex", two.Executors.ByName["codex"].Argv[0])
}

func TestErrorFormat(t *testing.T) {
	t.Parallel()

	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Source: "config.yaml:7", Path: "server.maxConcurency", Msg: `did you mean "server.maxConcurrency"?`, Err: ErrUnknownKey},
			`config.yaml:7: unknown key "server.maxConcurency" (did you mean "server.maxConcurrency"?)`},
		{&Error{Source: "config.yaml:7", Path: "foo", Err: ErrUnknownKey}, `config.yaml:7: unknown key "foo"`},
		{&Error{Source: "TASK_RELAY_STORAGE", Path: "storage.mode", Msg: "bad", Err: ErrInvalid}, "TASK_RELAY_STORAGE: storage.mode: bad"},
		{&Error{Path: "storage.mode", Msg: "bad", Err: ErrInvalid}, "storage.mode: bad"},
		{&Error{Source: "config.yaml:1", Msg: "invalid YAML: x", Err: ErrInvalid}, "config.yaml:1: invalid YAML: x"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, tt.err.Error())
		require.True(t, errors.Is(tt.err, tt.err.Err))
	}
}

func TestExecutorsUnmarshalYAML(t *testing.T) {
	t.Parallel()

	var got struct {
		Executors Executors `yaml:"executors"`
	}
	err := yaml.Unmarshal([]byte("executors:\n  default: a\n  a:\n    argv: [x]\n"), &got)
	require.NoError(t, err)
	require.Equal(t, Executors{Default: "a", ByName: map[string]Executor{"a": {Argv: []string{"x"}}}}, got.Executors)

	err = yaml.Unmarshal([]byte("executors:\n  a:\n    argv: x\n"), &got)
	require.ErrorContains(t, err, `line 3: executors.a.argv: must be a list, got "x"`)
}

func envFunc(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func abs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	require.NoError(t, err)
	return a
}
