package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
	"github.com/mcp-task-relay/mcp-task-relay/internal/workspace"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// PipelineConfig configures the production Handler.
type PipelineConfig struct {
	// Workspaces prepares per-job checkouts. Required.
	Workspaces *workspace.Manager
	// Artifacts is where artifact files are written. Required.
	Artifacts ArtifactDir
	// Executors maps executor names to runners.
	Executors map[string]executor.Runner
	// DefaultExecutor is used when a spec names none.
	DefaultExecutor string
	// ConfigFile is named in the error for a missing executor.
	ConfigFile string
	// Git is the git binary. Defaults to "git".
	Git string
	// AdmitTimeout bounds the git commands Admit runs at submit to pin a
	// job's baseline (git ls-remote of a URL, git rev-parse of a local
	// repository), so that a remote that accepts the connection and never
	// answers cannot hold jobs_submit for minutes. Defaults to 20s.
	AdmitTimeout time.Duration
	// Env is added to every executor's environment (TASK_RELAY_PROFILE,
	// ASK_ANSWER_ORIGIN, ...).
	Env map[string]string
	// Bootstrap prepares workspaces before the executor starts: the entry
	// of the job's executor, else the "" entry. Defaults to none.
	Bootstrap map[string]*Bootstrap
	// SetupTimeout bounds a Bootstrap.Setup command. Defaults to 10 min.
	SetupTimeout time.Duration
	// SetupBaseEnv is the environment setup commands start from. Defaults
	// to the relay's.
	SetupBaseEnv []string
	// Shim supervises setup commands' process groups (the relay binary).
	// Defaults to none.
	Shim string
	// Parents gives follow-up jobs their parent's record and patch.
	// Defaults to none (follow-ups fail).
	Parents ParentSource
	// RelayMCPURL is the relay's executor-facing MCP endpoint, for agents
	// that can use it (claude). Defaults to none.
	RelayMCPURL string
	// LogSink, when set, receives the executor's output while it runs (the
	// relay stores it as "log" events). Defaults to none.
	LogSink LogSink
	// JobToken returns the bearer token an executor uses for the
	// Ask/Answer API of one attempt of its job (TASK_RELAY_TOKEN).
	// Defaults to none.
	JobToken func(jobID string, attempt int) string
	// AskTimeout is the deadline of an ask that sets none; agents' tool
	// calls to relay_ask and relay_approve may wait that long. Defaults to
	// none (the adapters' own).
	AskTimeout time.Duration
	// MaxOutputBytes bounds captured executor output. Defaults to the
	// executor package default.
	MaxOutputBytes int64
	// PR configures the pull requests of jobs with notify.enablePr (see
	// pr.go). Defaults to pushing the branch only.
	PR PRConfig
	// Logger receives structured logs. Defaults to slog.Default().
	Logger *slog.Logger
	// Now returns the current time. Defaults to time.Now.
	Now func() time.Time
}

// Bootstrap is how a workspace is prepared before its executor starts.
type Bootstrap struct {
	// CopyFiles are globs of source-repository files copied in (and kept
	// out of the patch).
	CopyFiles []string
	// Setup is a shell command run in the workspace; its failure fails
	// the job.
	Setup string
}

// ParentSource gives a follow-up job its parent; the Relay is one.
type ParentSource interface {
	Get(ctx context.Context, id string) (*relaytype.Job, error)
	ReadArtifact(ctx context.Context, id string, kind relaytype.ArtifactKind) ([]byte, *relaytype.Artifact, error)
}

// Pipeline is the production Handler: workspace, prompt, executor, patch,
// scope check (scope.fileGlobs), apply-check, artifacts, output contract.
type Pipeline struct {
	cfg PipelineConfig
}

var _ Handler = (*Pipeline)(nil)

