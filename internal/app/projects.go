package app

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
	"github.com/mcp-task-relay/mcp-task-relay/internal/executor/claude"
	"github.com/mcp-task-relay/mcp-task-relay/internal/executor/codex"
	"github.com/mcp-task-relay/mcp-task-relay/internal/executor/gemini"
	"github.com/mcp-task-relay/mcp-task-relay/internal/mcpserver"
	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// ErrNoProject is returned for a job or session that names no project.
var ErrNoProject = errors.New("no project")

// projects is the service's set of projects, by config dir. It is the
// relay's Handler: each job is admitted and run by its own project's
// pipeline, with that project's executors and settings.
type projects struct {
	s *Service

	mu    sync.Mutex
	byDir map[string]*Project
	// only is the project of a standalone service, "" for a shared one,
	// and onlyOverrides the flags its config was loaded with.
	only          string
	onlyOverrides config.Overrides
}

var (
	_ relay.Handler         = (*projects)(nil)
	_ relay.ProjectAdmitter = (*projects)(nil)
)

func newProjects(s *Service) *projects {
	return &projects{s: s, byDir: map[string]*Project{}}
}

// defaultDir returns the project of a standalone service, else "".
func (ps *projects) defaultDir() string {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.only
}

// Project is one project as the service knows it: its config dir, its MCP
// server (whatever state its config is in) and the executors, pipeline and
// ask rules of its last config that loaded without error.
type Project struct {
	// Dir is the project's config dir, absolute; it identifies the
	// project.
	Dir string

	s         *Service
	mcp       *mcpserver.Server
	stopWatch context.CancelFunc
	// standalone is set for the one project of a standalone service. It
	// is fixed when the project is registered, so that a load, which
	// holds mu, needs no look at the project list (whose lock is taken
	// before a project's elsewhere).
	standalone bool

	mu        sync.Mutex
	overrides config.Overrides
	env       map[string]string // forwarded by the project's front
	cur       *projectState     // last good config
	stamp     string            // of the files cur was loaded from
	loadErr   error             // of the last load, nil when cur is current
}

// projectState is what one load of a project's config built.
type projectState struct {
	cfg      *config.Config
	pipeline *relay.Pipeline
	rules    *ask.RuleSet
	// policyVersion is the version of the project's policy.
	policyVersion string
	// serviceKeys lists service settings the project's config.yaml sets,
	// which the shared service does not take from a project.
	serviceKeys []string
}

// open returns the project of dir, registering it on first use, and
// reloads its config when its files changed. env, when not nil, replaces
// the variables forwarded by the project's front (and reloads). A config
// that does not load is recorded (see Project.Err) without replacing the
// last good one, so a broken edit is never half-applied.
func (ps *projects) open(ctx context.Context, dir string, env map[string]string) (*Project, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: the job or session names no project (config dir)", ErrNoProject)
	}
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("project %q: must be an absolute config dir", dir)
	}
	ps.mu.Lock()
	p := ps.byDir[dir]
	if p == nil {
		srv, err := mcpserver.New(mcpserver.Config{Jobs: ps.s.relay.ForProject(dir), Asks: ps.s.asks, Logger: ps.s.log,
			Name: "mcp-task-relay", Version: ps.s.version})
		if err != nil {
			ps.mu.Unlock()
			return nil, err
		}
		p = &Project{Dir: dir, s: ps.s, mcp: srv}
		if dir == ps.only {
			p.overrides, p.standalone = ps.onlyOverrides, true
		}
		p.overrides.ConfigDir = &p.Dir
		// Streamable HTTP sessions are connected by the HTTP handler, not
		// by Run: keep the change pump going for them.
		wctx, cancel := context.WithCancel(ps.s.life)
		p.stopWatch = cancel
		go srv.Watch(wctx)
		ps.byDir[dir] = p
	}
	ps.mu.Unlock()
	p.refresh(ctx, env)
	return p, nil
}

// get returns the project of dir with a usable config.
func (ps *projects) get(ctx context.Context, dir string) (*Project, *projectState, error) {
	p, err := ps.open(ctx, dir, nil)
	if err != nil {
		return nil, nil, err
	}
	st, err := p.state()
	return p, st, err
}

// close stops the projects' change pumps.
func (ps *projects) close() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, p := range ps.byDir {
		p.stopWatch()
	}
}

