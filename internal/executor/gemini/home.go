package gemini

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// Environment variables the Gemini CLI reads.
const (
	// envHome replaces the home directory under which gemini keeps
	// .gemini (settings, credentials, sessions).
	envHome = "GEMINI_CLI_HOME"
	// envRestricted, when "true", makes every folder untrusted.
	envRestricted = "GEMINI_RESTRICTED_MODE"
	// envTrust, "true" or "false", trusts or distrusts the workspace.
	envTrust = "GEMINI_CLI_TRUST_WORKSPACE"
)

// Names of the run's side files.
const (
	// RunHomeDir is the directory, in executor.Request.MetaDir, of the
	// run's Gemini home (GEMINI_CLI_HOME).
	RunHomeDir = "gemini-home"
	// PolicyFile is the run's policy file, in RunHomeDir.
	PolicyFile = "relay-policy.toml"
	// MCPServer is the name the relay's MCP server has in the run's
	// settings; its tools are mcp_task-relay_relay_ask and
	// mcp_task-relay_relay_approve.
	MCPServer = "task-relay"
)

const (
	geminiDir    = ".gemini"
	settingsFile = "settings.json"
	// defaultMCPTimeout is gemini's own timeout of an MCP request.
	defaultMCPTimeout = 10 * time.Minute
	// askTimeoutMargin is added to the ask deadline for the MCP timeout,
	// so that the relay's answer (TIMEOUT included) comes first.
	askTimeoutMargin = time.Minute
)

// envLookup returns a lookup of the variables a run of cfg for req gets:
// req.Env over cfg.Env over cfg.BaseEnv (the relay's environment when
// nil), as executor.Agent builds them.
func envLookup(cfg *executor.AgentConfig, req *executor.Request) func(string) string {
	base := cfg.BaseEnv
	if base == nil {
		base = os.Environ()
	}
	return func(key string) string {
		if v, ok := req.Env[key]; ok {
			return v
		}
		if v, ok := cfg.Env[key]; ok {
			return v
		}
		return listLookup(base)(key)
	}
}

// listLookup returns a lookup of env ("KEY=VALUE" entries; the last one
// wins).
func listLookup(env []string) func(string) string {
	return func(key string) string {
		for i := len(env) - 1; i >= 0; i-- {
			if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
				return v
			}
		}
		return ""
	}
}

// userGeminiDir returns the user's .gemini directory as gemini finds it:
// under GEMINI_CLI_HOME, else HOME.
func userGeminiDir(getenv func(string) string) (string, error) {
	home := getenv(envHome)
	if home == "" {
		home = getenv("HOME")
	}
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", fmt.Errorf("no home directory for gemini's settings: %w", err)
		}
	}
	return filepath.Join(home, geminiDir), nil
}

// writeRunHome builds the run's Gemini home in req.MetaDir and returns it.
//
// Gemini reads its MCP servers only from settings files: the user's
// (~/.gemini/settings.json), the workspace's (which would end up in the
// patch) and the system's (GEMINI_CLI_SYSTEM_SETTINGS_PATH, which gemini
// ignores unless root owns the file and every directory above it). So the
// run gets a home of its own: .gemini holds the user's settings with the
// run's added, and a symbolic link to every other entry of the user's
// .gemini (credentials, sessions, extensions, policies…), so that sessions
// land where follow-ups find them. The run's additions:
//
//   - mcpServers.task-relay: the relay's executor endpoint (req.RelayMCPURL)
//     with the job's token from the environment ($TASK_RELAY_TOKEN), a
//     timeout above the ask deadline, and trust, so its tools run without
//     a confirmation;
//   - policyPaths: the user's policies plus the run's policy file, which
//     allows the relay's ask command in the shell and the relay's tools in
//     every mode, and refuses the writing tools in a read-only job;
//   - the job's token is exempt from gemini's environment redaction, so
//     the ask command gets it.
func writeRunHome(cfg *executor.AgentConfig, req *executor.Request, mode string) (string, error) {
	userDir, err := userGeminiDir(envLookup(cfg, req))
	if err != nil {
		return "", err
	}
	home := filepath.Join(req.MetaDir, RunHomeDir)
	// An earlier attempt of the job may have left one.
	if err := os.RemoveAll(home); err != nil {
		return "", fmt.Errorf("run home: %w", err)
	}
	runDir := filepath.Join(home, geminiDir)
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return "", fmt.Errorf("run home: %w", err)
	}
	settings, err := readSettings(filepath.Join(userDir, settingsFile))
	if err != nil {
		return "", err
	}
	if err := linkUserDir(userDir, runDir); err != nil {
		return "", err
	}
	policy := filepath.Join(home, PolicyFile)
	if err := executor.WritePrivate(policy, []byte(runPolicy(req, mode))); err != nil {
		return "", fmt.Errorf("run policy: %w", err)
	}
	addRunSettings(settings, req, userDir, policy)
	data, err := json.MarshalIndent(settings, "", "  ")
	if err != nil {
		return "", fmt.Errorf("run settings: %w", err)
	}
	if err := executor.WritePrivate(filepath.Join(runDir, settingsFile), append(data, '\n')); err != nil {
		return "", fmt.Errorf("run settings: %w", err)
	}
	return home, nil
}

