package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// Finding is one result of Check.
type Finding struct {
	// Name says what was checked.
	Name string
	// Err is nil when the check passed.
	Err error
	// Warn marks a problem that does not stop the relay.
	Warn bool
	// Detail describes the result.
	Detail string
	// Fix says what to do about a problem.
	Fix string
}

// Check builds what the relay service would build for the project of cfg
// (its executors, answerers and ask rules, and the service's own settings)
// without starting anything, and reports what the service would refuse or
// ignore, and whether the service runs. getenv is the environment the
// project's front would forward (nil: the process environment).
func Check(ctx context.Context, cfg *config.Config, getenv func(string) (string, bool)) []Finding {
	if getenv == nil {
		getenv = os.LookupEnv
	}
	var out []Finding
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	wiring := Finding{Name: "project wiring"}
	if _, err := buildExecutors(cfg, os.Environ(), "mcp-task-relay"); err != nil {
		wiring.Err = err
	} else if ans, err := buildAnswerers(cfg, getenv, nil, clientMCP{}, log); err != nil {
		wiring.Err = err
	} else if _, err := ask.NewRuleSet(ask.Rules{Routing: routing(cfg), Answerers: ans.byRoute, Decider: ans.decider}); err != nil {
		wiring.Err = err
	} else {
		runner := "off"
		if ans.runner != nil {
			runner = "on"
		}
		wiring.Detail = fmt.Sprintf("%d executor(s), answer runner %s, policy %s", len(cfg.Executors.ByName), runner, ans.policyVersion)
	}
	if wiring.Err != nil {
		wiring.Fix = "correct the project's config (" + filepath.Join(cfg.ConfigDir, config.ConfigFileName) + "); the service refuses its submits until then"
	}
	out = append(out, wiring)

	out = append(out, checkAgents(ctx, cfg)...)
	out = append(out, checkSandboxes(cfg)...)

	svcCfg := Finding{Name: "service settings", Detail: filepath.Join(cfg.DataDir, config.ServiceFileName)}
	if _, err := config.LoadService(cfg.DataDir, getenv); err != nil {
		svcCfg.Err = err
		svcCfg.Fix = "correct " + filepath.Join(cfg.DataDir, config.ServiceFileName)
	}
	out = append(out, svcCfg)

	var moved []string
	for _, k := range cfg.FileKeys() {
		if config.IsServiceKey(k) {
			moved = append(moved, k)
		}
	}
	if len(moved) > 0 {
		out = append(out, Finding{Name: "service keys in project", Warn: true,
			Detail: fmt.Sprintf("%v apply with serve --standalone only; the shared service reads them from its %s", moved, config.ServiceFileName),
			Fix:    "move them to " + filepath.Join(cfg.DataDir, config.ServiceFileName) + " (or ignore this if you run --standalone)"})
	}

	svc := Finding{Name: "relay service"}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	r, err := Control(cctx, cfg.DataDir, &Hello{Op: OpStatus})
	cancel()
	switch {
	case err != nil:
		svc.Warn = true
		svc.Detail = "not running (serve starts it on demand)"
		svc.Fix = "mcp-task-relay daemon start"
	default:
		svc.Detail = fmt.Sprintf("running: pid %d, version %s, %s, %d job(s) running", r.PID, r.Version, r.Origin, r.Running)
		if err := checkHealthz(ctx, r.Origin); err != nil {
			svc.Err = err
			svc.Fix = "restart the relay service (mcp-task-relay daemon stop, then daemon start); its log is " +
				filepath.Join(cfg.DataDir, ServiceLogFile)
		}
		for _, p := range r.Projects {
			if p.Dir == cfg.ConfigDir && p.Error != "" {
				svc.Err = fmt.Errorf("the service cannot load this project: %s", p.Error)
				svc.Fix = "correct the project's config; the service reloads it when the file changes"
			}
		}
	}
	return append(out, svc)
}

// checkHealthz asks GET /healthz of the HTTP API at origin, which
// executors reach the relay through, and returns an error unless it
// answers healthy.
func checkHealthz(ctx context.Context, origin string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, origin+"/healthz", nil)
	if err != nil {
		return fmt.Errorf("HTTP API at %s: %w", origin, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("HTTP API at %s is not serving: %w", origin, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP API at %s is unhealthy: %s %s", origin, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// agentCheckTimeout bounds one agent's own health check.
const agentCheckTimeout = 20 * time.Second

// checkAgents runs the health check of every coding-agent executor whose
// adapter has one (version, auth mode, workspace trust), with the
// environment its jobs would get.
func checkAgents(ctx context.Context, cfg *config.Config) []Finding {
	var out []Finding
	for _, name := range cfg.Executors.Names() {
		e := cfg.Executors.ByName[name]
		ad, ok := adapterFor(e.Kind)
		if !ok {
			continue
		}
		checker, ok := ad.(executor.Checker)
		if !ok {
			continue
		}
		binary := e.Binary
		if binary == "" {
			binary = ad.DefaultBinary()
		}
		ac := &executor.AgentConfig{Name: name, Binary: binary, Model: e.Model, ExtraArgs: e.ExtraArgs, Env: e.Env,
			PermissionMode: e.PermissionMode, AllowedTools: e.AllowedTools, MaxTurns: e.MaxTurns, ApprovalMode: e.ApprovalMode}
		cctx, cancel := context.WithTimeout(ctx, agentCheckTimeout)
		h := checker.Check(cctx, ac, executor.ScrubEnv(os.Environ(), e.PassEnv))
		cancel()
		f := Finding{Name: "agent " + name, Detail: h.Detail, Err: h.Err, Fix: h.Fix}
		if h.Version != "" {
			f.Detail = fmt.Sprintf("%s %s: %s", e.Kind, h.Version, h.Detail)
		}
		out = append(out, f)
	}
	return out
}

// checkSandboxes reports whether the kernel can confine the command
// executors configured with sandbox: landlock.
func checkSandboxes(cfg *config.Config) []Finding {
	var out []Finding
	for _, name := range cfg.Executors.Names() {
		if cfg.Executors.ByName[name].Sandbox != config.SandboxLandlock {
			continue
		}
		f := Finding{Name: "sandbox " + name}
		if abi, err := executor.LandlockSupport(); err != nil {
			f.Err = err
			f.Fix = "needs Linux 5.13 or later with landlock in the kernel's lsm= list, or remove executors." + name + ".sandbox"
		} else {
			f.Detail = fmt.Sprintf("landlock ABI %d", abi)
		}
		out = append(out, f)
	}
	return out
}