// NewPipeline returns a Pipeline.
func NewPipeline(cfg PipelineConfig) (*Pipeline, error) {
	if cfg.Workspaces == nil {
		return nil, errors.New("pipeline: Workspaces is required")
	}
	if cfg.Artifacts.Root == "" {
		return nil, errors.New("pipeline: Artifacts.Root is required")
	}
	if cfg.Git == "" {
		cfg.Git = "git"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SetupTimeout == 0 {
		cfg.SetupTimeout = 10 * time.Minute
	}
	return &Pipeline{cfg: cfg}, nil
}

// defaultAdmitTimeout is the default of PipelineConfig.AdmitTimeout.
const defaultAdmitTimeout = 20 * time.Second

// Admit implements Handler: it resolves the executor and pins the baseline.
func (p *Pipeline) Admit(ctx context.Context, spec *relaytype.JobSpec) (string, string, error) {
	if err := CheckScope(&spec.Scope); err != nil {
		return "", "", err
	}
	name := spec.Execution.Executor
	if len(p.cfg.Executors) == 0 {
		where := p.cfg.ConfigFile
		if where == "" {
			where = "config.yaml"
		}
		return "", "", fmt.Errorf("%w: add an executor under executors: in %s (for example executors: {default: mine, mine: {kind: command, argv: [\"./run.sh\", \"{{prompt_file}}\"]}})",
			relaytype.ErrNoExecutor, where)
	}
	if name == "" {
		name = p.cfg.DefaultExecutor
		if name == "" && len(p.cfg.Executors) == 1 {
			for n := range p.cfg.Executors {
				name = n
			}
		}
		if name == "" {
			return "", "", &relaytype.SpecError{Field: "execution.executor",
				Message: "required: no executors.default is configured; one of " + strings.Join(p.executorNames(), ", ")}
		}
	}
	if _, ok := p.cfg.Executors[name]; !ok {
		return "", "", &relaytype.SpecError{Field: "execution.executor",
			Message: fmt.Sprintf("unknown executor %q; configured: %s", name, strings.Join(p.executorNames(), ", "))}
	}
	timeout := p.cfg.AdmitTimeout
	if timeout <= 0 {
		timeout = defaultAdmitTimeout
	}
	// The workspace package kills git, and the helpers it started for the
	// remote, when this deadline passes.
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	baseline, err := p.resolveBaseline(actx, &spec.Repo)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			// The caller gave up: nothing is known about the spec.
			return "", "", fmt.Errorf("pin baseline: %w", ctx.Err())
		case actx.Err() != nil:
			return "", "", admitTimeoutError(spec.Repo.Type, timeout)
		}
		return "", "", err
	}
	return name, baseline, nil
}

// admitTimeoutError is the error of a baseline that git could not pin
// within timeout: the spec names a repository that does not answer, which
// the client must hear as such rather than as "context deadline exceeded".
func admitTimeoutError(repoType string, timeout time.Duration) error {
	if repoType == "local" {
		return &relaytype.SpecError{Field: "repo.path",
			Message: fmt.Sprintf("git rev-parse did not answer within %s (repository on an unresponsive file system?)", timeout)}
	}
	return &relaytype.SpecError{Field: "repo.url",
		Message: fmt.Sprintf("git ls-remote did not answer within %s (remote unreachable or not responding)", timeout)}
}

func (p *Pipeline) executorNames() []string {
	names := make([]string, 0, len(p.cfg.Executors))
	for n := range p.cfg.Executors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (p *Pipeline) resolveBaseline(ctx context.Context, repo *relaytype.Repo) (string, error) {
	field := "repo.baseBranch"
	if repo.Type == "local" {
		abs, err := filepath.Abs(repo.Path)
		if err != nil {
			return "", &relaytype.SpecError{Field: "repo.path", Message: err.Error()}
		}
		if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
			return "", &relaytype.SpecError{Field: "repo.path", Message: fmt.Sprintf("%s is not a directory", abs)}
		}
		repo.Path = abs
		if repo.BaselineCommit != "" {
			// Check the pinned commit exists now rather than at run time.
			probe := *repo
			probe.BaseBranch, probe.BaselineCommit = repo.BaselineCommit, ""
			if _, err := workspace.ResolveBaseline(ctx, p.cfg.Git, probe); err != nil {
				return "", &relaytype.SpecError{Field: "repo.baselineCommit", Message: err.Error()}
			}
			return strings.ToLower(repo.BaselineCommit), nil
		}
	} else if repo.BaselineCommit != "" {
		return strings.ToLower(repo.BaselineCommit), nil
	} else if repo.BaseBranch == "" {
		field = "repo.url"
	}
	sha, err := workspace.ResolveBaseline(ctx, p.cfg.Git, *repo)
	if err != nil {
		if repo.Type == "local" && repo.BaseBranch == "" {
			field = "repo.path"
		}
		return "", &relaytype.SpecError{Field: field, Message: err.Error()}
	}
	return sha, nil
}