// linkUserDir links every entry of the user's .gemini but its settings
// into runDir. The session store (tmp, history) is created first when
// missing, so that the run's session outlives the run.
func linkUserDir(userDir, runDir string) error {
	for _, d := range []string{"tmp", "history"} {
		if err := os.MkdirAll(filepath.Join(userDir, d), 0o700); err != nil {
			return fmt.Errorf("gemini session store: %w", err)
		}
	}
	entries, err := os.ReadDir(userDir)
	if err != nil {
		return fmt.Errorf("gemini home: %w", err)
	}
	for _, e := range entries {
		if e.Name() == settingsFile {
			continue
		}
		if err := os.Symlink(filepath.Join(userDir, e.Name()), filepath.Join(runDir, e.Name())); err != nil {
			return fmt.Errorf("run home: %w", err)
		}
	}
	return nil
}

// readSettings reads a gemini settings file (JSON with comments); a
// missing file is empty settings.
func readSettings(path string) (map[string]any, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]any{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gemini settings: %w", err)
	}
	settings := map[string]any{}
	if len(bytes.TrimSpace(raw)) == 0 {
		return settings, nil
	}
	if err := json.Unmarshal(stripJSONComments(raw), &settings); err != nil {
		return nil, fmt.Errorf("gemini settings %s: %w", path, err)
	}
	return settings, nil
}

// addRunSettings adds the run's settings to the user's (see writeRunHome).
func addRunSettings(settings map[string]any, req *executor.Request, userDir, policy string) {
	// Policies: giving policyPaths replaces gemini's default user policy
	// directory, so it is named too.
	paths := stringList(settings["policyPaths"])
	if len(paths) == 0 {
		if fi, err := os.Stat(filepath.Join(userDir, "policies")); err == nil && fi.IsDir() {
			paths = append(paths, filepath.Join(userDir, "policies"))
		}
	}
	settings["policyPaths"] = append(paths, policy)

	// The relay's ask command prints nothing until the answer comes;
	// gemini kills a shell command silent for longer than this (300 s by
	// default).
	if req.RelayBinary != "" {
		tools, _ := settings["tools"].(map[string]any)
		if tools == nil {
			tools = map[string]any{}
			settings["tools"] = tools
		}
		shell, _ := tools["shell"].(map[string]any)
		if shell == nil {
			shell = map[string]any{}
			tools["shell"] = shell
		}
		wait := int64(mcpTimeout(req.AskTimeout).Seconds())
		if cur, ok := shell["inactivityTimeout"].(float64); !ok || int64(cur) < wait {
			shell["inactivityTimeout"] = wait
		}
	}

	if req.RelayMCPURL == "" {
		return
	}
	srv := map[string]any{
		"httpUrl":     req.RelayMCPURL,
		"description": "The mcp-task-relay running this job: relay_ask asks a question and waits for the answer; relay_approve asks for an approval.",
		"trust":       true,
		"timeout":     mcpTimeout(req.AskTimeout).Milliseconds(),
	}
	if req.RelayToken != "" {
		// Gemini expands $VAR in settings: the token stays off the disk
		// when the run's environment has it.
		token := req.RelayToken
		if req.Env["TASK_RELAY_TOKEN"] == token {
			token = "${TASK_RELAY_TOKEN}"
		}
		srv["headers"] = map[string]any{"Authorization": "Bearer " + token}
	}
	servers, _ := settings["mcpServers"].(map[string]any)
	if servers == nil {
		servers = map[string]any{}
	}
	servers[MCPServer] = srv
	settings["mcpServers"] = servers

	// A user's allow list of MCP servers would leave the relay's out, an
	// exclusion list might name it.
	mcp, _ := settings["mcp"].(map[string]any)
	if mcp != nil {
		if allowed, ok := mcp["allowed"]; ok {
			if list := stringList(allowed); !slices.Contains(list, MCPServer) {
				mcp["allowed"] = append(list, MCPServer)
			}
		}
		if excluded, ok := mcp["excluded"]; ok {
			mcp["excluded"] = slices.DeleteFunc(stringList(excluded), func(s string) bool { return s == MCPServer })
		}
	}

	security, _ := settings["security"].(map[string]any)
	if security == nil {
		security = map[string]any{}
		settings["security"] = security
	}
	redaction, _ := security["environmentVariableRedaction"].(map[string]any)
	if redaction == nil {
		redaction = map[string]any{}
		security["environmentVariableRedaction"] = redaction
	}
	if allowed := stringList(redaction["allowed"]); !slices.Contains(allowed, "TASK_RELAY_TOKEN") {
		redaction["allowed"] = append(allowed, "TASK_RELAY_TOKEN")
	}
}

