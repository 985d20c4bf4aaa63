package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
)

var (
	executorNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	envNameRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	prAuthorRE     = regexp.MustCompile(`^[^<>\n]*[^<>\s][^<>\n]* <[^<>\s]+@[^<>\s]+>$`)
)

// Validate checks a Config that WithDefaults has filled in. It reports every
// problem, joined, each naming the field by its YAML path and where the
// value came from when Load knows it.
func (c *Config) Validate() error {
	v := &validator{origins: c.origins}

	v.oneOf("profile", c.Profile, ProfileDev, ProfileStaging, ProfileProd)
	v.oneOf("transport", c.Transport, TransportStdio, TransportHTTP)
	v.nonEmpty("server.dataDir", c.DataDir)
	v.nonEmpty("promptsDir", c.PromptsDir)
	v.nonEmpty("schemataDir", c.SchemataDir)
	v.nonEmpty("policyFile", c.PolicyFile)

	s := c.Server
	v.between("server.maxConcurrency", s.MaxConcurrency, 1, MaxMaxConcurrency)
	v.atLeast("server.leaseTtlSec", s.LeaseTTLSec, MinLeaseTTLSec)
	if v.atLeast("server.heartbeatIntervalSec", s.HeartbeatIntervalSec, 1) && s.HeartbeatIntervalSec >= s.LeaseTTLSec {
		v.add("server.heartbeatIntervalSec", "must be less than server.leaseTtlSec (%d), got %d", s.LeaseTTLSec, s.HeartbeatIntervalSec)
	}
	v.nonEmpty("server.artifactRoot", s.ArtifactRoot)
	v.nonEmpty("server.workspaceRoot", s.WorkspaceRoot)
	v.atLeast("server.idempotencyWindowSec", s.IdempotencyWindowSec, 1)
	v.between("server.admitTimeoutSec", s.AdmitTimeoutSec, 1, MaxAdmitTimeoutSec)
	if s.MaxOutputBytes < 1 {
		v.add("server.maxOutputBytes", "must be at least 1, got %d", s.MaxOutputBytes)
	}

	if v.oneOf("storage.mode", c.Storage.Mode, StorageMemory, StorageSQLite, StoragePostgres) {
		switch c.Storage.Mode {
		case StorageSQLite:
			v.nonEmpty("storage.sqlitePath", c.Storage.SQLitePath)
		case StoragePostgres:
			if c.Storage.PostgresURL == "" {
				// Named by both key and variable: the URL usually holds a
				// password and so lives in the environment.
				v.add("storage.postgresUrl", "required when storage.mode is postgres (or set %s)", EnvPostgresURL)
			}
		}
	}

	if c.Storage.MaxArtifactBytes < 1 {
		v.add("storage.maxArtifactBytes", "must be at least 1, got %d", c.Storage.MaxArtifactBytes)
	}

	c.validateExecutors(v)

	v.oneOf("logging.level", c.Logging.Level, LogLevelDebug, LogLevelInfo, LogLevelWarn, LogLevelError)

	a := c.AskAnswer
	v.between("askAnswer.port", a.Port, 1, 65535)
	if v.nonEmpty("askAnswer.host", a.Host) && a.Auth == AuthNone && !isLoopback(a.Host) {
		v.add("askAnswer.auth", "none is only allowed when askAnswer.host is a loopback address, got host %q", a.Host)
	}
	v.between("askAnswer.longPollTimeoutSec", a.LongPollTimeoutSec, 1, MaxLongPollTimeoutSec)
	v.atLeast("askAnswer.sseHeartbeatSec", a.SSEHeartbeatSec, 1)
	v.oneOf("askAnswer.auth", a.Auth, AuthToken, AuthNone)
	v.atLeast("askAnswer.askTimeoutSec", a.AskTimeoutSec, 1)
	routes := []string{RouteRunner, RouteOrchestrator, RouteHuman}
	if a.Routing.Default != "" {
		v.oneOf("askAnswer.routing.default", a.Routing.Default, routes...)
	}
	for _, t := range sortedKeys(a.Routing.ByType) {
		if v.oneOf("askAnswer.routing.byType", t, AskTypeNames...) {
			v.oneOf("askAnswer.routing.byType."+t, a.Routing.ByType[t], routes...)
		}
	}
	for _, role := range sortedKeys(a.Routing.ByRole) {
		v.oneOf("askAnswer.routing.byRole."+role, a.Routing.ByRole[role], routes...)
	}

	r := a.Runner
	if v.oneOf("askAnswer.runner.provider", r.Provider, ProviderAnthropic, ProviderOpenAI, ProviderSampling, ProviderNone) &&
		r.IsEnabled() && (r.Provider == ProviderAnthropic || r.Provider == ProviderOpenAI) {
		v.nonEmpty("askAnswer.runner.model", r.Model)
	}
	v.atLeast("askAnswer.runner.maxRetries", r.MaxRetries, -1)
	v.atLeast("askAnswer.runner.defaultTimeout", r.DefaultTimeout, 1)
	v.atLeast("askAnswer.runner.cacheTtlSec", r.CacheTTLSec, -1)
	if r.BaseURL != "" {
		if u, err := url.Parse(r.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.add("askAnswer.runner.baseURL", "must be an http or https URL, got %q", r.BaseURL)
		}
	}
	if r.APIKeyEnv != "" && !envNameRE.MatchString(r.APIKeyEnv) {
		v.add("askAnswer.runner.apiKeyEnv", "must be an environment variable name, got %q", r.APIKeyEnv)
	}
	c.validateNotify(v)
	return errors.Join(v.errs...)
}

