package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcp-task-relay/mcp-task-relay/internal/app"
	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
	"github.com/mcp-task-relay/mcp-task-relay/internal/policy"
	"github.com/mcp-task-relay/mcp-task-relay/internal/role"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/postgres"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/sqlite"
)

// doctorVersionTimeout bounds each "BINARY --version" doctor runs.
const doctorVersionTimeout = 10 * time.Second

// Statuses of a doctor check.
const (
	doctorOK   = "ok"
	doctorWarn = "warn"
	doctorFail = "FAIL"
)

// doctorEnv is what the doctor command reads from its process. Tests inject
// their own instead of changing the process environment.
type doctorEnv struct {
	// lookup reads a variable: TASK_RELAY_*, HOME, PATH, API key names.
	lookup func(string) (string, bool)
	// environ is the environment "BINARY --version" starts from (secrets
	// scrubbed as for a job).
	environ func() []string
	// versionTimeout bounds "BINARY --version". Defaults to
	// doctorVersionTimeout.
	versionTimeout time.Duration
}

// doctorCheck is one row of the doctor's table.
type doctorCheck struct {
	name   string
	status string
	detail string
	// fix says what to do about a FAIL or warn; empty when there is
	// nothing to do.
	fix string
}

func newDoctor() *cobra.Command {
	return newDoctorWith(doctorEnv{lookup: os.LookupEnv, environ: os.Environ})
}

func newDoctorWith(env doctorEnv) *cobra.Command {
	var o config.Overrides
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the configuration and the environment the relay runs in",
		Long: `doctor loads the configuration exactly as serve does (same flags and
TASK_RELAY_* variables) and checks what serve and its jobs need: git, each
executor's program, the Answer Runner's API key, the Ask/Answer port, that the
store and data directories are writable, and that role files, schemata and
the policy parse. It prints one row per check (ok, warn or FAIL) with a fix
under each problem, and exits 1 if any check FAILs.

doctor creates the data directories and the SQLite database (migrated) if
they do not exist, as serve would; it changes nothing else.`,
		Example: `  mcp-task-relay doctor
  mcp-task-relay doctor --config-dir ~/.config/mcp-task-relay`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			flags := cmd.Flags()
			for name, dst := range map[string]**string{
				"profile": &o.Profile, "config-dir": &o.ConfigDir, "storage": &o.Storage, "sqlite": &o.SQLitePath,
			} {
				if !flags.Changed(name) {
					*dst = nil
				}
			}
			checks, skipped := doctorRun(cmd.Context(), env, o)
			if err := doctorPrint(cmd.OutOrStdout(), checks, skipped); err != nil {
				return err
			}
			for _, c := range checks {
				if c.status == doctorFail {
					// The table said it all; Main prints nothing more.
					return &exitError{code: 1}
				}
			}
			return nil
		},
	}
	o.Profile = cmd.Flags().String("profile", "", "deployment profile: dev, staging or prod (env TASK_RELAY_PROFILE)")
	o.ConfigDir = cmd.Flags().String("config-dir", "", "directory with config.yaml (env TASK_RELAY_CONFIG_DIR; default ./.mcp-task-relay)")
	o.Storage = cmd.Flags().String("storage", "", "job store: memory or sqlite (env TASK_RELAY_STORAGE; default sqlite)")
	o.SQLitePath = cmd.Flags().String("sqlite", "", "SQLite database file (env TASK_RELAY_SQLITE_URL)")
	return cmd
}

// doctorRun runs every check. skipped reports that the configuration did
// not load, so that the checks that need it were not run.
func doctorRun(ctx context.Context, env doctorEnv, o config.Overrides) (checks []doctorCheck, skipped bool) {
	cfg, err := config.Load(o, env.lookup)
	if err != nil {
		checks = append(checks, doctorCheck{
			name: "config", status: doctorFail, detail: err.Error(),
			fix: "correct the settings named above (config.yaml, TASK_RELAY_* variables or flags)",
		})
	} else {
		checks = append(checks, doctorConfigFile(cfg))
	}
	checks = append(checks, doctorGit(ctx, env))
	if cfg == nil {
		return checks, true
	}
	return append(checks, doctorChecks(ctx, env, cfg)...), false
}