// mcpTimeout is the timeout of the relay's MCP requests (and of a silent
// ask command): above the ask deadline, and never below gemini's default.
func mcpTimeout(ask time.Duration) time.Duration {
	return max(ask+askTimeoutMargin, defaultMCPTimeout)
}

// noProxy returns the NO_PROXY the run needs so that the relay's endpoint
// is never reached through a proxy: the current one plus the endpoint's
// host, or "" when it has it already (or there is no endpoint).
//
// Gemini's MCP client also depends on it for long asks: without NO_PROXY
// it fetches with gemini's global dispatcher, which gives up on a response
// whose headers take over 60 s (an answer that takes a minute fails with
// "fetch failed"); with NO_PROXY it uses a proxy-aware dispatcher with
// undici's default of 300 s. (A server that sends progress notifications
// while it waits keeps either alive.)
func noProxy(getenv func(string) string, relayURL string) string {
	u, err := url.Parse(relayURL)
	if relayURL == "" || err != nil || u.Hostname() == "" {
		return ""
	}
	cur := cmp.Or(getenv("NO_PROXY"), getenv("no_proxy"))
	for _, h := range strings.Split(cur, ",") {
		if strings.TrimSpace(h) == u.Hostname() {
			return ""
		}
	}
	if cur == "" {
		return u.Hostname()
	}
	return cur + "," + u.Hostname()
}

// runPolicy is the run's policy file (user tier, so it outranks gemini's
// defaults and the user's own rules of lower priority).
func runPolicy(req *executor.Request, mode string) string {
	var b strings.Builder
	b.WriteString("# The rules of one mcp-task-relay job run (mode " + mode + ").\n")
	if req.RelayBinary != "" {
		// The prompt tells the agent to ask with this command.
		fmt.Fprintf(&b, `
[[rule]]
toolName = "run_shell_command"
commandPrefix = %s
decision = "allow"
priority = 999
`, strconv.Quote(shellQuote(req.RelayBinary)+" ask"))
	}
	if req.RelayMCPURL != "" {
		fmt.Fprintf(&b, `
[[rule]]
toolName = %s
decision = "allow"
priority = 999
`, strconv.Quote("mcp_"+MCPServer+"_*"))
	}
	if req.ReadOnly() {
		b.WriteString(`
[[rule]]
toolName = ["write_file", "replace", "run_shell_command"]
decision = "deny"
priority = 998
denyMessage = "This job is read-only (execution.sandbox): do not change files; report what you would change instead."
`)
	}
	return b.String()
}

// shellQuote quotes s for a POSIX shell when it needs it, as the relay's
// prompt does.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// stringList returns the strings of a JSON array value.
func stringList(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, e := range list {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// stripJSONComments blanks // and /* */ comments outside strings, as
// gemini's settings reader allows them.
func stripJSONComments(b []byte) []byte {
	out := make([]byte, 0, len(b))
	inString, escaped := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			out = append(out, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch {
		case c == '"':
			inString = true
			out = append(out, c)
		case c == '/' && i+1 < len(b) && b[i+1] == '/':
			for i < len(b) && b[i] != '\n' {
				i++
			}
			if i < len(b) {
				out = append(out, '\n')
			}
		case c == '/' && i+1 < len(b) && b[i+1] == '*':
			i += 2
			for i < len(b) && (b[i] != '*' || i+1 >= len(b) || b[i+1] != '/') {
				i++
			}
			i++ // onto the closing slash
			out = append(out, ' ')
		default:
			out = append(out, c)
		}
	}
	return out
}
