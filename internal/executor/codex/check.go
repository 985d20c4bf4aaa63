package codex

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// codexCheckTimeout bounds each command Check runs.
const codexCheckTimeout = 30 * time.Second

// codexAPIKeyEnv is the variable `codex exec` takes an API key from
// (OPENAI_API_KEY is not read by codex 0.171's built-in provider).
const codexAPIKeyEnv = "CODEX_API_KEY"

// Check runs `codex --version` and `codex login status` with the
// environment runs get (env, then cfg.Env on top), without calling the
// model, and reports the version and the auth mode: a login stored by
// `codex login` (ChatGPT or API key), an API key in CODEX_API_KEY, or a
// model provider of config.toml other than OpenAI (which takes its key
// from its own env_key). Jobs cannot run when codex does not start or has
// none of these.
func (Adapter) Check(ctx context.Context, cfg *executor.AgentConfig, env []string) executor.Health {
	runEnv := slices.Clone(env)
	for _, k := range slices.Sorted(maps.Keys(cfg.Env)) {
		runEnv = append(runEnv, k+"="+cfg.Env[k])
	}
	binary := cfg.Binary
	if binary == "" {
		binary = Adapter{}.DefaultBinary()
	}
	var h executor.Health
	path, err := codexLookPath(binary, runEnv)
	if err != nil {
		h.Err = err
		h.Fix = fmt.Sprintf("install the Codex CLI (npm install -g @openai/codex) or set executors.%s.binary", cfg.Name)
		return h
	}
	out, code, err := codexRun(ctx, path, runEnv, "--version")
	if err == nil && code != 0 {
		err = fmt.Errorf("exit %d", code)
	}
	v := strings.TrimSpace(strings.TrimPrefix(codexFirstLine(out), "codex-cli"))
	if err == nil && v == "" {
		err = errors.New("it printed no version")
	}
	if err != nil {
		h.Err = fmt.Errorf("%s --version: %w%s", path, err, codexSuffix(out))
		h.Fix = fmt.Sprintf("check that %s runs, or set executors.%s.binary", path, cfg.Name)
		return h
	}
	h.Version = v

	auth, authErr := codexAuth(ctx, path, runEnv)
	h.Detail = "auth: " + auth
	if authErr != nil {
		h.Err = authErr
		h.Fix = fmt.Sprintf("run `codex login` (or `codex login --with-api-key`) as the user the relay runs as, "+
			"or pass %s to the executor (executors.%s.passEnv), or configure a model_provider in %s",
			codexAPIKeyEnv, cfg.Name, filepath.Join(codexHomeOrDefault(runEnv), "config.toml"))
	}
	return h
}

// codexAuth describes how the runs will authenticate, or says that they
// cannot.
func codexAuth(ctx context.Context, path string, env []string) (string, error) {
	out, code, err := codexRun(ctx, path, env, "login", "status")
	if err != nil {
		return "unknown", fmt.Errorf("%s login status: %w%s", path, err, codexSuffix(out))
	}
	if code == 0 {
		if l := codexFirstLine(out); l != "" {
			return l, nil
		}
		return "logged in", nil
	}
	get := codexGetenv(env)
	if get(codexAPIKeyEnv) != "" {
		return "API key in " + codexAPIKeyEnv, nil
	}
	if p := codexConfiguredProvider(filepath.Join(codexHomeOrDefault(env), "config.toml")); p != "" && p != "openai" {
		return fmt.Sprintf("model provider %q of config.toml (its env_key or auth)", p), nil
	}
	status := codexFirstLine(out)
	if status == "" {
		status = fmt.Sprintf("login status exit %d", code)
	}
	return status, fmt.Errorf("codex is not logged in (%s) and has no API key in %s", status, codexAPIKeyEnv)
}

// codexRun runs the binary with args and returns its output (stdout, then
// stderr, without codex's startup warnings) and exit code; err is for a
// run that could not start or finish.
func codexRun(ctx context.Context, path string, env []string, args ...string) (string, int, error) {
	ctx, cancel := context.WithTimeout(ctx, codexCheckTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = env
	cmd.Dir = os.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &ee) && ctx.Err() == nil:
		code, err = ee.ExitCode(), nil
	case err != nil && ctx.Err() != nil:
		err = fmt.Errorf("%w: %w", err, ctx.Err())
	}
	var lines []string
	for _, l := range strings.Split(stdout.String()+"\n"+stderr.String(), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "WARNING:") {
			continue
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n"), code, err
}

// codexLookPath resolves binary as a run with env would: a path as is,
// a name through env's PATH.
func codexLookPath(binary string, env []string) (string, error) {
	if strings.Contains(binary, "/") {
		if fi, err := os.Stat(binary); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%s is not an executable file", binary)
		}
		return binary, nil
	}
	for _, dir := range filepath.SplitList(codexGetenv(env)("PATH")) {
		if !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, binary)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in PATH", binary)
}

// codexHomeOrDefault is codexHome, or ~/.codex as a last resort.
func codexHomeOrDefault(env []string) string {
	if h := codexHome(env); h != "" {
		return h
	}
	return filepath.Join("~", ".codex")
}

// codexProviderRE matches a top-level `model_provider = "id"` line.
var codexProviderRE = regexp.MustCompile(`^model_provider\s*=\s*["']([^"']+)["']\s*(#.*)?$`)

// codexConfiguredProvider returns the model_provider a config.toml sets
// at its top level (before its first table), or "".
func codexConfiguredProvider(file string) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "[") {
			return ""
		}
		if m := codexProviderRE.FindStringSubmatch(l); m != nil {
			return m[1]
		}
	}
	return ""
}

func codexFirstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(l)
}

func codexSuffix(out string) string {
	if l := codexFirstLine(out); l != "" {
		return ": " + l
	}
	return ""
}