// doctorChecks runs the checks that need a loaded configuration.
func doctorChecks(ctx context.Context, env doctorEnv, cfg *config.Config) []doctorCheck {
	checks := doctorExecutors(ctx, env, cfg)
	checks = append(checks, doctorRunner(env, cfg), doctorAskPort(cfg))
	checks = append(checks, doctorStorage(ctx, cfg)...)
	checks = append(checks, doctorRoles(cfg)...)
	checks = append(checks, doctorPolicy(cfg))
	// What the relay service would build and refuse for this project.
	for _, f := range app.Check(ctx, cfg, env.lookup) {
		c := doctorCheck{name: f.Name, status: doctorOK, detail: f.Detail}
		switch {
		case f.Err != nil:
			c.status, c.detail, c.fix = doctorFail, f.Err.Error(), f.Fix
		case f.Warn:
			c.status, c.fix = doctorWarn, f.Fix
		}
		checks = append(checks, c)
	}
	return checks
}

func doctorConfigFile(cfg *config.Config) doctorCheck {
	file := filepath.Join(cfg.ConfigDir, config.ConfigFileName)
	detail := fmt.Sprintf("%s (profile %s)", file, cfg.Profile)
	if _, err := os.Stat(file); err != nil {
		detail = fmt.Sprintf("no %s: built-in defaults (profile %s)", file, cfg.Profile)
	}
	return doctorCheck{name: "config", status: doctorOK, detail: detail}
}

func doctorGit(ctx context.Context, env doctorEnv) doctorCheck {
	c := doctorCheck{name: "git"}
	path, err := doctorLookPath("git", env.pathVar(nil))
	if err != nil {
		c.status, c.detail = doctorFail, err.Error()
		c.fix = "install git and put it on PATH: every job runs in a git worktree"
		return c
	}
	v, err := env.version(ctx, path, nil)
	if err != nil {
		c.status, c.detail = doctorFail, err.Error()
		c.fix = "check that " + path + " --version works"
		return c
	}
	c.status, c.detail = doctorOK, v
	return c
}

func doctorExecutors(ctx context.Context, env doctorEnv, cfg *config.Config) []doctorCheck {
	names := cfg.Executors.Names()
	file := filepath.Join(cfg.ConfigDir, config.ConfigFileName)
	if len(names) == 0 {
		return []doctorCheck{{
			name: "executors", status: doctorWarn, detail: "none configured: jobs cannot run",
			fix: "add one under executors: in " + file + ` ("mcp-task-relay init" writes commented examples)`,
		}}
	}
	var checks []doctorCheck
	for _, name := range names {
		checks = append(checks, doctorExecutor(ctx, env, name, cfg.Executors.ByName[name], name == cfg.Executors.Default))
	}
	if cfg.Executors.Default == "" {
		checks = append(checks, doctorCheck{
			name: "default executor", status: doctorWarn,
			detail: "executors.default is not set: every job must name its executor",
			fix:    "set executors.default in " + file + " to one of " + strings.Join(names, ", "),
		})
	}
	return checks
}

