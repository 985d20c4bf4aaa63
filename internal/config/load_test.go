package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

type loadBundle struct {
	home      string
	configDir string
	env       map[string]string
}

// setup returns a fresh HOME and an empty config dir named in the env.
func setup(t *testing.T) *loadBundle {
	t.Helper()
	root := t.TempDir()
	b := &loadBundle{
		home:      filepath.Join(root, "home"),
		configDir: filepath.Join(root, "cfg"),
	}
	require.NoError(t, os.MkdirAll(b.home, 0o755))
	require.NoError(t, os.MkdirAll(b.configDir, 0o755))
	b.env = map[string]string{"HOME": b.home, EnvConfigDir: b.configDir}
	return b
}

func (b *loadBundle) write(t *testing.T, doc string) {
	t.Helper()
	writeFile(t, filepath.Join(b.configDir, ConfigFileName), doc)
}

func (b *loadBundle) load(o Overrides) (*Config, error) {
	return Load(o, envFunc(b.env))
}

func writeFile(t *testing.T, path, doc string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(doc), 0o644))
}

func strp(s string) *string { return &s }

func TestLoadDefaultsWithoutConfigDir(t *testing.T) {
	t.Parallel()

	home := t.TempDir()
	missing := filepath.Join(t.TempDir(), "does-not-exist")
	c, err := Load(Overrides{ConfigDir: &missing}, envFunc(map[string]string{"HOME": home}))
	require.NoError(t, err)

	data := filepath.Join(home, ".local", "share", "mcp-task-relay")
	want := (&Config{ConfigDir: missing, DataDir: data}).WithDefaults()
	want.origins = c.origins
	require.Equal(t, want, c)
	require.Equal(t, filepath.Join(data, "relay.db"), c.Storage.SQLitePath)
	require.Equal(t, filepath.Join(data, "artifacts"), c.Server.ArtifactRoot)
	require.Equal(t, filepath.Join(missing, "policy.yaml"), c.PolicyFile)
	require.Equal(t, ProfileDev, c.Profile)
	require.Equal(t, StorageSQLite, c.Storage.Mode)
	require.Empty(t, c.Executors.ByName)
}

func TestLoadDefaultConfigDirIsRelativeToCwd(t *testing.T) {
	t.Parallel()

	// The package directory has no .mcp-task-relay, so this is all defaults.
	c, err := Load(Overrides{}, envFunc(map[string]string{"HOME": t.TempDir(), "XDG_DATA_HOME": "/xdg"}))
	require.NoError(t, err)
	require.Equal(t, abs(t, ".mcp-task-relay"), c.ConfigDir)
	require.Equal(t, "/xdg/mcp-task-relay", c.DataDir)
}

func TestLoadNoHome(t *testing.T) {
	t.Parallel()

	dir := t.TempDir()
	c, err := Load(Overrides{ConfigDir: &dir}, envFunc(nil))
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "data"), c.DataDir)
}