// Handle implements Handler.
func (p *Pipeline) Handle(ctx context.Context, job *relaytype.Job) Outcome {
	log := p.cfg.Logger.With("job_id", job.ID, "attempt", job.Attempt)
	fail := func(reason relaytype.FailReason, format string, a ...any) Outcome {
		return Outcome{State: relaytype.StateFailed, Reason: reason, Summary: fmt.Sprintf(format, a...)}
	}
	run, ok := p.cfg.Executors[job.Executor]
	if !ok {
		return fail(relaytype.ReasonExecutorError, "executor %q is no longer configured", job.Executor)
	}
	ReportPhase(ctx, relaytype.PhasePreparing)
	ws, err := p.cfg.Workspaces.Prepare(ctx, job.ID, job.Spec.Repo, job.BaselineCommit)
	if err != nil {
		if ctx.Err() != nil {
			return Outcome{}
		}
		return fail(relaytype.ReasonInternalError, "prepare workspace: %v", err)
	}
	defer func() {
		if err := ws.Remove(context.WithoutCancel(ctx)); err != nil {
			log.Warn("remove workspace", "err", err)
		}
	}()

	// A follow-up starts from its parent's result and resumes its session.
	var resume, start string
	if job.ParentJobID != "" {
		var out *Outcome
		resume, start, out = p.startFromParent(ctx, job, ws)
		if out != nil {
			return *out
		}
	}
	boot := p.cfg.Bootstrap[job.Executor]
	if boot == nil {
		boot = p.cfg.Bootstrap[""]
	}
	if boot != nil {
		if copied, err := ws.CopyFiles(boot.CopyFiles); err != nil {
			return fail(relaytype.ReasonExecutorError, "workspace bootstrap: %v", err)
		} else if len(copied) > 0 {
			log.Info("workspace files copied", "files", copied)
		}
	}

	prompt := RenderPrompt(job, ws.Dir, p.cfg.Shim)
	promptFile := filepath.Join(ws.MetaDir, "prompt.md")
	if err := os.WriteFile(promptFile, []byte(prompt), 0o600); err != nil {
		return fail(relaytype.ReasonInternalError, "write prompt: %v", err)
	}
	env := map[string]string{}
	for k, v := range p.cfg.Env {
		env[k] = v
	}
	repo := job.Spec.Repo.URL
	if job.Spec.Repo.Type == "local" {
		repo = job.Spec.Repo.Path
	}
	stepID := fmt.Sprintf("attempt-%d", job.Attempt)
	env["TASK_RELAY_JOB_ID"] = job.ID
	env["TASK_RELAY_STEP_ID"] = stepID
	env["TASK_RELAY_REPO"] = repo
	env["TASK_RELAY_COMMIT_SHA"] = job.BaselineCommit
	env["TASK_RELAY_ATTEMPT"] = fmt.Sprint(job.Attempt)
	env["TASK_RELAY_PROMPT_FILE"] = promptFile
	token := ""
	if p.cfg.JobToken != nil {
		token = p.cfg.JobToken(job.ID, job.Attempt)
		env["TASK_RELAY_TOKEN"] = token
	}
	if job.Spec.Repo.BaseBranch != "" {
		env["TASK_RELAY_FACT_branch"] = job.Spec.Repo.BaseBranch
	}

	now := p.cfg.Now()
	var arts []*relaytype.Artifact
	save := func(kind relaytype.ArtifactKind, data []byte) error {
		a, err := p.cfg.Artifacts.Write(job.ID, kind, data, now)
		if err != nil {
			return err
		}
		arts = append(arts, a)
		return nil
	}

	if boot != nil && strings.TrimSpace(boot.Setup) != "" {
		out, err := p.setup(ctx, boot.Setup, ws.Dir, env)
		if ctx.Err() != nil {
			return Outcome{}
		}
		if err != nil {
			_ = save(relaytype.ArtifactLogs, out)
			o := fail(relaytype.ReasonExecutorError, "workspace setup failed: %v%s", err, lastLine(out))
			o.Artifacts = arts
			return o
		}
	}

	ReportPhase(ctx, relaytype.PhaseRunning)
	log.Info("executor starting", "executor", job.Executor, "workdir", ws.Dir, "resume", resume)
	req := &executor.Request{
		JobID: job.ID, StepID: stepID, Workdir: ws.Dir, Prompt: prompt, PromptFile: promptFile,
		Model: job.Spec.Execution.PreferredModel, Env: env,
		Timeout:        time.Duration(job.Spec.Execution.TimeoutS) * time.Second,
		MaxOutputBytes: p.cfg.MaxOutputBytes,
		MetaDir:        ws.MetaDir, Sandbox: job.Spec.Execution.Sandbox, ResumeSessionID: resume,
		MaxBudgetUSD: job.Spec.Execution.MaxBudgetUSD, RelayMCPURL: p.cfg.RelayMCPURL, RelayToken: token,
		RelayBinary: p.cfg.Shim, AskPolicy: job.Spec.Execution.AskPolicy, AskTimeout: p.cfg.AskTimeout,
	}
	if job.ParentJobID != "" {
		req.ParentWorkdir = p.cfg.Workspaces.CheckoutPath(job.ParentJobID)
	}
	var ls *logStream
	if p.cfg.LogSink != nil {
		ls = newLogStream(ctx, job.ID, p.cfg.LogSink)
		req.Output = ls
	}
	req.Output = ReportOutput(ctx, req.Output)
	res, err := run.Run(ctx, req)
	if ls != nil {
		// The live log lands before the job's final transition.
		ls.Close()
	}
	if ctx.Err() != nil {
		return Outcome{}
	}
	if err != nil {
		return fail(relaytype.ReasonExecutorError, "start executor %q: %v", job.Executor, err)
	}
	ReportPhase(ctx, relaytype.PhaseCollecting)

	logs, out := res.Output, RenderOut(res.Stdout)
	var usage *relaytype.Usage
	sessionID := ""
	if ag := res.Agent; ag != nil {
		if ag.Log != "" {
			logs = append([]byte(strings.TrimRight(ag.Log, "\n")+"\n\n--- executor output ---\n"), res.Output...)
		}
		if ag.FinalMessage != "" {
			// An agent's final message is its report: all of it.
			out = RenderMessage(ag.FinalMessage)
		}
		sessionID = ag.SessionID
		if u := ag.Usage; u.InputTokens+u.OutputTokens+u.CachedInputTokens > 0 || ag.CostUSD > 0 {
			usage = &relaytype.Usage{InputTokens: u.InputTokens, OutputTokens: u.OutputTokens,
				CachedInputTokens: u.CachedInputTokens, CostUSD: ag.CostUSD}
		}
	}
	if err := save(relaytype.ArtifactLogs, logs); err != nil {
		return fail(relaytype.ReasonInternalError, "%v", err)
	}
	withArts := func(o Outcome) Outcome {
		o.Artifacts, o.Usage, o.SessionID = arts, usage, sessionID
		return o
	}
	switch {
	case res.TimedOut:
		return withArts(fail(relaytype.ReasonTimeout, "executor %q timed out after %s", job.Executor, res.Duration.Round(time.Millisecond)))
	case res.Agent != nil && res.Agent.OverBudget:
		return withArts(fail(relaytype.ReasonPolicy, "executor %q stopped at the job's budget of $%.4f: %s",
			job.Executor, job.Spec.Execution.MaxBudgetUSD, res.Agent.FailureSummary))
	case res.Agent != nil && res.Agent.Failed:
		return withArts(fail(relaytype.ReasonExecutorError, "executor %q failed: %s", job.Executor, res.Agent.FailureSummary))
	case res.ExitCode != 0:
		// stderr says why more often than stdout; the two pipes also
		// interleave unpredictably in the combined output.
		why := lastLine(res.Stderr)
		if why == "" {
			why = lastLine(res.Output)
		}
		return withArts(fail(relaytype.ReasonExecutorError, "executor %q exited with code %d%s", job.Executor, res.ExitCode, why))
	case job.Spec.Execution.MaxBudgetUSD > 0 && usage != nil && usage.CostUSD > job.Spec.Execution.MaxBudgetUSD:
		return withArts(fail(relaytype.ReasonPolicy, "executor %q spent $%.4f, over the job's budget of $%.4f",
			job.Executor, usage.CostUSD, job.Spec.Execution.MaxBudgetUSD))
	}

	patch, err := ws.Diff(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return Outcome{}
		}
		return withArts(fail(relaytype.ReasonBadArtifacts, "compute patch: %v", err))
	}
	own := patch // what this run changed
	if start != "" {
		inc, err := ws.DiffFrom(ctx, start)
		if err != nil {
			return withArts(fail(relaytype.ReasonBadArtifacts, "compute incremental patch: %v", err))
		}
		own = inc
	}
	// Coding agents are run in the job's sandbox mode; a plain command gets
	// no sandbox, so the mode is not held against it. A read-only job that
	// changed files returns no patch at all.
	if res.Agent != nil && job.Spec.Execution.Sandbox == "read-only" && len(bytes.TrimSpace(own)) > 0 {
		_ = save(relaytype.ArtifactOut, out)
		return withArts(fail(relaytype.ReasonPolicy, "the job is read-only (execution.sandbox) but the executor changed files: %s",
			strings.TrimPrefix(patchSummary(own), "executor finished; ")))
	}
	// A patch that leaves scope.fileGlobs is not returned either.
	if err := CheckFileGlobs(job.Spec.Scope.FileGlobs, patch); err != nil {
		_ = save(relaytype.ArtifactOut, out)
		return withArts(fail(relaytype.ReasonPolicy, "%v", err))
	}
	if err := save(relaytype.ArtifactPatch, patch); err != nil {
		return withArts(fail(relaytype.ReasonInternalError, "%v", err))
	}
	if err := ws.CheckApplies(ctx, patch); err != nil {
		if ctx.Err() != nil {
			return Outcome{}
		}
		reason := relaytype.ReasonBadArtifacts
		if errors.Is(err, workspace.ErrConflict) {
			reason = relaytype.ReasonConflict
		}
		return withArts(fail(reason, "patch does not apply to baseline %s: %v", short(job.BaselineCommit), err))
	}
	if start != "" {
		if err := save(relaytype.ArtifactIncremental, own); err != nil {
			return withArts(fail(relaytype.ReasonInternalError, "%v", err))
		}
	}
	if err := save(relaytype.ArtifactOut, out); err != nil {
		return withArts(fail(relaytype.ReasonInternalError, "%v", err))
	}
	if err := CheckOutputContract(job.Spec.OutputContract, patch, out); err != nil {
		return withArts(fail(relaytype.ReasonOutputContract, "%v", err))
	}
	// notify.enablePr: commit, push, PR command; the outcome is pr.json.
	if err := p.pullRequest(ctx, job, patch, save); err != nil {
		if ctx.Err() != nil {
			return Outcome{}
		}
		return withArts(fail(relaytype.ReasonInternalError, "%v", err))
	}
	return withArts(Outcome{State: relaytype.StateSucceeded, Summary: patchSummary(patch)})
}

