package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
	"github.com/mcp-task-relay/mcp-task-relay/internal/policy"
	"github.com/mcp-task-relay/mcp-task-relay/internal/role"
)

// mapEnv returns a lookup function over env.
func mapEnv(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

// runInitCmd runs the init command in-process with env as its whole
// environment.
func runInitCmd(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	cmd := newInitWith(mapEnv(env))
	var stdout, stderr bytes.Buffer
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(t.Context())
	require.Empty(t, stderr.String())
	return stdout.String(), err
}

// initDir runs init into a fresh directory and returns it.
func initDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "relay-config")
	_, err := runInitCmd(t, nil, "--dir", dir)
	require.NoError(t, err)
	return dir
}

// loadConfig loads the configuration of dir with a private data dir.
func loadConfig(t *testing.T, dir string) (*config.Config, error) {
	t.Helper()
	env := map[string]string{"HOME": t.TempDir(), config.EnvDataDir: filepath.Join(t.TempDir(), "data")}
	return config.Load(config.Overrides{ConfigDir: &dir}, mapEnv(env))
}

func TestInitWritesStarterDir(t *testing.T) {
	t.Parallel()

	dir := filepath.Join(t.TempDir(), "relay-config")
	out, err := runInitCmd(t, nil, "--dir", dir)
	require.NoError(t, err)

	files := initFiles()
	require.Len(t, files, 2+len(role.BuiltinRoleFiles())+2)
	for _, f := range files {
		p := filepath.Join(dir, f.rel)
		data, err := os.ReadFile(p)
		require.NoError(t, err, f.rel)
		require.Equal(t, string(f.data), string(data), f.rel)
		require.Contains(t, out, "created   "+p+"\n")
	}
	require.Contains(t, out, "Next steps:")
	require.Contains(t, out, "mcp-task-relay doctor --config-dir "+dir)
	require.Contains(t, out, "claude mcp add task-relay -- mcp-task-relay serve --config-dir "+dir)
	require.NotContains(t, out, "overwrote")

	// The active lines of config.yaml hold exactly the built-in defaults.
	cfg, err := loadConfig(t, dir)
	require.NoError(t, err)
	defaults, err := loadConfig(t, filepath.Join(t.TempDir(), "empty"))
	require.NoError(t, err)
	require.Equal(t, defaults.Profile, cfg.Profile)
	require.Equal(t, defaults.Transport, cfg.Transport)
	require.Equal(t, defaults.Storage.Mode, cfg.Storage.Mode)
	require.Equal(t, defaults.Logging, cfg.Logging)
	// cacheTtlSec 0 and 3600 are the same default.
	require.Equal(t, defaults.AskAnswer.Runner.CacheTTL(), cfg.AskAnswer.Runner.CacheTTL())
	cfg.AskAnswer.Runner.CacheTTLSec = defaults.AskAnswer.Runner.CacheTTLSec
	require.Equal(t, defaults.AskAnswer, cfg.AskAnswer)
	require.Equal(t, defaults.Executors, cfg.Executors)
	cfgServer, defServer := cfg.Server, defaults.Server
	for _, s := range []*config.Server{&cfgServer, &defServer} {
		s.DataDir, s.ArtifactRoot, s.WorkspaceRoot = "", "", ""
	}
	require.Equal(t, defServer, cfgServer)
	require.Equal(t, filepath.Join(dir, "prompts"), cfg.PromptsDir)
	require.Equal(t, filepath.Join(dir, "schemata"), cfg.SchemataDir)
	require.Equal(t, filepath.Join(dir, "policy.yaml"), cfg.PolicyFile)

	policy, err := policy.LoadPolicy(cfg.PolicyFile)
	require.NoError(t, err)
	require.Equal(t, cfg.PolicyFile, policy.Source)
	var rules []string
	for _, r := range policy.Rules {
		rules = append(rules, r.Name+"="+r.Decision+r.Route)
	}
	require.Equal(t, []string{"no-destructive-sql=DENY", "no-credentials-by-ask=DENY", "prod-approvals-to-a-person=human"}, rules)

	// Every role now comes from the copies, which are the built-ins.
	catalog, err := role.LoadCatalog(cfg.PromptsDir)
	require.NoError(t, err)
	builtin, err := role.LoadCatalog()
	require.NoError(t, err)
	require.Len(t, catalog.Roles(), len(builtin.Roles()))
	for i, r := range catalog.Roles() {
		require.Equal(t, filepath.Join(cfg.PromptsDir, "role."+r.Ref()+".yaml"), r.Source)
		b := builtin.Roles()[i]
		require.Equal(t, b.Ref(), r.Ref())
		require.Equal(t, b.System, r.System)
		require.Equal(t, string(b.OutputSchema), string(r.OutputSchema), r.Ref())
	}

	schemata, err := role.LoadSchemata(cfg.SchemataDir)
	require.NoError(t, err)
	require.Equal(t, []string{initExampleSchemaName}, schemata.Names())
	require.NoError(t, catalog.CheckSchemas(schemata))
	sch, err := schemata.Compile([]byte(`"` + initExampleSchemaName + `"`))
	require.NoError(t, err)
	require.NoError(t, schemata.Validate(sch, []byte(`{"choice":"b","reason":"smaller diff"}`)))
	require.Error(t, schemata.Validate(sch, []byte(`{"choice":"b"}`)))
}