func TestLoadPrecedence(t *testing.T) {
	t.Parallel()

	type layers struct{ file, env, flag bool }
	tests := []struct {
		name  string
		field func(c *Config) string
		// apply sets the layers; the file value is written to config.yaml.
		file    string
		envKey  string
		envVal  string
		flagSet func(o *Overrides)
		// want per layer combination; relative values are made absolute.
		def, fromFile, fromEnv, fromFlag string
	}{
		{
			name:  "profile",
			field: func(c *Config) string { return c.Profile },
			file:  "profile: staging\n", envKey: EnvProfile, envVal: "prod",
			flagSet: func(o *Overrides) { o.Profile = strp("dev") },
			def:     "dev", fromFile: "staging", fromEnv: "prod", fromFlag: "dev",
		},
		{
			name:  "storage",
			field: func(c *Config) string { return c.Storage.Mode },
			file:  "storage:\n  mode: memory\n", envKey: EnvStorage, envVal: "postgres",
			flagSet: func(o *Overrides) { o.Storage = strp("sqlite") },
			def:     "sqlite", fromFile: "memory", fromEnv: "postgres", fromFlag: "sqlite",
		},
		{
			name:  "sqlite",
			field: func(c *Config) string { return c.Storage.SQLitePath },
			file:  "storage:\n  sqlitePath: /file.db\n", envKey: EnvSQLiteURL, envVal: "sqlite:///env.db",
			flagSet: func(o *Overrides) { o.SQLitePath = strp("/flag.db") },
			def:     "", fromFile: "/file.db", fromEnv: "/env.db", fromFlag: "/flag.db",
		},
		{
			name:  "transport",
			field: func(c *Config) string { return c.Transport },
			file:  "transport: http\n", envKey: EnvTransport, envVal: "stdio",
			flagSet: func(o *Overrides) { o.Transport = strp("http") },
			def:     "stdio", fromFile: "http", fromEnv: "stdio", fromFlag: "http",
		},
	}
	for _, tt := range tests {
		for _, l := range []layers{{}, {file: true}, {file: true, env: true}, {file: true, env: true, flag: true}, {flag: true}} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				var o Overrides
				want := tt.def
				if l.file {
					b.write(t, tt.file)
					want = tt.fromFile
				}
				if l.env {
					b.env[tt.envKey] = tt.envVal
					want = tt.fromEnv
				}
				if l.flag {
					tt.flagSet(&o)
					want = tt.fromFlag
				}
				// Storage mode postgres needs a URL to validate.
				b.env[EnvPostgresURL] = "postgres://localhost/x"
				c, err := b.load(o)
				require.NoError(t, err)
				if want == "" {
					want = filepath.Join(c.DataDir, SQLiteFileName)
				}
				require.Equal(t, want, tt.field(c), "layers %+v", l)
			})
		}
	}
}

func TestLoadConfigDirPrecedence(t *testing.T) {
	t.Parallel()

	root := t.TempDir()
	envDir := filepath.Join(root, "env")
	flagDir := filepath.Join(root, "flag")
	writeFile(t, filepath.Join(envDir, ConfigFileName), "profile: staging\n")
	writeFile(t, filepath.Join(flagDir, ConfigFileName), "profile: prod\n")

	tests := []struct {
		name        string
		env         map[string]string
		flag        *string
		wantDir     string
		wantProfile string
	}{
		{"default", map[string]string{"HOME": root}, nil, abs(t, DefaultConfigDir), "dev"},
		{"env", map[string]string{"HOME": root, EnvConfigDir: envDir}, nil, envDir, "staging"},
		{"flag beats env", map[string]string{"HOME": root, EnvConfigDir: envDir}, &flagDir, flagDir, "prod"},
		{"empty flag is not given", map[string]string{"HOME": root, EnvConfigDir: envDir}, strp(""), envDir, "staging"},
		{"empty env is unset", map[string]string{"HOME": root, EnvConfigDir: ""}, nil, abs(t, DefaultConfigDir), "dev"},
		{"tilde", map[string]string{"HOME": root, EnvConfigDir: "~/flag"}, nil, flagDir, "prod"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load(Overrides{ConfigDir: tt.flag}, envFunc(tt.env))
			require.NoError(t, err)
			require.Equal(t, tt.wantDir, c.ConfigDir)
			require.Equal(t, tt.wantProfile, c.Profile)
			require.Equal(t, filepath.Join(tt.wantDir, "prompts"), c.PromptsDir)
		})
	}
}

func TestLoadExecutors(t *testing.T) {
	t.Parallel()

	b := setup(t)
	b.write(t, `executors:
  default: claude
  codex:
    kind: command
    argv: [codex, exec, --full-auto]
  claude:
    argv: [claude, -p, --output-format, json]
    env:
      CLAUDE_CONFIG_DIR: /tmp/claude
    timeoutS: 900
`)
	c, err := b.load(Overrides{})
	require.NoError(t, err)
	require.Equal(t, []string{"claude", "codex"}, c.Executors.Names())

	name, e, err := c.Executor("")
	require.NoError(t, err)
	require.Equal(t, "claude", name)
	require.Equal(t, Executor{
		Kind:     KindCommand,
		Argv:     []string{"claude", "-p", "--output-format", "json"},
		Env:      map[string]string{"CLAUDE_CONFIG_DIR": "/tmp/claude"},
		TimeoutS: 900,
	}, e)

	name, e, err = c.Executor("codex")
	require.NoError(t, err)
	require.Equal(t, "codex", name)
	require.Equal(t, DefaultExecutorTimeoutS, e.TimeoutS)
}