// startFromParent applies a follow-up's parent patch to the workspace and
// returns the parent's agent session and the tree the follow-up starts
// from, or the outcome to end with.
func (p *Pipeline) startFromParent(ctx context.Context, job *relaytype.Job, ws *workspace.Workspace) (string, string, *Outcome) {
	fail := func(reason relaytype.FailReason, format string, a ...any) (string, string, *Outcome) {
		return "", "", &Outcome{State: relaytype.StateFailed, Reason: reason, Summary: fmt.Sprintf(format, a...)}
	}
	if p.cfg.Parents == nil {
		return fail(relaytype.ReasonInternalError, "follow-ups are not available")
	}
	parent, err := p.cfg.Parents.Get(ctx, job.ParentJobID)
	if err != nil {
		return fail(relaytype.ReasonInternalError, "parent job %s: %v", job.ParentJobID, err)
	}
	patch, _, err := p.cfg.Parents.ReadArtifact(ctx, parent.ID, relaytype.ArtifactPatch)
	if err != nil && !errors.Is(err, relaytype.ErrArtifactNotFound) {
		return fail(relaytype.ReasonInternalError, "parent job %s patch: %v", parent.ID, err)
	}
	if err := ws.ApplyPatch(ctx, patch); err != nil {
		return fail(relaytype.ReasonConflict, "parent job %s patch does not apply: %v", parent.ID, err)
	}
	start, err := ws.Snapshot(ctx)
	if err != nil {
		return fail(relaytype.ReasonInternalError, "%v", err)
	}
	return parent.SessionID, start, nil
}