func (c *Config) validateNotify(v *validator) {
	n := c.Notify
	if n.WebhookSecretEnv != "" && !envNameRE.MatchString(n.WebhookSecretEnv) {
		v.add("notify.webhookSecretEnv", "must be an environment variable name, got %q", n.WebhookSecretEnv)
	}
	if n.WebhookSecretEnv != "" && n.WebhookSecretFile != "" {
		v.add("notify.webhookSecretFile", "set notify.webhookSecretEnv or notify.webhookSecretFile, not both")
	}
	v.atLeast("notify.webhookTimeoutSec", n.WebhookTimeoutSec, 1)
	v.atLeast("notify.webhookMaxAgeSec", n.WebhookMaxAgeSec, 1)
	v.atLeast("notify.webhookRetryMinSec", n.WebhookRetryMinSec, 1)
	if v.atLeast("notify.webhookRetryMaxSec", n.WebhookRetryMaxSec, 1) && n.WebhookRetryMaxSec < n.WebhookRetryMinSec {
		v.add("notify.webhookRetryMaxSec", "must be at least notify.webhookRetryMinSec (%d), got %d", n.WebhookRetryMinSec, n.WebhookRetryMaxSec)
	}
	v.atLeast("notify.prTimeoutSec", n.PRTimeoutSec, 1)
	for key, u := range map[string]string{"notify.ntfyUrl": n.NtfyURL, "notify.slackWebhookUrl": n.SlackWebhookURL, "notify.dashboardUrl": n.DashboardURL} {
		if u == "" {
			continue
		}
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			v.add(key, "must be an http or https URL, got %q", u)
		}
	}
	if n.NtfyURL != "" && strings.Trim(strings.TrimPrefix(strings.TrimPrefix(n.NtfyURL, "https://"), "http://"), "/") == hostOf(n.NtfyURL) {
		v.add("notify.ntfyUrl", "must name a topic: https://ntfy.example/TOPIC, got %q", n.NtfyURL)
	}
	if n.AskWaitingSec != nil && *n.AskWaitingSec < 0 {
		v.add("notify.askWaitingSec", "must be 0 (off) or more, got %d", *n.AskWaitingSec)
	}
	if len(n.PRCommand) == 0 || n.PRCommand[0] == "" {
		v.add("notify.prCommand", "must name the program to run first, e.g. [gh, pr, create, --head, \"{branch}\"]")
	}
	if !prAuthorRE.MatchString(n.PRAuthor) {
		v.add("notify.prAuthor", "must be \"Name <email>\", got %q", n.PRAuthor)
	}
	for i, name := range n.PRPassEnv {
		if !envNameRE.MatchString(name) {
			v.add(fmt.Sprintf("notify.prPassEnv[%d]", i), "must be an environment variable name, got %q", name)
		}
	}
}