func TestLoadValidationErrorsNameTheSource(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		doc  string
		env  map[string]string
		o    Overrides
		want string // %s is the config file
	}{
		{
			name: "default executor missing",
			doc:  "executors:\n  default: gemini\n  codex:\n    argv: [codex]\n",
			want: `%s:2: executors.default: names executor "gemini", which is not defined (defined: codex)`,
		},
		{
			name: "argv missing points at the executor",
			doc:  "executors:\n  codex:\n    kind: command\n",
			want: `%s:3: executors.codex.argv: required for kind command, e.g. argv: [my-agent, "{{prompt_file}}"]`,
		},
		{
			name: "agent kind with argv",
			doc:  "executors:\n  codex:\n    kind: codex\n    argv: [x]\n",
			want: `%s:4: executors.codex.argv: is for kind command; a codex executor builds its own command line (use binary, model, extraArgs)`,
		},
		{
			name: "range in file",
			doc:  "server:\n  leaseTtlSec: 60\n  heartbeatIntervalSec: 90\n",
			want: `%s:3: server.heartbeatIntervalSec: must be less than server.leaseTtlSec (60), got 90`,
		},
		{
			name: "env overrides file origin",
			doc:  "storage:\n  mode: sqlite\n",
			env:  map[string]string{EnvStorage: "mysql"},
			want: `TASK_RELAY_STORAGE: storage.mode: must be one of memory, sqlite, postgres; got "mysql"`,
		},
		{
			name: "flag",
			o:    Overrides{Storage: strp("redis")},
			want: `--storage: storage.mode: must be one of memory, sqlite, postgres; got "redis"`,
		},
		{
			name: "flag profile",
			o:    Overrides{Profile: strp("production")},
			want: `--profile: profile: must be one of dev, staging, prod; got "production"`,
		},
		{
			name: "postgres without url",
			o:    Overrides{Storage: strp("postgres")},
			want: `storage.postgresUrl: required when storage.mode is postgres (or set TASK_RELAY_POSTGRES_URL)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			if tt.doc != "" {
				b.write(t, tt.doc)
			}
			for k, v := range tt.env {
				b.env[k] = v
			}
			_, err := b.load(tt.o)
			want := tt.want
			if strings.Contains(want, "%s") {
				want = fmt.Sprintf(want, filepath.Join(b.configDir, ConfigFileName))
			}
			require.EqualError(t, err, want)
			require.ErrorIs(t, err, ErrInvalid)
		})
	}
}

func TestLoadFileErrorsNameFileAndLine(t *testing.T) {
	t.Parallel()

	b := setup(t)
	b.write(t, "server:\n  maxConcurrency: three\n  maxConcurency: 4\n")
	_, err := b.load(Overrides{})
	file := filepath.Join(b.configDir, ConfigFileName)
	require.EqualError(t, err, file+`:2: server.maxConcurrency: must be an integer, got "three"`+"\n"+
		file+`:3: unknown key "server.maxConcurency" (did you mean "server.maxConcurrency"?)`)
}

func TestLoadEnvErrors(t *testing.T) {
	t.Parallel()

	tests := []struct {
		key, val, want string
	}{
		{EnvProfile, "live", `TASK_RELAY_PROFILE: profile: must be one of dev, staging, prod; got "live"`},
		{EnvStorage, "mysql", `TASK_RELAY_STORAGE: storage.mode: must be one of memory, sqlite, postgres; got "mysql"`},
		{EnvTransport, "ws", `TASK_RELAY_TRANSPORT: transport: must be one of stdio, http; got "ws"`},
		{EnvLogLevel, "loud", `TASK_RELAY_LOG_LEVEL: logging.level: must be one of debug, info, warn, error; got "loud"`},
		{EnvAnswerRunnerEnabled, "maybe", `TASK_RELAY_ANSWER_RUNNER_ENABLED: askAnswer.runner.enabled: must be true, false, 1 or 0, got "maybe"`},
		{EnvSQLiteURL, "file:", `TASK_RELAY_SQLITE_URL: storage.sqlitePath: must be PATH, file:PATH or sqlite://PATH, got "file:"`},
		{EnvSQLiteURL, "sqlite://:memory:", `TASK_RELAY_SQLITE_URL: storage.sqlitePath: "sqlite://:memory:" is not a file; use storage mode memory`},
		{EnvDataDir, "~/x", `TASK_RELAY_DATA_DIR: server.dataDir: cannot expand "~/x": HOME is not set`},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.val, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.env[tt.key] = tt.val
			if tt.key == EnvDataDir {
				delete(b.env, "HOME")
			}
			_, err := b.load(Overrides{})
			require.EqualError(t, err, tt.want)
			require.ErrorIs(t, err, ErrInvalid)
		})
	}
}