// setup runs a workspace setup command with the job's environment and
// returns its output.
func (p *Pipeline) setup(ctx context.Context, command, dir string, env map[string]string) ([]byte, error) {
	// A setup command is the project's, not an agent's: it sees no
	// credential and not the job's token.
	base := p.cfg.SetupBaseEnv
	if base == nil {
		base = os.Environ()
	}
	env = maps.Clone(env)
	delete(env, "TASK_RELAY_TOKEN")
	cmd, err := executor.NewCommand(executor.CommandConfig{Name: "workspace.setup", Argv: []string{"/bin/sh", "-c", command},
		Timeout: p.cfg.SetupTimeout, Shim: p.cfg.Shim, BaseEnv: executor.ScrubEnv(base, nil)})
	if err != nil {
		return nil, err
	}
	res, err := cmd.Run(ctx, &executor.Request{Workdir: dir, Env: env, MaxOutputBytes: p.cfg.MaxOutputBytes})
	if err != nil {
		return nil, err
	}
	out := append([]byte("--- workspace setup: "+command+" ---\n"), res.Output...)
	switch {
	case res.TimedOut:
		return out, fmt.Errorf("timed out after %s", res.Duration.Round(time.Second))
	case res.ExitCode != 0:
		return out, fmt.Errorf("exit %d", res.ExitCode)
	}
	return out, nil
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// lastLine returns ": <last non-empty line>" of output, or "".
func lastLine(out []byte) string {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	l := strings.TrimSpace(string(lines[len(lines)-1]))
	if l == "" {
		return ""
	}
	if len(l) > 200 {
		l = l[:200] + "…"
	}
	return ": " + l
}

// patchSummary describes a patch as "N files changed, +A -D" or notes that
// it is empty.
func patchSummary(patch []byte) string {
	if len(bytes.TrimSpace(patch)) == 0 {
		return "executor finished; it changed nothing (empty patch)"
	}
	files, add, del := 0, 0, 0
	for _, l := range bytes.Split(patch, []byte("\n")) {
		switch {
		case bytes.HasPrefix(l, []byte("diff --git ")):
			files++
		case bytes.HasPrefix(l, []byte("+++")), bytes.HasPrefix(l, []byte("---")):
		case bytes.HasPrefix(l, []byte("+")):
			add++
		case bytes.HasPrefix(l, []byte("-")):
			del++
		}
	}
	noun := "files"
	if files == 1 {
		noun = "file"
	}
	return fmt.Sprintf("executor finished; patch changes %d %s, +%d -%d lines", files, noun, add, del)
}