// doctorExecutor checks that an executor's program can be started: the
// argv[0] of a command executor, the binary of a coding-agent executor,
// which must also answer --version.
func doctorExecutor(ctx context.Context, env doctorEnv, name string, e config.Executor, isDefault bool) doctorCheck {
	c := doctorCheck{name: "executor " + name}
	suffix := ""
	if isDefault {
		suffix = " (default)"
	}
	if e.Kind == "" {
		e.Kind = config.KindCommand
	}
	var prog, field, label string
	switch e.Kind {
	case config.KindCommand:
		if len(e.Argv) > 0 {
			prog = e.Argv[0]
		}
		field, label = "executors."+name+".argv[0]", "command "
	case config.KindCodex, config.KindClaude, config.KindGemini:
		prog = e.Binary
		if prog == "" {
			prog = e.Kind
		}
		field, label = "executors."+name+".binary", e.Kind+": "
	default:
		c.status, c.detail = doctorFail, fmt.Sprintf("unknown kind %q", e.Kind)
		c.fix = "set executors." + name + ".kind to command, codex, claude or gemini"
		return c
	}
	if prog == "" {
		c.status, c.detail, c.fix = doctorFail, label+"no program", "set "+field
		return c
	}
	// A relative path is resolved in each job's workspace, the repository
	// at the job's commit, which is not here: the current directory is the
	// best guess.
	relative := strings.Contains(prog, "/") && !filepath.IsAbs(prog)
	resolved, err := doctorLookPath(prog, env.pathVar(e.Env))
	switch {
	case err != nil && relative:
		c.status = doctorWarn
		c.detail = label + prog + ": resolved in each job's workspace; not found in the current directory" + suffix
		c.fix = "make sure the repository has it, or set " + field + " to an absolute path"
		return c
	case err != nil && e.Kind == config.KindCommand:
		c.status, c.detail = doctorFail, label+err.Error()
		c.fix = "install " + prog + " or set " + field + " to the program's absolute path"
		return c
	case err != nil:
		c.status, c.detail = doctorFail, label+err.Error()
		c.fix = "install " + prog + " or set " + field
		return c
	}
	if relative {
		suffix = " (resolved in each job's workspace; found in the current directory)" + suffix
	}
	if e.Kind == config.KindCommand {
		c.status, c.detail = doctorOK, label+resolved+suffix
		return c
	}
	v, err := env.version(ctx, resolved, &e)
	if err != nil {
		c.status, c.detail = doctorFail, label+err.Error()
		c.fix = "check that " + resolved + " --version works, or set " + field
		return c
	}
	c.status, c.detail = doctorOK, fmt.Sprintf("%s%s (%s)%s", label, v, resolved, suffix)
	return c
}

// doctorRunner checks that the Answer Runner's provider has its API key.
// A missing key is a warning: asks then go to the orchestrator. Key values
// are never printed.
func doctorRunner(env doctorEnv, cfg *config.Config) doctorCheck {
	r := cfg.AskAnswer.Runner
	c := doctorCheck{name: "answer runner", status: doctorOK}
	if !r.IsEnabled() {
		c.detail = "disabled: asks go to the orchestrator or a human (askAnswer.routing)"
		return c
	}
	switch r.Provider {
	case config.ProviderNone:
		c.detail = "provider none: asks go to the orchestrator or a human (askAnswer.routing)"
		return c
	case config.ProviderSampling:
		c.detail = "provider sampling: answered by the MCP client's model, where the client supports sampling"
		return c
	case config.ProviderAnthropic, config.ProviderOpenAI:
	default:
		c.status, c.detail = doctorFail, fmt.Sprintf("unknown provider %q", r.Provider)
		c.fix = "set askAnswer.runner.provider to anthropic, openai, sampling or none"
		return c
	}
	where := ""
	if r.BaseURL != "" {
		where = " at " + r.BaseURL
	}
	if v, _ := env.lookup(r.APIKeyEnv); r.APIKeyEnv != "" && v != "" {
		c.detail = fmt.Sprintf("%s%s, model %s, key from $%s", r.Provider, where, r.Model, r.APIKeyEnv)
		return c
	}
	if r.Provider == config.ProviderOpenAI && r.BaseURL != "" {
		// A local OpenAI-compatible server (Ollama, vLLM) needs no key.
		c.detail = fmt.Sprintf("%s%s, model %s, no key ($%s is not set)", r.Provider, where, r.Model, r.APIKeyEnv)
		return c
	}
	c.status = doctorWarn
	c.detail = fmt.Sprintf("%s: $%s is not set; asks routed to the runner go to the orchestrator", r.Provider, r.APIKeyEnv)
	c.fix = "export " + r.APIKeyEnv + ", or set askAnswer.runner.provider (sampling, none) or askAnswer.runner.enabled: false"
	return c
}