// uncommentBlock uncomments the line of text that starts (after its
// indentation) with header, and the deeper-indented commented lines that
// follow it.
func uncommentBlock(t *testing.T, text, header string) string {
	t.Helper()
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(strings.TrimSpace(l), header) {
			continue
		}
		indent := l[:strings.Index(l, "#")]
		lines[i] = indent + strings.TrimPrefix(l[len(indent):], "# ")
		for j := i + 1; j < len(lines) && strings.HasPrefix(lines[j], indent+"#   "); j++ {
			lines[j] = indent + strings.TrimPrefix(lines[j][len(indent):], "# ")
		}
		return strings.Join(lines, "\n")
	}
	t.Fatalf("config.yaml has no line %q", header)
	return ""
}

// The commented examples of settings that exist today load once
// uncommented, so a user can do just that.
func TestInitConfigExamplesLoad(t *testing.T) {
	t.Parallel()

	text := initConfigYAML
	for _, h := range []string{
		"# server:", "# storage:", "# logging:", "# port:", "# host:", "# longPollTimeoutSec:", "# sseHeartbeatSec:", "# auth: token",
		"# profile:", "# transport:", "# heartbeatIntervalSec:", "# dataDir:", "# artifactRoot:",
		"# workspaceRoot:", "# sqlitePath:", "# postgresUrl:", "# default: agent", "# agent:",
		"# default: runner", "# byType:", "# byRole:", "# model: claude", "# baseURL:", "# apiKeyEnv:",
		"# promptsDir:", "# schemataDir:", "# policyFile:", "# workspace:", "# codex:", "# claude:", "# gemini:",
	} {
		text = uncommentBlock(t, text, h)
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, config.ConfigFileName), []byte(text), 0o644))
	home := t.TempDir()
	cfg, err := config.Load(config.Overrides{ConfigDir: &dir}, mapEnv(map[string]string{"HOME": home}))
	require.NoError(t, err, text)

	require.Equal(t, "agent", cfg.Executors.Default)
	require.Equal(t, config.Executor{
		Kind: config.KindCommand, Argv: []string{"codex", "exec", "--skip-git-repo-check", "{{prompt}}"},
		Env: map[string]string{}, TimeoutS: 1800, PassEnv: []string{"CODEX_API_KEY"},
	}, cfg.Executors.ByName["agent"])
	require.Equal(t, config.Executor{
		Kind: config.KindCodex, Binary: "codex", ExtraArgs: []string{}, Env: map[string]string{}, TimeoutS: 1800,
		PassEnv: []string{"CODEX_API_KEY"},
	}, cfg.Executors.ByName["codex"])
	claude := cfg.Executors.ByName["claude"]
	require.Equal(t, "acceptEdits", claude.PermissionMode)
	require.Equal(t, 50, claude.MaxTurns)
	require.Equal(t, []string{"Read", "Edit", "Write", "Bash(go test:*)"}, claude.AllowedTools)
	require.Equal(t, &config.Workspace{CopyFiles: []string{".env"}, Setup: "go mod download"}, claude.Workspace)
	require.Equal(t, "auto_edit", cfg.Executors.ByName["gemini"].ApprovalMode)
	require.Equal(t, config.Workspace{CopyFiles: []string{".env", "config/local.*.yaml"}, Setup: "npm ci"}, cfg.Workspace)
	require.Equal(t, filepath.Join(home, ".local/share/mcp-task-relay"), cfg.DataDir)
	require.Equal(t, filepath.Join(home, ".local/share/mcp-task-relay/relay.db"), cfg.Storage.SQLitePath)
	require.Equal(t, config.Routing{
		Default: "runner", ByType: map[string]string{"APPROVAL": "human"}, ByRole: map[string]string{"risk_assessor": "orchestrator"},
	}, cfg.AskAnswer.Routing)
	require.Equal(t, config.DefaultRunnerModel, cfg.AskAnswer.Runner.Model)
	require.Equal(t, filepath.Join(dir, "prompts"), cfg.PromptsDir)
	require.Equal(t, filepath.Join(dir, "policy.yaml"), cfg.PolicyFile)
	// The service settings, commented for the shared service, hold the
	// defaults for --standalone.
	require.Equal(t, config.DefaultMaxConcurrency, cfg.Server.MaxConcurrency)
	require.Equal(t, config.DefaultAdmitTimeoutSec, cfg.Server.AdmitTimeoutSec)
	require.Equal(t, config.DefaultAskAnswerPort, cfg.AskAnswer.Port)
	require.Equal(t, config.AuthToken, cfg.AskAnswer.Auth)
	require.Equal(t, config.StorageSQLite, cfg.Storage.Mode)
	require.Contains(t, cfg.FileKeys(), "server.maxConcurrency", "uncommented")
}

