package gemini

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// Auth types of gemini's security.auth.selectedType.
const (
	authAPIKey  = "gemini-api-key"
	authVertex  = "vertex-ai"
	authOAuth   = "oauth-personal"
	authCompute = "compute-default-credentials"
	authGateway = "gateway"
)

// Check runs `gemini --version` and checks, without calling the model,
// what jobs need: an auth mode with its credentials (from the settings
// and environment the runs get), and that workspaces will be trusted
// (GEMINI_CLI_TRUST_WORKSPACE=true, which GEMINI_RESTRICTED_MODE=true
// overrides). env is the relay's environment for the executor; cfg.Env
// goes on top.
func (Adapter) Check(ctx context.Context, cfg *executor.AgentConfig, env []string) executor.Health {
	getenv := func(k string) string {
		if v, ok := cfg.Env[k]; ok {
			return v
		}
		return listLookup(env)(k)
	}
	runEnv := append(append([]string(nil), env...), envList(cfg.Env)...)
	var h executor.Health
	out, err := runVersion(ctx, cfg.Binary, runEnv)
	if err != nil {
		h.Err = err
		h.Fix = fmt.Sprintf("install the Gemini CLI (npm install -g @google/gemini-cli) or set executors.%s.binary", cfg.Name)
		return h
	}
	h.Version = out
	var details []string

	auth := checkAuth(getenv)
	trust := checkTrust(getenv)
	details = append(details, "auth "+auth.detail, trust.detail)
	h.Detail = strings.Join(details, "; ")
	for _, f := range []finding{trust, auth} {
		if f.err != nil {
			h.Err, h.Fix = f.err, f.fix
			break
		}
	}
	return h
}

// finding is what one check found: a detail, and an error with its fix.
type finding struct {
	detail, fix string
	err         error
}

// runVersion runs `gemini --version` and returns its output.
func runVersion(ctx context.Context, binary string, env []string) (string, error) {
	cmd := exec.CommandContext(ctx, binary, "--version")
	// Without relaunching itself (to raise its heap limit) gemini starts in
	// half the time; --version needs no heap.
	cmd.Env = append(env, "GEMINI_CLI_NO_RELAUNCH=true")
	cmd.Dir = os.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errorText(strings.Split(stderr.String(), "\n")))
		if msg != "" {
			return "", fmt.Errorf("%s --version: %w: %s", binary, err, msg)
		}
		return "", fmt.Errorf("%s --version: %w", binary, err)
	}
	v := strings.TrimSpace(stdout.String())
	if i := strings.LastIndexByte(v, '\n'); i >= 0 {
		v = strings.TrimSpace(v[i+1:])
	}
	if v == "" {
		return "", fmt.Errorf("%s --version printed nothing", binary)
	}
	return v, nil
}

// checkAuth describes the auth mode the runs will use, and says what is
// missing for it. The mode is the user settings' selectedType, else what
// gemini picks from the environment (GEMINI_API_KEY, Vertex AI variables,
// a base URL).
func checkAuth(getenv func(string) string) finding {
	dir, err := userGeminiDir(getenv)
	if err != nil {
		return finding{detail: "unknown", err: err, fix: "set HOME for the relay"}
	}
	settingsPath := filepath.Join(dir, settingsFile)
	settings, err := readSettings(settingsPath)
	if err != nil {
		return finding{detail: "unknown", err: err, fix: "correct " + settingsPath}
	}
	security, _ := settings["security"].(map[string]any)
	authSettings, _ := security["auth"].(map[string]any)
	selected, _ := authSettings["selectedType"].(string)
	switch {
	case selected == "" && getenv("GEMINI_API_KEY") != "":
		selected = authAPIKey
	case selected == "" && getenv("GOOGLE_GENAI_USE_VERTEXAI") == "true":
		selected = authVertex
	case selected == "" && getenv("GOOGLE_GEMINI_BASE_URL") != "":
		selected = authGateway
	}
	passFix := func(v string) string {
		return fmt.Sprintf("pass %s to the executor (executors.NAME.passEnv: [%s]) or set it in executors.NAME.env", v, v)
	}
	switch selected {
	case "":
		return finding{detail: "none", err: errors.New("gemini has no auth mode: headless runs fail"),
			fix: fmt.Sprintf("run gemini once interactively to log in, or set security.auth.selectedType in %s (gemini-api-key with GEMINI_API_KEY)", settingsPath)}
	case authAPIKey:
		if getenv("GEMINI_API_KEY") == "" {
			return finding{detail: selected, err: errors.New("auth gemini-api-key, but GEMINI_API_KEY is not in the executor's environment"),
				fix: passFix("GEMINI_API_KEY")}
		}
		if base := getenv("GOOGLE_GEMINI_BASE_URL"); base != "" {
			return finding{detail: selected + " (GEMINI_API_KEY, base URL " + base + ")"}
		}
		return finding{detail: selected + " (GEMINI_API_KEY)"}
	case authVertex:
		if getenv("GOOGLE_API_KEY") == "" && (getenv("GOOGLE_CLOUD_PROJECT") == "" || getenv("GOOGLE_CLOUD_LOCATION") == "") {
			return finding{detail: selected, err: errors.New("auth vertex-ai needs GOOGLE_API_KEY, or GOOGLE_CLOUD_PROJECT and GOOGLE_CLOUD_LOCATION"),
				fix: passFix("GOOGLE_API_KEY")}
		}
	case authOAuth:
		if _, err := os.Stat(filepath.Join(dir, "oauth_creds.json")); err != nil {
			return finding{detail: selected, err: fmt.Errorf("auth oauth-personal, but there are no cached credentials in %s", dir),
				fix: "run gemini once interactively to log in"}
		}
		return finding{detail: selected + " (cached credentials)"}
	}
	return finding{detail: selected}
}

// checkTrust says whether runs will trust their workspace: every run
// sets GEMINI_CLI_TRUST_WORKSPACE=true, which only GEMINI_RESTRICTED_MODE
// overrides.
func checkTrust(getenv func(string) string) finding {
	if getenv(envRestricted) == "true" {
		return finding{detail: "workspaces untrusted",
			err: errors.New(envRestricted + "=true makes every workspace untrusted: headless runs fail with exit 55"),
			fix: "unset " + envRestricted + " for the executor"}
	}
	return finding{detail: "workspaces trusted per run (" + envTrust + "=true)"}
}

func envList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}