// doctorAskPort tries to listen on the Ask/Answer address. A port in use
// is only a warning: serve then takes a free one.
func doctorAskPort(cfg *config.Config) doctorCheck {
	addr := net.JoinHostPort(cfg.AskAnswer.Host, strconv.Itoa(cfg.AskAnswer.Port))
	c := doctorCheck{name: "ask port"}
	ln, err := net.Listen("tcp", addr)
	switch {
	case err == nil:
		_ = ln.Close()
		c.status, c.detail = doctorOK, addr+" is free"
	case errors.Is(err, syscall.EADDRINUSE):
		c.status = doctorWarn
		c.detail = addr + " is in use: another relay is probably running; serve will use a free port"
	default:
		c.status, c.detail = doctorFail, fmt.Sprintf("cannot listen on %s: %v", addr, err)
		c.fix = "set askAnswer.host to an address of this machine (default " + config.DefaultAskAnswerHost + ") and askAnswer.port to a free port"
	}
	return c
}

// relayStaleAfter is how long a relay may go unseen in the registry
// before doctor calls it gone (it refreshes its record every 30 s).
const relayStaleAfter = 2 * time.Minute

// doctorRelays describes the relays recorded in a shared database: each
// one's id, version and what it runs, and which have not been seen lately
// (stopped, or cut off from the database).
func doctorRelays(relays []*store.RelayRecord, now time.Time) *doctorCheck {
	c := &doctorCheck{name: "relays", status: doctorOK}
	if len(relays) == 0 {
		c.detail = "none has run on this database yet"
		return c
	}
	var live, gone []string
	for _, r := range relays {
		desc := fmt.Sprintf("%s (%s, %d projects, executors %s)", r.ID, r.Version, len(r.Projects), strings.Join(r.Executors, ","))
		if age := now.Sub(r.SeenAt); age > relayStaleAfter {
			gone = append(gone, fmt.Sprintf("%s, last seen %s ago", r.ID, age.Round(time.Second)))
		} else {
			live = append(live, desc)
		}
	}
	c.detail = fmt.Sprintf("%d running: %s", len(live), strings.Join(live, "; "))
	if len(gone) > 0 {
		c.status = doctorWarn
		c.detail += fmt.Sprintf("; %d not seen lately: %s", len(gone), strings.Join(gone, "; "))
		c.fix = "a relay not seen for minutes has stopped or lost the database; its jobs are retried by the others once their leases lapse"
	}
	return c
}

// doctorStorage opens the store as serve would (creating and migrating a
// SQLite database) and checks that the data directories can be written.
func doctorStorage(ctx context.Context, cfg *config.Config) []doctorCheck {
	st := doctorCheck{name: "storage"}
	var relayRow *doctorCheck
	switch cfg.Storage.Mode {
	case config.StorageMemory:
		st.status, st.detail = doctorOK, "memory: jobs are lost when the relay stops"
	case config.StorageSQLite:
		s, err := sqlite.Open(ctx, sqlite.Config{Path: cfg.Storage.SQLitePath})
		if err == nil {
			err = s.Close()
		}
		if err != nil {
			st.status, st.detail = doctorFail, err.Error()
			st.fix = "make " + filepath.Dir(cfg.Storage.SQLitePath) + " writable, or set storage.sqlitePath (--sqlite, TASK_RELAY_SQLITE_URL)"
		} else {
			st.status, st.detail = doctorOK, "sqlite "+cfg.Storage.SQLitePath
		}
	case config.StoragePostgres:
		// The URL may hold a password: only the outcome is shown.
		s, err := postgres.Open(ctx, postgres.Config{URL: cfg.Storage.PostgresURL})
		var relays []*store.RelayRecord
		if err == nil {
			relays, err = s.RelayList(ctx)
			err = errors.Join(err, s.Close())
		}
		if err != nil {
			st.status, st.detail = doctorFail, err.Error()
			st.fix = "check storage.postgresUrl (TASK_RELAY_POSTGRES_URL): the server must be reachable and the user allowed to create tables"
		} else {
			st.status, st.detail = doctorOK, "postgres: connected and migrated"
			relayRow = doctorRelays(relays, time.Now())
		}
	default:
		st.status, st.detail = doctorFail, fmt.Sprintf("storage.mode %s is not available in this build", cfg.Storage.Mode)
		st.fix = "set storage.mode to sqlite, postgres or memory (--storage, TASK_RELAY_STORAGE)"
	}
	checks := []doctorCheck{st}
	if relayRow != nil {
		checks = append(checks, *relayRow)
	}
	for _, d := range []struct{ name, dir, setting string }{
		{"data dir", cfg.DataDir, "server.dataDir (TASK_RELAY_DATA_DIR)"},
		{"artifact root", cfg.Server.ArtifactRoot, "server.artifactRoot"},
		{"workspace root", cfg.Server.WorkspaceRoot, "server.workspaceRoot"},
	} {
		c := doctorCheck{name: d.name, status: doctorOK, detail: d.dir + " is writable"}
		if err := doctorWritable(d.dir); err != nil {
			c.status, c.detail = doctorFail, err.Error()
			c.fix = "give this user write access to " + d.dir + ", or set " + d.setting
		}
		checks = append(checks, c)
	}
	return checks
}

