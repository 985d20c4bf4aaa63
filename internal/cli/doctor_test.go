package cli

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
)

// doctorSetup is an init'ed config dir and the environment doctor runs
// with: the real PATH (for git), a private HOME and data dir, no API keys.
type doctorSetup struct {
	dir     string
	dataDir string
	env     map[string]string
}

func newDoctorSetup(t *testing.T) *doctorSetup {
	t.Helper()
	s := &doctorSetup{dir: initDir(t), dataDir: filepath.Join(t.TempDir(), "data")}
	s.env = map[string]string{
		"PATH":            os.Getenv("PATH"),
		"HOME":            t.TempDir(),
		config.EnvDataDir: s.dataDir,
	}
	return s
}

// withExecutors rewrites the init'ed config.yaml with the executors
// mapping set to yaml (indented by two spaces), as a user would add them.
func (s *doctorSetup) withExecutors(t *testing.T, yaml string) {
	t.Helper()
	s.replace(t, "\nexecutors:\n", "\nexecutors:\n"+yaml)
}

func (s *doctorSetup) replace(t *testing.T, old, new string) {
	t.Helper()
	p := filepath.Join(s.dir, config.ConfigFileName)
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(string(data), old), "config.yaml holds %q once", old)
	require.NoError(t, os.WriteFile(p, []byte(strings.Replace(string(data), old, new, 1)), 0o644))
}

type doctorResult struct {
	code int
	out  string
}

// run runs the doctor command in-process against the setup's config dir.
func (s *doctorSetup) run(t *testing.T, args ...string) doctorResult {
	t.Helper()
	env := doctorEnv{
		lookup: mapEnv(s.env),
		environ: func() []string {
			var out []string
			for k, v := range s.env {
				out = append(out, k+"="+v)
			}
			return out
		},
	}
	cmd := newDoctorWith(env)
	var stdout, stderr bytes.Buffer
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetArgs(append([]string{"--config-dir", s.dir}, args...))
	code := exitCode(t, cmd.ExecuteContext(t.Context()))
	require.Empty(t, stderr.String())
	return doctorResult{code: code, out: stdout.String()}
}

// doctorRow is one row of the doctor's table with the lines under it.
type doctorRow struct {
	status, detail string
	more           []string
}

// row returns the row of check name in out.
func (r doctorResult) row(t *testing.T, name string) doctorRow {
	t.Helper()
	lines := strings.Split(r.out, "\n")
	for i, l := range lines {
		rest, ok := strings.CutPrefix(l, name+"  ")
		if !ok {
			continue
		}
		status, detail, _ := strings.Cut(strings.TrimSpace(rest), "  ")
		row := doctorRow{status: status, detail: strings.TrimSpace(detail)}
		for _, m := range lines[i+1:] {
			if !strings.HasPrefix(m, " ") {
				break
			}
			row.more = append(row.more, strings.TrimSpace(m))
		}
		return row
	}
	t.Fatalf("no row %q in:\n%s", name, r.out)
	return doctorRow{}
}

// fix returns the row's fix line without "fix: ", or "".
func (r doctorRow) fix() string {
	for _, m := range r.more {
		if f, ok := strings.CutPrefix(m, "fix: "); ok {
			return f
		}
	}
	return ""
}