func TestLoadEnvValues(t *testing.T) {
	t.Parallel()

	b := setup(t)
	b.write(t, "askAnswer:\n  runner:\n    enabled: true\nlogging:\n  level: warn\n")
	b.env[EnvAnswerRunnerEnabled] = "0"
	b.env[EnvLogLevel] = "debug"
	b.env[EnvStorage] = "postgres"
	b.env[EnvPostgresURL] = "postgres://u:secret@db/relay"
	b.env[EnvPolicyFile] = "/etc/relay/policy.yaml"
	c, err := b.load(Overrides{})
	require.NoError(t, err)
	require.False(t, c.AskAnswer.Runner.IsEnabled())
	require.Equal(t, "debug", c.Logging.Level)
	require.Equal(t, "postgres://u:secret@db/relay", c.Storage.PostgresURL)
	require.Equal(t, "/etc/relay/policy.yaml", c.PolicyFile)

	for _, v := range []string{"1", "true", "TRUE"} {
		b.env[EnvAnswerRunnerEnabled] = v
		c, err := b.load(Overrides{})
		require.NoError(t, err)
		require.True(t, c.AskAnswer.Runner.IsEnabled(), v)
	}
}

func TestLoadRelativePaths(t *testing.T) {
	t.Parallel()

	b := setup(t)
	b.write(t, `promptsDir: my-prompts
server:
  dataDir: state
  artifactRoot: ../artifacts
  workspaceRoot: ~/ws
storage:
  sqlitePath: db/relay.db
`)
	c, err := b.load(Overrides{})
	require.NoError(t, err)
	require.Equal(t, filepath.Join(b.configDir, "state"), c.DataDir)
	require.Equal(t, c.DataDir, c.Server.DataDir)
	require.Equal(t, filepath.Join(filepath.Dir(b.configDir), "artifacts"), c.Server.ArtifactRoot)
	require.Equal(t, filepath.Join(b.home, "ws"), c.Server.WorkspaceRoot)
	require.Equal(t, filepath.Join(b.configDir, "db", "relay.db"), c.Storage.SQLitePath)
	require.Equal(t, filepath.Join(b.configDir, "my-prompts"), c.PromptsDir)
	require.Equal(t, filepath.Join(b.configDir, "schemata"), c.SchemataDir)

	// From the environment and flags, relative paths follow the cwd.
	b.env[EnvDataDir] = "env-state"
	b.env[EnvSchemataDir] = "~/schemata"
	c, err = b.load(Overrides{SQLitePath: strp("file:flag.db?mode=rwc")})
	require.NoError(t, err)
	require.Equal(t, abs(t, "env-state"), c.DataDir)
	require.Equal(t, filepath.Join(b.home, "schemata"), c.SchemataDir)
	require.Equal(t, abs(t, "flag.db"), c.Storage.SQLitePath)
	// Roots set in the file stay where the file put them.
	require.Equal(t, filepath.Join(b.home, "ws"), c.Server.WorkspaceRoot)
}

func TestLoadDefaultsFollowDataDir(t *testing.T) {
	t.Parallel()

	b := setup(t)
	b.env[EnvDataDir] = "/srv/relay"
	c, err := b.load(Overrides{})
	require.NoError(t, err)
	require.Equal(t, "/srv/relay", c.DataDir)
	require.Equal(t, "/srv/relay/relay.db", c.Storage.SQLitePath)
	require.Equal(t, "/srv/relay/artifacts", c.Server.ArtifactRoot)
	require.Equal(t, "/srv/relay/workspaces", c.Server.WorkspaceRoot)
}

