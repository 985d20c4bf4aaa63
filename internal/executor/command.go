package executor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CommandConfig configures a Command: an executor that runs a fixed
// command line, such as `codex exec {{prompt}}` or `claude -p {{prompt}}`.
type CommandConfig struct {
	// Name is the executor's name in the configuration, used in errors.
	// Required.
	Name string
	// Argv is the command line, one element per argument; no shell is
	// involved. Elements may hold the templates {{prompt}},
	// {{prompt_file}}, {{workdir}}, {{job_id}} and {{model}}, replaced per
	// run. Required.
	Argv []string
	// Env is environment set on top of BaseEnv. Defaults to none.
	Env map[string]string
	// Timeout bounds every run, on top of Request.Timeout (the shorter
	// wins). Defaults to none.
	Timeout time.Duration
	// KillGrace is the time between SIGTERM and SIGKILL when a run is
	// stopped. Defaults to DefaultKillGrace.
	KillGrace time.Duration
	// Shim is the path of a binary implementing RunShim as its ShimArg
	// subcommand (the relay's own executable), so that executors and their
	// children die with a killed relay. Defaults to none: the executor is
	// started directly and only it, not its children, gets the
	// parent-death signal.
	Shim string
	// BaseEnv is the environment runs start from. Defaults to the relay's
	// environment (nil means os.Environ; use an empty slice for none).
	BaseEnv []string
	// Sandbox confines every run: SandboxLandlock (config
	// `executors.NAME.sandbox: landlock`) or SandboxNone. Landlock needs
	// the Shim, which applies it, and a kernel that has it (see
	// LandlockSupport): NewCommand refuses it otherwise, and a run whose
	// shim cannot apply it does not start. Defaults to none.
	Sandbox string
}

// Command runs a configured command line as an executor. It is safe for
// concurrent use.
type Command struct {
	cfg  CommandConfig
	argv [][]argPart
	// noPdeathsig arms no parent-death signal, as on systems that have
	// none, so that tests can prove the shim's lifeline pipe on its own.
	noPdeathsig bool
}

var _ Runner = (*Command)(nil)

// argPart is a literal piece of an argument, or a template when key is set.
type argPart struct {
	lit string
	key string
}

// Template names.
const (
	tmplPrompt     = "prompt"
	tmplPromptFile = "prompt_file"
	tmplWorkdir    = "workdir"
	tmplJobID      = "job_id"
	tmplModel      = "model"
)

func knownTemplate(key string) bool {
	switch key {
	case tmplPrompt, tmplPromptFile, tmplWorkdir, tmplJobID, tmplModel:
		return true
	}
	return false
}

// NewCommand validates cfg and returns the Command for it. Errors name the
// configuration field, as in `executors.NAME.argv[1]: ...`; a sandbox this
// system cannot apply is refused with an error wrapping
// ErrLandlockUnsupported.
func NewCommand(cfg CommandConfig) (*Command, error) {
	return newCommandChecked(cfg, LandlockSupport)
}

// newCommandChecked is NewCommand with the check for Landlock support given.
func newCommandChecked(cfg CommandConfig, landlockSupport func() (int, error)) (*Command, error) {
	if strings.TrimSpace(cfg.Name) == "" {
		return nil, errors.New("executors: executor name is required")
	}
	field := "executors." + cfg.Name
	if len(cfg.Argv) == 0 {
		return nil, fmt.Errorf("%s.argv: must not be empty", field)
	}
	if strings.TrimSpace(cfg.Argv[0]) == "" {
		return nil, fmt.Errorf("%s.argv[0]: must name a program", field)
	}
	c := &Command{argv: make([][]argPart, len(cfg.Argv))}
	for i, arg := range cfg.Argv {
		parts, err := parseArg(arg)
		if err != nil {
			return nil, fmt.Errorf("%s.argv[%d]: %w", field, i, err)
		}
		c.argv[i] = parts
	}
	for k := range cfg.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, fmt.Errorf("%s.env: invalid variable name %q", field, k)
		}
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("%s.timeout: must not be negative", field)
	}
	if cfg.KillGrace < 0 {
		return nil, fmt.Errorf("%s.killGrace: must not be negative", field)
	}
	if cfg.KillGrace == 0 {
		cfg.KillGrace = DefaultKillGrace
	}
	if err := validSandbox(cfg.Sandbox, cfg.Shim, landlockSupport); err != nil {
		return nil, fmt.Errorf("%s.sandbox: %w", field, err)
	}
	cfg.Argv = slices.Clone(cfg.Argv)
	cfg.Env = maps.Clone(cfg.Env)
	if cfg.BaseEnv != nil {
		cfg.BaseEnv = slices.Clone(cfg.BaseEnv)
	}
	c.cfg = cfg
	return c, nil
}

// parseArg splits one argv element into literals and templates.
func parseArg(arg string) ([]argPart, error) {
	var parts []argPart
	for {
		i := strings.Index(arg, "{{")
		if i < 0 {
			break
		}
		j := strings.Index(arg[i+2:], "}}")
		if j < 0 {
			return nil, fmt.Errorf("unclosed {{ in %q", arg)
		}
		key := strings.TrimSpace(arg[i+2 : i+2+j])
		if !knownTemplate(key) {
			return nil, fmt.Errorf("unknown template {{%s}}; known: {{prompt}}, {{prompt_file}}, {{workdir}}, {{job_id}}, {{model}}", key)
		}
		if i > 0 {
			parts = append(parts, argPart{lit: arg[:i]})
		}
		parts = append(parts, argPart{key: key})
		arg = arg[i+2+j+2:]
	}
	if arg != "" || len(parts) == 0 {
		parts = append(parts, argPart{lit: arg})
	}
	return parts, nil
}