func TestDoctorHealthy(t *testing.T) {
	t.Parallel()

	s := newDoctorSetup(t)
	s.withExecutors(t, "  fake:\n    kind: command\n    argv: [/bin/sh]\n")
	run := s.run(t)
	require.Equal(t, 0, run.code, run.out)

	require.True(t, strings.HasPrefix(run.out, "CHECK "), run.out)
	require.Regexp(t, `^CHECK +STATUS +DETAIL\n`, run.out)
	cfg := run.row(t, "config")
	require.Equal(t, "ok", cfg.status)
	require.Contains(t, cfg.detail, filepath.Join(s.dir, "config.yaml"))
	require.Equal(t, "ok", run.row(t, "git").status)
	require.Contains(t, run.row(t, "git").detail, "git version")
	require.Equal(t, doctorRow{status: "ok", detail: "command /bin/sh (default)"}, run.row(t, "executor fake"))

	// No API key in the environment: a warning with a fix, not a failure.
	runner := run.row(t, "answer runner")
	require.Equal(t, "warn", runner.status)
	require.Contains(t, runner.detail, "$ANTHROPIC_API_KEY is not set")
	require.Contains(t, runner.fix(), "export ANTHROPIC_API_KEY")

	require.Contains(t, []string{"ok", "warn"}, run.row(t, "ask port").status)
	require.Equal(t, doctorRow{status: "ok", detail: "sqlite " + filepath.Join(s.dataDir, "relay.db")}, run.row(t, "storage"))
	require.FileExists(t, filepath.Join(s.dataDir, "relay.db"))
	for _, name := range []string{"data dir", "artifact root", "workspace root"} {
		require.Equal(t, "ok", run.row(t, name).status, name)
	}
	require.DirExists(t, filepath.Join(s.dataDir, "artifacts"))
	require.Equal(t, "1 in "+filepath.Join(s.dir, "schemata"), run.row(t, "schemata").detail)
	require.Equal(t, "7 roles, 7 from "+filepath.Join(s.dir, "prompts"), run.row(t, "roles").detail)
	require.Equal(t, "3 rules, version 1.0 ("+filepath.Join(s.dir, "policy.yaml")+")", run.row(t, "policy").detail)
	require.Contains(t, run.out, ", 0 FAIL\n")

	// Data dirs are left free of doctor's probe files.
	entries, err := os.ReadDir(s.dataDir)
	require.NoError(t, err)
	for _, e := range entries {
		require.False(t, strings.HasPrefix(e.Name(), ".doctor-"), e.Name())
	}
}

func TestDoctorNoExecutor(t *testing.T) {
	t.Parallel()

	s := newDoctorSetup(t)
	s.env["ANTHROPIC_API_KEY"] = "sk-ant-do-not-print-me"
	run := s.run(t, "--storage", "memory", "--profile", "prod")
	require.Equal(t, 0, run.code, run.out)

	ex := run.row(t, "executors")
	require.Equal(t, "warn", ex.status)
	require.Contains(t, ex.fix(), "mcp-task-relay init")
	require.Contains(t, run.row(t, "config").detail, "(profile prod)")
	require.Equal(t, "ok", run.row(t, "storage").status)
	require.Contains(t, run.row(t, "storage").detail, "memory")

	runner := run.row(t, "answer runner")
	require.Equal(t, "ok", runner.status)
	require.Equal(t, "anthropic, model claude-sonnet-4-5, key from $ANTHROPIC_API_KEY", runner.detail)
	require.NotContains(t, run.out, "do-not-print-me")
}

func TestDoctorMissingExecutorProgram(t *testing.T) {
	t.Parallel()

	s := newDoctorSetup(t)
	missing := filepath.Join(t.TempDir(), "agent.sh")
	s.withExecutors(t, "  default: ghost\n"+
		"  ghost:\n    argv: [mcp-task-relay-test-no-such-program, --flag]\n"+
		"  script:\n    argv: ["+missing+"]\n"+
		"  fine:\n    argv: [/bin/sh]\n"+
		"  inrepo:\n    argv: [./scripts/no-such-agent.sh]\n")
	run := s.run(t)
	require.Equal(t, 1, run.code, run.out)

	ghost := run.row(t, "executor ghost")
	require.Equal(t, "FAIL", ghost.status)
	require.Equal(t, "command mcp-task-relay-test-no-such-program not found on PATH", ghost.detail)
	require.Equal(t, "install mcp-task-relay-test-no-such-program or set executors.ghost.argv[0] to the program's absolute path", ghost.fix())

	script := run.row(t, "executor script")
	require.Equal(t, "FAIL", script.status)
	require.Equal(t, "command "+missing+" does not exist", script.detail)
	require.NotEmpty(t, script.fix())

	require.Equal(t, "ok", run.row(t, "executor fine").status)
	// A relative program is looked up in each job's workspace: only a
	// warning when it is not here.
	inrepo := run.row(t, "executor inrepo")
	require.Equal(t, "warn", inrepo.status)
	require.Contains(t, inrepo.detail, "resolved in each job's workspace")
	require.Equal(t, "make sure the repository has it, or set executors.inrepo.argv[0] to an absolute path", inrepo.fix())
	require.Contains(t, run.out, ", 2 FAIL\n")
}

func TestDoctorConfigError(t *testing.T) {
	t.Parallel()

	s := newDoctorSetup(t)
	s.replace(t, "  askTimeoutSec: 600\n", "  askTimeotSec: 600\n")
	run := s.run(t)
	require.Equal(t, 1, run.code, run.out)

	cfg := run.row(t, "config")
	require.Equal(t, "FAIL", cfg.status)
	require.Contains(t, cfg.detail, `unknown key "askAnswer.askTimeotSec"`)
	require.NotEmpty(t, cfg.fix())
	// git needs no configuration; the rest is skipped.
	require.Equal(t, "ok", run.row(t, "git").status)
	require.NotContains(t, run.out, "storage")
	require.Contains(t, run.out, "they run once it loads")
}