// Admit implements relay.Handler for submits without a project.
func (ps *projects) Admit(ctx context.Context, spec *relaytype.JobSpec) (string, string, error) {
	return ps.AdmitIn(ctx, ps.defaultDir(), spec)
}

// AdmitIn implements relay.ProjectAdmitter: the project's pipeline checks
// the executor and pins the baseline. A project whose config does not
// load refuses submits with the config error.
func (ps *projects) AdmitIn(ctx context.Context, project string, spec *relaytype.JobSpec) (string, string, error) {
	p, err := ps.open(ctx, project, nil)
	if err != nil {
		return "", "", err
	}
	p.mu.Lock()
	st, loadErr := p.cur, p.loadErr
	p.mu.Unlock()
	if loadErr != nil {
		return "", "", fmt.Errorf("the config of project %s does not load, fix it and submit again: %w", project, loadErr)
	}
	if st == nil {
		return "", "", fmt.Errorf("project %s has no config", project)
	}
	if err := p.checkNotify(spec); err != nil {
		return "", "", err
	}
	return st.pipeline.Admit(ctx, spec)
}

// Handle implements relay.Handler: the job runs with its own project's
// pipeline (the last config of the project that loaded).
func (ps *projects) Handle(ctx context.Context, job *relaytype.Job) relay.Outcome {
	_, st, err := ps.get(ctx, job.Project)
	if err != nil {
		return relay.Outcome{State: relaytype.StateFailed, Reason: relaytype.ReasonExecutorError,
			Summary: fmt.Sprintf("project %s: %v", job.Project, err)}
	}
	return st.pipeline.Handle(ctx, job)
}

// state returns the project's last good config, or the load error when
// there never was one.
func (p *Project) state() (*projectState, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil {
		if p.loadErr != nil {
			return nil, p.loadErr
		}
		return nil, fmt.Errorf("project %s has no config", p.Dir)
	}
	return p.cur, nil
}

// rules returns the ask rules of the project's last good config, or
// everything to the orchestrator when there is none.
func (p *Project) rules() *ask.RuleSet {
	if st, err := p.state(); err == nil {
		return st.rules
	}
	rs, _ := ask.NewRuleSet(ask.Rules{})
	return rs
}

// Err returns why the project's config last failed to load, or nil.
func (p *Project) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.loadErr
}

// Config returns the project's last good config, or nil.
func (p *Project) Config() *config.Config {
	st, err := p.state()
	if err != nil {
		return nil
	}
	return st.cfg
}

// MCP returns the project's MCP server.
func (p *Project) MCP() *mcpserver.Server { return p.mcp }

// refresh reloads the project's config when its files (or the forwarded
// environment) changed since the last load.
func (p *Project) refresh(ctx context.Context, env map[string]string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	changed := false
	if env != nil && !maps.Equal(env, p.env) {
		p.env, changed = env, true
	}
	stamp := p.filesStamp()
	if !changed && p.stamp == stamp && (p.cur != nil || p.loadErr != nil) {
		return
	}
	st, err := p.load(ctx)
	p.stamp = stamp
	if err != nil {
		p.loadErr = err
		p.s.log.Error("project config does not load; keeping its last good config", "project", p.Dir, "err", err)
		return
	}
	p.cur, p.loadErr = st, nil
	p.s.log.Info("project loaded", "project", p.Dir, "executors", st.cfg.Executors.Names())
	if len(st.serviceKeys) > 0 {
		p.s.log.Warn("project config sets service settings, which the shared service takes only from "+
			filepath.Join(p.s.cfg.DataDir, config.ServiceFileName), "project", p.Dir, "keys", st.serviceKeys)
	}
}