// doctorWritable creates dir as serve would and writes a file in it.
func doctorWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".doctor-*")
	if err != nil {
		return err
	}
	name := f.Name()
	err = errors.Join(f.Close(), os.Remove(name))
	if err != nil {
		return fmt.Errorf("write in %s: %w", dir, err)
	}
	return nil
}

// doctorRoles loads the schemata and the role catalog and compiles every
// role's output schema, as serve does when the Answer Runner is on. While
// it is off serve loads none of them, so problems are only warnings.
func doctorRoles(cfg *config.Config) []doctorCheck {
	bad := doctorFail
	if !cfg.AskAnswer.Runner.IsEnabled() {
		bad = doctorWarn
	}
	sc := doctorCheck{name: "schemata"}
	schemata, err := role.LoadSchemata(cfg.SchemataDir)
	if err != nil {
		sc.status, sc.detail = bad, err.Error()
		sc.fix = "correct or remove the file named above"
	} else if n := len(schemata.Names()); n == 0 {
		sc.status, sc.detail = doctorOK, "none in "+cfg.SchemataDir
	} else {
		sc.status, sc.detail = doctorOK, fmt.Sprintf("%d in %s", n, cfg.SchemataDir)
	}

	rc := doctorCheck{name: "roles"}
	catalog, err := role.LoadCatalog(cfg.PromptsDir)
	if err == nil && schemata != nil {
		err = catalog.CheckSchemas(schemata)
	}
	if err != nil {
		rc.status, rc.detail = bad, err.Error()
		rc.fix = "correct the role file named above, or remove it to use the built-in role"
		return []doctorCheck{sc, rc}
	}
	roles := catalog.Roles()
	overrides := 0
	for _, r := range roles {
		if r.Source != role.SourceBuiltin {
			overrides++
		}
	}
	rc.status, rc.detail = doctorOK, fmt.Sprintf("%d roles, %d from %s", len(roles), overrides, cfg.PromptsDir)
	return []doctorCheck{sc, rc}
}

func doctorPolicy(cfg *config.Config) doctorCheck {
	c := doctorCheck{name: "policy"}
	p, err := policy.LoadPolicy(cfg.PolicyFile)
	switch {
	case err != nil:
		c.status, c.detail = doctorFail, err.Error()
		c.fix = "correct the rule named above in " + cfg.PolicyFile
	case p.Source == "":
		c.status, c.detail = doctorOK, "no "+cfg.PolicyFile+": no rules"
	default:
		c.status, c.detail = doctorOK, fmt.Sprintf("%d rules, version %s (%s)", len(p.Rules), p.Version, p.Source)
	}
	return c
}