func TestDoctorAskPortInUse(t *testing.T) {
	t.Parallel()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	s := newDoctorSetup(t)
	s.withExecutors(t, "  fake:\n    argv: [/bin/sh]\n")
	s.replace(t, "\naskAnswer:\n", "\naskAnswer:\n  port: "+strconv.Itoa(port)+"\n")
	run := s.run(t)
	require.Equal(t, 0, run.code, run.out)
	row := run.row(t, "ask port")
	require.Equal(t, "warn", row.status)
	require.Contains(t, row.detail, "127.0.0.1:"+strconv.Itoa(port)+" is in use: another relay is probably running")
}

func TestDoctorBrokenRoleAndPolicy(t *testing.T) {
	t.Parallel()

	s := newDoctorSetup(t)
	s.withExecutors(t, "  fake:\n    argv: [/bin/sh]\n")
	role := filepath.Join(s.dir, "prompts", "role.finder@v1.yaml")
	require.NoError(t, os.WriteFile(role, []byte("id: finder\nversion: v1\npurpose: find\n"), 0o644))
	policy := filepath.Join(s.dir, "policy.yaml")
	require.NoError(t, os.WriteFile(policy, []byte("rules:\n  - name: r\n    decision: MAYBE\n"), 0o644))
	run := s.run(t)
	require.Equal(t, 1, run.code, run.out)

	roles := run.row(t, "roles")
	require.Equal(t, "FAIL", roles.status)
	require.Contains(t, roles.detail, role)
	require.Contains(t, roles.detail, `"system"`)
	require.NotEmpty(t, roles.fix())
	pol := run.row(t, "policy")
	require.Equal(t, "FAIL", pol.status)
	require.Contains(t, pol.detail, policy)
	require.NotEmpty(t, pol.fix())
}

// writeScript writes an executable shell script.
func writeScript(t *testing.T, path, body string) string {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755))
	return path
}

func TestDoctorAgentExecutor(t *testing.T) {
	t.Parallel()

	bin := t.TempDir()
	// The relay's secrets do not reach the agent's --version either.
	fake := writeScript(t, filepath.Join(bin, "codex"),
		`[ "$1" = --version ] && echo "codex-cli 0.99.0 ${RELAY_API_KEY:-scrubbed}"`+"\n")
	failing := writeScript(t, filepath.Join(bin, "broken"), "echo 'missing runtime' >&2\nexit 3\n")
	slow := writeScript(t, filepath.Join(bin, "slow"), "exec sleep 30\n")
	env := doctorEnv{
		lookup:         mapEnv(map[string]string{"PATH": bin}),
		environ:        func() []string { return []string{"PATH=" + os.Getenv("PATH"), "RELAY_API_KEY=leaked"} },
		versionTimeout: 300 * time.Millisecond,
	}

	tests := []struct {
		name       string
		e          config.Executor
		status     string
		detail     string
		fixContain string
	}{
		{"binary", config.Executor{Kind: config.KindCodex, Binary: fake}, "ok", "codex: codex-cli 0.99.0 scrubbed (" + fake + ") (default)", ""},
		{"found on PATH", config.Executor{Kind: config.KindCodex}, "ok", "codex: codex-cli 0.99.0 scrubbed (" + fake + ") (default)", ""},
		{"missing", config.Executor{Kind: config.KindClaude}, "FAIL", "claude: claude not found on PATH", "install claude or set executors.x.binary"},
		{"missing path", config.Executor{Kind: config.KindGemini, Binary: filepath.Join(bin, "nope")}, "FAIL",
			"gemini: " + filepath.Join(bin, "nope") + " does not exist", "set executors.x.binary"},
		{"fails", config.Executor{Kind: config.KindGemini, Binary: failing}, "FAIL",
			"gemini: " + failing + " --version: exit status 3: missing runtime", "--version works"},
		{"hangs", config.Executor{Kind: config.KindClaude, Binary: slow}, "FAIL",
			"claude: " + slow + " --version did not finish within 300ms", "--version works"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := doctorExecutor(t.Context(), env, "x", tt.e, true)
			require.Equal(t, tt.status, c.status)
			require.Equal(t, tt.detail, c.detail)
			if tt.fixContain == "" {
				require.Empty(t, c.fix)
			} else {
				require.Contains(t, c.fix, tt.fixContain)
			}
		})
	}
}

