package claude

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// claudeAuthStatus is what `claude auth status --json` prints.
type claudeAuthStatus struct {
	LoggedIn     bool   `json:"loggedIn"`
	AuthMethod   string `json:"authMethod"`
	APIProvider  string `json:"apiProvider"`
	APIKeySource string `json:"apiKeySource"`
}

// Check runs `claude --version` and `claude auth status --json` (neither
// calls the model) with the environment the runs get (env, with cfg.Env on
// top) and reports the version and the auth mode: an API key (and where it
// comes from), a claude.ai login, an OAuth token, a third-party provider
// (Bedrock, Vertex AI). Jobs cannot run when claude is not authenticated,
// or with a permission mode claude does not know. Claude needs no
// workspace trust in print mode.
func (Adapter) Check(ctx context.Context, cfg *executor.AgentConfig, env []string) executor.Health {
	runEnv := slices.Clone(env)
	for k, v := range cfg.Env {
		runEnv = append(runEnv, k+"="+v)
	}
	getenv := func(key string) string {
		for i := len(runEnv) - 1; i >= 0; i-- {
			if k, v, ok := strings.Cut(runEnv[i], "="); ok && k == key {
				return v
			}
		}
		return ""
	}
	var h executor.Health
	out, err := claudeExec(ctx, cfg.Binary, runEnv, "--version")
	if err != nil {
		h.Err = err
		h.Fix = fmt.Sprintf("install Claude Code (npm install -g @anthropic-ai/claude-code) or set executors.%s.binary", cfg.Name)
		return h
	}
	// "2.1.197 (Claude Code)"
	h.Version, _, _ = strings.Cut(strings.TrimSpace(out), " ")

	var details []string
	status, err := claudeAuth(ctx, cfg.Binary, runEnv)
	switch {
	case err != nil:
		details = append(details, "auth unknown")
		h.Err = err
		h.Fix = "run `claude auth status` as the user the relay runs as"
	case !status.LoggedIn:
		details = append(details, "auth none")
		h.Err = errors.New("claude is not authenticated: no API key and no login")
		h.Fix = fmt.Sprintf("pass ANTHROPIC_API_KEY to the executor (executors.%s.passEnv: [ANTHROPIC_API_KEY]), "+
			"or run `claude auth login` as the user the relay runs as", cfg.Name)
	default:
		auth := "auth " + claudeOr(status.AuthMethod, "unknown")
		var extra []string
		if status.APIKeySource != "" {
			extra = append(extra, status.APIKeySource)
		}
		if status.APIProvider != "" && status.APIProvider != "firstParty" {
			extra = append(extra, "provider "+status.APIProvider)
		}
		if base := getenv("ANTHROPIC_BASE_URL"); base != "" {
			extra = append(extra, "base URL "+base)
		}
		if len(extra) > 0 {
			auth += " (" + strings.Join(extra, ", ") + ")"
		}
		details = append(details, auth)
	}
	if fix, err := claudeModeProblem(cfg, os.Geteuid(), getenv); err != nil {
		if h.Err == nil {
			h.Err, h.Fix = err, fix
		}
	} else {
		details = append(details, "permission mode "+claudeOr(cfg.PermissionMode, ClaudeDefaultPermissionMode)+" unless the job's askPolicy or sandbox says otherwise")
	}
	h.Detail = strings.Join(details, "; ")
	return h
}

// claudeModeProblem says what is wrong with the configured permission
// mode: one claude does not know, or bypassPermissions, which claude
// refuses to run as root (euid 0) outside a sandbox it knows of
// (IS_SANDBOX=1, CLAUDE_CODE_BUBBLEWRAP).
func claudeModeProblem(cfg *executor.AgentConfig, euid int, getenv func(string) string) (fix string, err error) {
	m := cfg.PermissionMode
	switch {
	case m != "" && !slices.Contains(claudeModes, m):
		return fmt.Sprintf("correct executors.%s.permissionMode", cfg.Name),
			fmt.Errorf("permissionMode %q is not one of claude's modes %v", m, claudeModes)
	case m == "bypassPermissions" && euid == 0 && getenv("IS_SANDBOX") != "1" && getenv("CLAUDE_CODE_BUBBLEWRAP") == "":
		return fmt.Sprintf("run the relay as another user, set IS_SANDBOX: \"1\" in executors.%s.env if it runs in a container, or use another permissionMode", cfg.Name),
			errors.New("claude refuses permissionMode bypassPermissions as root")
	}
	return "", nil
}

// claudeAuth runs `claude auth status --json`, which exits 1 when claude
// is not logged in.
func claudeAuth(ctx context.Context, binary string, env []string) (claudeAuthStatus, error) {
	var st claudeAuthStatus
	out, err := claudeExec(ctx, binary, env, "auth", "status", "--json")
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return st, err
	}
	if jerr := json.Unmarshal([]byte(out), &st); jerr != nil {
		if err != nil {
			return st, err
		}
		return st, fmt.Errorf("%s auth status --json: %w", binary, jerr)
	}
	return st, nil
}

// claudeExec runs claude with args and returns its stdout. An error says
// what claude printed on stderr.
func claudeExec(ctx context.Context, binary string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = env
	cmd.Dir = os.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		if msg != "" {
			return stdout.String(), fmt.Errorf("%s %s: %w: %s", binary, strings.Join(args, " "), err, msg)
		}
		return stdout.String(), fmt.Errorf("%s %s: %w", binary, strings.Join(args, " "), err)
	}
	return stdout.String(), nil
}