func (c *Config) validateExecutors(v *validator) {
	names := c.Executors.Names()
	for _, name := range names {
		e := c.Executors.ByName[name]
		path := "executors." + name
		if !executorNameRE.MatchString(name) {
			v.add(path, "executor names may only hold letters, digits, '_' and '-'")
		}
		switch e.Kind {
		case KindCommand:
			if e.Sandbox != "" && e.Sandbox != SandboxLandlock {
				v.add(path+".sandbox", "must be landlock or empty, got %q", e.Sandbox)
			}
			if len(e.Argv) == 0 {
				v.add(path+".argv", `required for kind command, e.g. argv: [my-agent, "{{prompt_file}}"]`)
			} else if e.Argv[0] == "" {
				v.add(path+".argv[0]", "must name the program to run, got \"\"")
			}
		case KindCodex, KindClaude, KindGemini:
			if e.Sandbox != "" {
				v.add(path+".sandbox", "is for kind command; a %s executor is confined by the agent's own sandbox (execution.sandbox)", e.Kind)
			}
			if len(e.Argv) > 0 {
				v.add(path+".argv", "is for kind command; a %s executor builds its own command line (use binary, model, extraArgs)", e.Kind)
			}
			if e.Kind != KindClaude && (e.PermissionMode != "" || len(e.AllowedTools) > 0 || e.MaxTurns != 0) {
				v.add(path, "permissionMode, allowedTools and maxTurns are claude settings")
			}
			if e.Kind != KindGemini && e.ApprovalMode != "" {
				v.add(path+".approvalMode", "is a gemini setting")
			}
			if e.PermissionMode != "" {
				v.oneOf(path+".permissionMode", e.PermissionMode, "default", "acceptEdits", "plan", "bypassPermissions")
			}
			if e.ApprovalMode != "" {
				v.oneOf(path+".approvalMode", e.ApprovalMode, "default", "auto_edit", "yolo")
			}
			v.atLeast(path+".maxTurns", e.MaxTurns, 0)
		default:
			v.add(path+".kind", "must be %s, %s, %s or %s, got %q", KindCommand, KindCodex, KindClaude, KindGemini, e.Kind)
		}
		v.atLeast(path+".timeoutS", e.TimeoutS, 0)
		for _, k := range slices.Sorted(maps.Keys(e.Env)) {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				v.add(path+".env", "invalid variable name %q", k)
			}
		}
	}
	if d := c.Executors.Default; d != "" {
		if _, ok := c.Executors.ByName[d]; !ok {
			known := "none are defined"
			if len(names) > 0 {
				known = "defined: " + strings.Join(names, ", ")
			}
			v.add("executors.default", "names executor %q, which is not defined (%s)", d, known)
		}
	}
}

// Executor resolves the executor a job asks for: its name and settings. An
// empty name means executors.default. The error wraps ErrNoExecutor when
// nothing applies and ErrUnknownExecutor for a name that is not defined;
// both messages say what to configure.
func (c *Config) Executor(name string) (string, Executor, error) {
	file := filepath.Join(c.ConfigDir, ConfigFileName)
	names := c.Executors.Names()
	if name == "" {
		name = c.Executors.Default
	}
	if name == "" {
		switch len(names) {
		case 0:
			return "", Executor{}, fmt.Errorf("%w: add executors.<name> with kind: command and argv to %s", ErrNoExecutor, file)
		case 1:
			name = names[0]
		default:
			return "", Executor{}, fmt.Errorf("%w: no default among %s; set executors.default in %s or name an executor in the job",
				ErrNoExecutor, strings.Join(names, ", "), file)
		}
	}
	e, ok := c.Executors.ByName[name]
	if !ok {
		if len(names) == 0 {
			return "", Executor{}, fmt.Errorf("%w %q: none are configured; add executors.%s with kind: command and argv to %s",
				ErrUnknownExecutor, name, name, file)
		}
		return "", Executor{}, fmt.Errorf("%w %q (known: %s)", ErrUnknownExecutor, name, strings.Join(names, ", "))
	}
	return name, e.clone(), nil
}

type validator struct {
	origins map[string]string
	errs    []error
}

// add records a problem with path, locating it by the origin of the path or
// of its nearest parent.
func (v *validator) add(path, format string, args ...any) {
	src := ""
	for p := path; p != ""; {
		if s, ok := v.origins[p]; ok {
			src = s
			break
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	v.errs = append(v.errs, &Error{Source: src, Path: path, Msg: fmt.Sprintf(format, args...), Err: ErrInvalid})
}

func (v *validator) oneOf(path, val string, allowed ...string) bool {
	if slices.Contains(allowed, val) {
		return true
	}
	v.add(path, "must be one of %s; got %q", strings.Join(allowed, ", "), val)
	return false
}

func (v *validator) between(path string, val, lo, hi int) bool {
	if val < lo || val > hi {
		v.add(path, "must be between %d and %d, got %d", lo, hi, val)
		return false
	}
	return true
}

func (v *validator) atLeast(path string, val, lo int) bool {
	if val < lo {
		v.add(path, "must be at least %d, got %d", lo, val)
		return false
	}
	return true
}

func (v *validator) nonEmpty(path, val string) bool {
	if val == "" {
		v.add(path, "must not be empty")
		return false
	}
	return true
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Routes of askAnswer.routing.
const (
	RouteRunner       = "runner"
	RouteOrchestrator = "orchestrator"
	RouteHuman        = "human"
)

// AskTypeNames are the ask types askAnswer.routing.byType accepts.
var AskTypeNames = []string{"CLARIFICATION", "RESOURCE_FETCH", "POLICY_DECISION", "APPROVAL", "CHOICE"}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// hostOf returns the host of a URL, or "".
func hostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Host
}