// The same through the command, once config accepts kind codex.
func TestDoctorCodexExecutorCommand(t *testing.T) {
	t.Parallel()

	s := newDoctorSetup(t)
	fake := writeScript(t, filepath.Join(t.TempDir(), "codex"), `echo "codex-cli 0.99.0"`+"\n")
	s.withExecutors(t, "  codex:\n    kind: codex\n    binary: "+fake+"\n")
	if _, err := loadConfig(t, s.dir); err != nil && strings.Contains(err.Error(), "reserved") {
		t.Skip("config does not accept kind codex yet:", err)
	}
	run := s.run(t)
	require.Equal(t, 0, run.code, run.out)
	require.Equal(t, doctorRow{status: "ok", detail: "codex: codex-cli 0.99.0 (" + fake + ") (default)"}, run.row(t, "executor codex"))
}

// TestDoctorAndInitUnderRoot runs both commands as the root command runs
// them, the way newRoot does once it adds newInit and newDoctor.
func TestDoctorAndInitUnderRoot(t *testing.T) {
	t.Parallel()
	require.Equal(t, "init", newInit().Name())
	for _, flag := range []string{"dir", "force"} {
		require.NotNil(t, newInit().Flags().Lookup(flag), flag)
	}
	require.Equal(t, "doctor", newDoctor().Name())
	for _, flag := range []string{"config-dir", "storage", "sqlite", "profile"} {
		require.NotNil(t, newDoctor().Flags().Lookup(flag), flag)
	}

	s := newDoctorSetup(t)
	s.withExecutors(t, "  ghost:\n    argv: [mcp-task-relay-test-no-such-program]\n")
	run := func(cmd *cobra.Command, args ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		root := newRoot(strings.NewReader(""), &stdout, &stderr)
		// Replace the process-environment command, once root has it.
		for _, c := range root.Commands() {
			if c.Name() == cmd.Name() {
				root.RemoveCommand(c)
			}
		}
		root.AddCommand(cmd)
		root.SetArgs(args)
		code := exitCode(t, root.ExecuteContext(t.Context()))
		require.Empty(t, stderr.String())
		return code, stdout.String()
	}
	code, out := run(newDoctorWith(doctorEnv{lookup: mapEnv(s.env)}), "doctor", "--config-dir", s.dir)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "executor ghost")

	dir := filepath.Join(t.TempDir(), "cfg")
	code, out = run(newInitWith(mapEnv(nil)), "init", "--dir", dir)
	require.Equal(t, 0, code)
	require.Contains(t, out, "created")
	require.FileExists(t, filepath.Join(dir, config.ConfigFileName))
}

// TestDoctorServiceRows: doctor says what the relay service would build for
// the project, which settings of the project only --standalone applies,
// and whether the service runs.
func TestDoctorServiceRows(t *testing.T) {
	t.Parallel()

	s := newDoctorSetup(t)
	s.withExecutors(t, "  fake:\n    kind: command\n    argv: [/bin/sh]\n")
	s.replace(t, "\nexecutors:\n", "\nserver:\n  maxConcurrency: 2\nexecutors:\n")
	run := s.run(t)
	require.Equal(t, 0, run.code, run.out)
	wiring := run.row(t, "project wiring")
	require.Equal(t, "ok", wiring.status)
	require.Contains(t, wiring.detail, "1 executor(s)")
	moved := run.row(t, "service keys in project")
	require.Equal(t, "warn", moved.status)
	require.Contains(t, moved.detail, "server.maxConcurrency")
	require.Contains(t, moved.fix(), filepath.Join(s.dataDir, config.ServiceFileName))
	svc := run.row(t, "relay service")
	require.Equal(t, "warn", svc.status)
	require.Contains(t, svc.detail, "not running")

	// A broken service.yaml fails the check that reads it.
	require.NoError(t, os.MkdirAll(s.dataDir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(s.dataDir, config.ServiceFileName), []byte("executors:\n  x: {argv: [true]}\n"), 0o600))
	run = s.run(t)
	require.Equal(t, 1, run.code, run.out)
	bad := run.row(t, "service settings")
	require.Equal(t, "FAIL", bad.status)
	require.Contains(t, bad.detail, "executors")
}