// filesStamp identifies the state of the files a project's config is
// read from, so that a change is noticed without reading them.
func (p *Project) filesStamp() string {
	var b strings.Builder
	for _, name := range []string{config.ConfigFileName, config.PolicyFileName, config.PromptsDirName, config.SchemataDirName} {
		fi, err := os.Stat(filepath.Join(p.Dir, name))
		if err != nil {
			b.WriteString("-;")
			continue
		}
		fmt.Fprintf(&b, "%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return b.String()
}

// getenv looks variables up in the project's forwarded environment, then
// in the service's.
func (p *Project) getenv(k string) (string, bool) {
	if v, ok := p.env[k]; ok {
		return v, true
	}
	for _, kv := range slices.Backward(p.s.environ) {
		if name, v, ok := strings.Cut(kv, "="); ok && name == k {
			return v, true
		}
	}
	return "", false
}

// environ returns the environment the project's processes start from:
// the service's, with the forwarded variables on top.
func (p *Project) environ() []string {
	out := make([]string, 0, len(p.s.environ)+len(p.env))
	for _, kv := range p.s.environ {
		name, _, _ := strings.Cut(kv, "=")
		if _, ok := p.env[name]; !ok {
			out = append(out, kv)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(p.env)) {
		out = append(out, k+"="+p.env[k])
	}
	return out
}

// load reads the project's config and builds its executors, answerers and
// pipeline. The caller holds p.mu, so load must not take the project
// list's lock (ps.mu): the claim filter holds that one while it takes
// each project's.
func (p *Project) load(_ context.Context) (*projectState, error) {
	s := p.s
	cfg, err := config.Load(p.overrides, p.getenv)
	if err != nil {
		return nil, err
	}
	st := &projectState{cfg: cfg}
	if !p.standalone {
		for _, k := range cfg.FileKeys() {
			if config.IsServiceKey(k) {
				st.serviceKeys = append(st.serviceKeys, k)
			}
		}
	}
	log := s.log.With("project", p.Dir)
	base := p.environ()
	runners, err := buildExecutors(cfg, base, s.self)
	if err != nil {
		return nil, err
	}
	if len(runners) == 0 {
		log.Warn("no executor configured: jobs_submit will fail until one is added",
			"config_file", filepath.Join(cfg.ConfigDir, config.ConfigFileName))
	}
	ans, err := buildAnswerers(cfg, p.getenv, s.store, clientMCP{p.mcp}, log)
	if err != nil {
		return nil, err
	}
	st.policyVersion = ans.policyVersion
	if ans.runner != nil && s.metrics != nil {
		s.metrics.AddRunner(cfg.AskAnswer.Runner.Provider, ans.runner.Metrics())
	}
	rules := routing(cfg)
	if rules.Default == "" && ans.runner != nil {
		rules.Default = ask.RouteRunner
	}
	if st.rules, err = ask.NewRuleSet(ask.Rules{Routing: rules, Answerers: ans.byRoute, Decider: ans.decider,
		Timeout: cfg.AskAnswer.AskTimeout(), RunnerTimeout: cfg.AskAnswer.Runner.Timeout()}); err != nil {
		return nil, err
	}
	path, _ := p.getenv("PATH")
	env := map[string]string{
		"TASK_RELAY_PROFILE":        cfg.Profile,
		"TASK_RELAY_POLICY_VERSION": ans.policyVersion,
		"ASK_ANSWER_ORIGIN":         s.origin,
		// Executors can run `mcp-task-relay ask` by name.
		"PATH": filepath.Dir(s.self) + string(os.PathListSeparator) + path,
	}
	if s.answerKey != nil {
		// The key every runner answer must verify against (sdk, `ask`).
		env["TASK_RELAY_ANSWER_PUBKEY"] = base64.StdEncoding.EncodeToString(s.answerKey)
	}
	st.pipeline, err = relay.NewPipeline(relay.PipelineConfig{
		Workspaces:      s.wm,
		Artifacts:       relay.ArtifactDir{Root: s.cfg.Server.ArtifactRoot},
		Executors:       runners,
		DefaultExecutor: cfg.Executors.Default,
		ConfigFile:      filepath.Join(cfg.ConfigDir, config.ConfigFileName),
		Env:             env,
		JobToken:        s.tokens.MintAttempt,
		Bootstrap:       bootstraps(cfg),
		SetupBaseEnv:    executor.ScrubEnv(base, nil),
		Shim:            s.self,
		Parents:         s.relay,
		RelayMCPURL:     s.origin + "/mcp",
		LogSink:         s.relay.AppendLog,
		MaxOutputBytes:  s.cfg.Server.MaxOutputBytes,
		AdmitTimeout:    s.cfg.Server.AdmitTimeout(),
		AskTimeout:      cfg.AskAnswer.AskTimeout(),
		PR:              prConfig(cfg, base),
		Logger:          log,
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// profileOf returns the profile and policy version of a job's project,
// for the envelopes the executor MCP endpoint builds.
func (s *Service) profileOf(ctx context.Context, job *relaytype.Job) (string, string) {
	_, st, err := s.projects.get(ctx, job.Project)
	if err != nil {
		return s.cfg.Profile, ""
	}
	return st.cfg.Profile, st.policyVersion
}

// adapterFor returns the coding-agent adapter of an executors.NAME.kind.
func adapterFor(kind string) (executor.Adapter, bool) {
	switch kind {
	case config.KindCodex:
		return codex.Adapter{}, true
	case config.KindClaude:
		return claude.Adapter{}, true
	case config.KindGemini:
		return gemini.Adapter{}, true
	}
	return nil, false
}

// buildExecutors turns the executors section into runners, each starting
// from base without the secrets it is not configured to see.
func buildExecutors(cfg *config.Config, base []string, self string) (map[string]executor.Runner, error) {
	out := map[string]executor.Runner{}
	for name, e := range cfg.Executors.ByName {
		// The relay's own credentials stay with the relay unless the
		// executor's config passes them on.
		env := executor.ScrubEnv(base, e.PassEnv)
		if e.Kind == "" || e.Kind == config.KindCommand {
			c, err := executor.NewCommand(executor.CommandConfig{
				Name: name, Argv: e.Argv, Env: e.Env, Timeout: e.Timeout(), Shim: self, BaseEnv: env, Sandbox: e.Sandbox,
			})
			if err != nil {
				return nil, err
			}
			out[name] = c
			continue
		}
		ad, ok := adapterFor(e.Kind)
		if !ok {
			return nil, fmt.Errorf("executors.%s.kind: %q is not a known kind", name, e.Kind)
		}
		a, err := executor.NewAgent(executor.AgentConfig{
			Name: name, Binary: e.Binary, Model: e.Model, ExtraArgs: e.ExtraArgs, Env: e.Env, Timeout: e.Timeout(),
			Shim: self, BaseEnv: env, PermissionMode: e.PermissionMode, AllowedTools: e.AllowedTools,
			MaxTurns: e.MaxTurns, ApprovalMode: e.ApprovalMode,
		}, ad)
		if err != nil {
			return nil, err
		}
		out[name] = a
	}
	return out, nil
}

// bootstraps maps executors to their workspace bootstrap ("" is global).
func bootstraps(cfg *config.Config) map[string]*relay.Bootstrap {
	out := map[string]*relay.Bootstrap{}
	conv := func(w config.Workspace) *relay.Bootstrap {
		if len(w.CopyFiles) == 0 && strings.TrimSpace(w.Setup) == "" {
			return nil
		}
		return &relay.Bootstrap{CopyFiles: w.CopyFiles, Setup: w.Setup}
	}
	if b := conv(cfg.Workspace); b != nil {
		out[""] = b
	}
	for name, e := range cfg.Executors.ByName {
		if e.Workspace != nil {
			if b := conv(*e.Workspace); b != nil {
				out[name] = b
			} else {
				out[name] = &relay.Bootstrap{} // explicitly none
			}
		}
	}
	return out
}

func routing(cfg *config.Config) ask.Routing {
	r := ask.Routing{Default: ask.Route(cfg.AskAnswer.Routing.Default),
		ByType: map[relaytype.AskType]ask.Route{}, ByRole: map[string]ask.Route{}}
	for t, route := range cfg.AskAnswer.Routing.ByType {
		r.ByType[relaytype.AskType(t)] = ask.Route(route)
	}
	for role, route := range cfg.AskAnswer.Routing.ByRole {
		r.ByRole[role] = ask.Route(route)
	}
	return r
}

// forwardedEnvNames returns the variables a front forwards to the service
// for its project: what the project's config names (executors' passEnv,
// the runner's key), the TASK_RELAY_* settings of a project, and PATH and
// HOME, which executors need to find and run their programs.
func forwardedEnvNames(cfg *config.Config) []string {
	names := []string{"PATH", "HOME", config.EnvProfile, config.EnvPromptsDir, config.EnvSchemataDir,
		config.EnvPolicyFile, config.EnvAnswerRunnerEnabled}
	if k := cfg.AskAnswer.Runner.APIKeyEnv; k != "" {
		names = append(names, k)
	}
	for _, e := range cfg.Executors.ByName {
		names = append(names, e.PassEnv...)
	}
	if k := cfg.Notify.WebhookSecretEnv; k != "" {
		names = append(names, k)
	}
	names = append(names, cfg.Notify.PRPassEnv...)
	slices.Sort(names)
	return slices.Compact(names)
}