// pathVar returns the PATH programs are looked up in: the executor's own
// env PATH when it sets one, else the relay's.
func (env doctorEnv) pathVar(executorEnv map[string]string) string {
	if p, ok := executorEnv["PATH"]; ok {
		return p
	}
	p, _ := env.lookup("PATH")
	return p
}

// version runs "path --version" and returns the first line it prints. e,
// when not nil, is the executor the program belongs to: the run gets the
// executor's environment, without the relay's secrets.
func (env doctorEnv) version(ctx context.Context, path string, e *config.Executor) (string, error) {
	timeout := env.versionTimeout
	if timeout <= 0 {
		timeout = doctorVersionTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "--version")
	var base []string
	if env.environ != nil {
		base = env.environ()
	}
	var pass []string
	if e != nil {
		pass = e.PassEnv
	}
	cmd.Env = executor.ScrubEnv(base, pass)
	if e != nil {
		for k, v := range e.Env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A child that keeps the output pipes open must not hang the doctor.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "", fmt.Errorf("%s --version did not finish within %s", path, timeout)
	}
	if err != nil {
		msg := doctorFirstLine(stderr.String())
		if msg == "" {
			msg = doctorFirstLine(stdout.String())
		}
		if msg != "" {
			return "", fmt.Errorf("%s --version: %v: %s", path, err, msg)
		}
		return "", fmt.Errorf("%s --version: %v", path, err)
	}
	v := doctorFirstLine(stdout.String())
	if v == "" {
		v = doctorFirstLine(stderr.String())
	}
	if v == "" {
		v = "version unknown (--version printed nothing)"
	}
	return v, nil
}

// doctorFirstLine returns the first non-blank line of s, trimmed and cut to a
// length that fits a table row.
func doctorFirstLine(s string) string {
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); line != "" {
			if r := []rune(line); len(r) > 100 {
				line = string(r[:100]) + "…"
			}
			return line
		}
	}
	return ""
}

// doctorLookPath finds prog as the relay would start it: a path with a
// slash as given, a bare name in the directories of pathList.
func doctorLookPath(prog, pathList string) (string, error) {
	if strings.Contains(prog, "/") {
		if !doctorExecutable(prog) {
			if _, err := os.Stat(prog); err != nil {
				return "", fmt.Errorf("%s does not exist", prog)
			}
			return "", fmt.Errorf("%s is not an executable file", prog)
		}
		return prog, nil
	}
	for _, dir := range filepath.SplitList(pathList) {
		if !filepath.IsAbs(dir) {
			continue
		}
		if p := filepath.Join(dir, prog); doctorExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH", prog)
}

func doctorExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// doctorPrint writes the checks as a table: CHECK, STATUS, DETAIL, with
// further lines of a detail and a "fix:" line under it, aligned with the
// DETAIL column.
func doctorPrint(w io.Writer, checks []doctorCheck, skipped bool) error {
	nameWidth := len("CHECK")
	for _, c := range checks {
		nameWidth = max(nameWidth, len(c.name))
	}
	statusWidth := len("STATUS")
	indent := strings.Repeat(" ", nameWidth+2+statusWidth+2)
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s  %-*s  %s\n", nameWidth, "CHECK", statusWidth, "STATUS", "DETAIL")
	counts := map[string]int{}
	for _, c := range checks {
		counts[c.status]++
		lines := strings.Split(strings.TrimRight(c.detail, "\n"), "\n")
		fmt.Fprintf(&b, "%-*s  %-*s  %s\n", nameWidth, c.name, statusWidth, c.status, lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(&b, "%s%s\n", indent, l)
		}
		if c.fix != "" {
			fmt.Fprintf(&b, "%sfix: %s\n", indent, c.fix)
		}
	}
	if skipped {
		b.WriteString("\nThe other checks need the configuration; they run once it loads.\n")
	}
	fmt.Fprintf(&b, "\n%d ok, %d warn, %d FAIL\n", counts[doctorOK], counts[doctorWarn], counts[doctorFail])
	_, err := io.WriteString(w, b.String())
	return err
}