// Name returns the executor's configured name.
func (c *Command) Name() string { return c.cfg.Name }

// Run runs the command for req in req.Workdir and waits for it to end.
func (c *Command) Run(ctx context.Context, req *Request) (*Result, error) {
	if req == nil || req.Workdir == "" {
		return nil, fmt.Errorf("executor %s: request without a workdir", c.cfg.Name)
	}
	return launch(ctx, launchSpec{
		name: c.cfg.Name, argv: c.expand(req), env: environ(c.cfg.BaseEnv, c.cfg.Env, req.Env), req: req,
		timeout: minTimeout(req.Timeout, c.cfg.Timeout), killGrace: c.cfg.KillGrace, shim: c.cfg.Shim,
		sandbox: c.cfg.Sandbox, noPdeathsig: c.noPdeathsig,
	})
}

// launchSpec is one process to run for a request.
type launchSpec struct {
	name      string
	argv      []string
	env       []string
	req       *Request
	timeout   time.Duration
	killGrace time.Duration
	shim      string
	sandbox   string // SandboxNone or SandboxLandlock
	// noPdeathsig arms no parent-death signal (see Command.noPdeathsig).
	noPdeathsig bool
}

// launch runs argv for a request in its workdir, in its own process
// group, through the shim when one is given, and waits for it to end.
func launch(ctx context.Context, l launchSpec) (*Result, error) {
	req := l.req
	path, err := lookPath(l.argv[0], l.env, req.Workdir)
	if err != nil {
		return nil, fmt.Errorf("executor %s: %w", l.name, err)
	}
	limit := req.MaxOutputBytes
	if limit <= 0 {
		limit = DefaultMaxOutputBytes
	}
	p := &process{
		path:      path,
		args:      l.argv,
		dir:       req.Workdir,
		env:       l.env,
		pdeathsig: syscall.SIGKILL,
		timeout:   l.timeout,
		killGrace: l.killGrace,
		limit:     limit,
		live:      req.Output,
	}
	if l.shim != "" && shimSupported {
		p.viaShim = true
		p.path = l.shim
		p.args = append([]string{l.shim, ShimArg, "--", path}, l.argv[1:]...)
		p.env = append(p.env,
			shimParentEnv+"="+strconv.Itoa(os.Getpid()),
			shimGraceEnv+"="+l.killGrace.String())
		// The shim handles SIGTERM by stopping its whole group.
		p.pdeathsig = syscall.SIGTERM
	}
	if l.noPdeathsig {
		p.pdeathsig = 0
	}
	if l.sandbox != SandboxNone {
		if !p.viaShim {
			return nil, fmt.Errorf("executor %s: sandbox %s needs the shim", l.name, l.sandbox)
		}
		// The sandboxed run writes temporary files to a directory of its
		// own, removed with it.
		tmp, err := os.MkdirTemp("", "task-relay-tmp-")
		if err != nil {
			return nil, fmt.Errorf("executor %s: sandbox temp dir: %w", l.name, err)
		}
		defer os.RemoveAll(tmp)
		spec, err := newSandboxSpec(req, tmp)
		if err != nil {
			return nil, fmt.Errorf("executor %s: %w", l.name, err)
		}
		p.env = append(p.env, "TMPDIR="+tmp, shimSandboxEnv+"="+spec.encode())
	}
	res, err := p.run(ctx)
	if err != nil {
		return nil, fmt.Errorf("executor %s: %w", l.name, err)
	}
	return res, nil
}

// expand returns the argv of req with templates replaced.
func (c *Command) expand(req *Request) []string {
	values := map[string]string{
		tmplPrompt:     req.Prompt,
		tmplPromptFile: req.PromptFile,
		tmplWorkdir:    req.Workdir,
		tmplJobID:      req.JobID,
		tmplModel:      req.Model,
	}
	argv := make([]string, len(c.argv))
	for i, parts := range c.argv {
		var b strings.Builder
		for _, p := range parts {
			if p.key != "" {
				b.WriteString(values[p.key])
			} else {
				b.WriteString(p.lit)
			}
		}
		argv[i] = b.String()
	}
	return argv
}

// environ returns base (nil: the relay's environment), then each of
// maps in key order; exec keeps the last value of a repeated variable.
func environ(base []string, layers ...map[string]string) []string {
	if base == nil {
		base = os.Environ()
	}
	env := slices.Clone(base)
	for _, m := range layers {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			env = append(env, k+"="+m[k])
		}
	}
	return env
}

// lookPath finds program file the way the executor's own environment
// would: a name with a slash relative to workdir, any other through the
// PATH in env, skipping relative entries (which would resolve against the
// workspace). It checks that the program exists, so that a missing one is
// an error to start with, shim or not.
func lookPath(file string, env []string, workdir string) (string, error) {
	if strings.Contains(file, "/") {
		p := file
		if !filepath.IsAbs(p) {
			p = filepath.Join(workdir, p)
		}
		if !isExecutable(p) {
			return "", fmt.Errorf("%q is not an executable file", file)
		}
		return file, nil
	}
	var path string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if !filepath.IsAbs(dir) {
			continue
		}
		if p := filepath.Join(dir, file); isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q not found in PATH", file)
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// minTimeout returns the shorter of two timeouts, where 0 means none.
func minTimeout(a, b time.Duration) time.Duration {
	switch {
	case a <= 0:
		return max(b, 0)
	case b <= 0:
		return a
	}
	return min(a, b)
}