func TestInitRefusesToOverwrite(t *testing.T) {
	t.Parallel()

	dir := initDir(t)
	cfgFile := filepath.Join(dir, config.ConfigFileName)
	require.NoError(t, os.WriteFile(cfgFile, []byte("# mine\n"), 0o644))
	role := filepath.Join(dir, "prompts", "role.finder@v1.yaml")
	require.NoError(t, os.Remove(role))

	out, err := runInitCmd(t, nil, "--dir", dir)
	require.Error(t, err)
	require.Contains(t, err.Error(), cfgFile+" already exists")
	require.Contains(t, err.Error(), "--force")
	require.Empty(t, out)
	// Nothing was written: not even the file that was missing.
	data, err := os.ReadFile(cfgFile)
	require.NoError(t, err)
	require.Equal(t, "# mine\n", string(data))
	require.NoFileExists(t, role)

	out, err = runInitCmd(t, nil, "--dir", dir, "--force")
	require.NoError(t, err)
	require.Contains(t, out, "overwrote "+cfgFile+"\n")
	require.Contains(t, out, "created   "+role+"\n")
	data, err = os.ReadFile(cfgFile)
	require.NoError(t, err)
	require.Equal(t, initConfigYAML, string(data))
	require.FileExists(t, role)
	_, err = loadConfig(t, dir)
	require.NoError(t, err)
	// No temporary files are left behind.
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		require.False(t, strings.HasPrefix(e.Name(), "."), e.Name())
	}
}

func TestInitRefusesNonDirectory(t *testing.T) {
	t.Parallel()

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prompts"), nil, 0o644))
	_, err := runInitCmd(t, nil, "--dir", dir, "--force")
	require.ErrorContains(t, err, filepath.Join(dir, "prompts")+" exists and is not a directory")
	require.NoFileExists(t, filepath.Join(dir, config.ConfigFileName))
}

func TestInitDirFromEnvironment(t *testing.T) {
	t.Parallel()

	home := t.TempDir()
	out, err := runInitCmd(t, map[string]string{config.EnvConfigDir: "~/relay", "HOME": home})
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(home, "relay", config.ConfigFileName))
	require.Contains(t, out, "mcp-task-relay doctor --config-dir "+filepath.Join(home, "relay"))

	// --dir wins over the environment.
	other := filepath.Join(t.TempDir(), "other")
	_, err = runInitCmd(t, map[string]string{config.EnvConfigDir: filepath.Join(home, "relay")}, "--dir", other)
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(other, config.PolicyFileName))
}