func TestSQLitePathFromURL(t *testing.T) {
	t.Parallel()

	tests := []struct {
		in, want, wantErr string
	}{
		{in: "relay.db", want: "relay.db"},
		{in: "/var/relay.db", want: "/var/relay.db"},
		{in: "file:relay.db", want: "relay.db"},
		{in: "file:/var/relay.db", want: "/var/relay.db"},
		{in: "file:///var/relay.db", want: "/var/relay.db"},
		{in: "file:relay.db?_pragma=busy_timeout(5000)", want: "relay.db"},
		{in: "sqlite://relay.db", want: "relay.db"},
		{in: "sqlite:///var/relay.db", want: "/var/relay.db"},
		{in: "sqlite:relay.db", want: "relay.db"},
		{in: "~/relay.db", want: "~/relay.db"},
		{in: "file://host/relay.db", wantErr: `must be PATH, file:PATH or sqlite://PATH, got "file://host/relay.db"`},
		{in: "sqlite://", wantErr: `must be PATH, file:PATH or sqlite://PATH, got "sqlite://"`},
		{in: ":memory:", wantErr: `":memory:" is not a file; use storage mode memory`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := SQLitePathFromURL(tt.in)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestLoadSQLiteURLForms(t *testing.T) {
	t.Parallel()

	tests := []struct {
		url  string
		want func(home string) string
	}{
		{"/abs/relay.db", func(string) string { return "/abs/relay.db" }},
		{"file:/abs/relay.db", func(string) string { return "/abs/relay.db" }},
		{"sqlite:///abs/relay.db", func(string) string { return "/abs/relay.db" }},
		{"sqlite://rel/relay.db", func(string) string { return filepath.Join(mustGetwd(), "rel", "relay.db") }},
		{"file:~/relay.db", func(home string) string { return filepath.Join(home, "relay.db") }},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.env[EnvSQLiteURL] = tt.url
			c, err := b.load(Overrides{})
			require.NoError(t, err)
			require.Equal(t, tt.want(b.home), c.Storage.SQLitePath)
		})
	}
}

func TestLoadUnreadableConfig(t *testing.T) {
	t.Parallel()

	t.Run("config dir is a file", func(t *testing.T) {
		t.Parallel()
		f := filepath.Join(t.TempDir(), "file")
		writeFile(t, f, "x")
		_, err := Load(Overrides{ConfigDir: &f}, envFunc(map[string]string{"HOME": t.TempDir()}))
		require.ErrorContains(t, err, "config: read "+filepath.Join(f, ConfigFileName))
	})
	t.Run("config.yaml is a directory", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.NoError(t, os.Mkdir(filepath.Join(b.configDir, ConfigFileName), 0o755))
		_, err := b.load(Overrides{})
		require.ErrorContains(t, err, "config: read "+filepath.Join(b.configDir, ConfigFileName))
	})
	t.Run("config dir exists without config.yaml", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, err := b.load(Overrides{})
		require.NoError(t, err)
		require.Equal(t, b.configDir, c.ConfigDir)
	})
}

func mustGetwd() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return wd
}

func TestLoadSeedExample(t *testing.T) {
	t.Parallel()

	// The config.yaml example of the original README.
	b := setup(t)
	b.write(t, `askAnswer:
  port: 3415
  longPollTimeoutSec: 25
  sseHeartbeatSec: 10
  runner:
    enabled: true
    model: claude-3-5-sonnet-20241022
    maxRetries: 1
    defaultTimeout: 60
`)
	c, err := b.load(Overrides{Profile: strp("prod"), Storage: strp("sqlite"), SQLitePath: strp("./relay.db")})
	require.NoError(t, err)
	require.Equal(t, "claude-3-5-sonnet-20241022", c.AskAnswer.Runner.Model)
	require.Equal(t, ProfileProd, c.Profile)
	require.Equal(t, abs(t, "relay.db"), c.Storage.SQLitePath)
}
