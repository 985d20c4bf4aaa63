// Package config owns the relay's configuration: the config.yaml schema, the
// TASK_RELAY_* environment variables, the built-in defaults, strict parsing
// and validation. Every error names the offending field by its YAML path and,
// where it came from a file, the file and line; or the environment variable
// or flag that set it.
//
// Precedence is flags > environment > config.yaml in the config dir >
// built-in defaults. Load applies all of it; callers that build a Config by
// hand call WithDefaults and then Validate.
//
// The package has no global state and reads the process environment only
// through the getenv function handed to Load (WithDefaults falls back to the
// process environment for the default data dir).
package config

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"
)

// Names of files and directories inside the config dir and the data dir.
const (
	// AppName names the default config and data directories.
	AppName = "mcp-task-relay"
	// ConfigFileName is the main config file inside the config dir.
	ConfigFileName = "config.yaml"
	// PolicyFileName is the policy file inside the config dir.
	PolicyFileName = "policy.yaml"
	// PromptsDirName is the role prompt directory inside the config dir.
	PromptsDirName = "prompts"
	// SchemataDirName is the JSON Schema directory inside the config dir.
	SchemataDirName = "schemata"
	// ArtifactsDirName is the artifact directory inside the data dir.
	ArtifactsDirName = "artifacts"
	// WorkspacesDirName is the workspace directory inside the data dir.
	WorkspacesDirName = "workspaces"
	// SQLiteFileName is the SQLite database file inside the data dir.
	SQLiteFileName = "relay.db"
)

// Known values of the enumerated settings.
const (
	ProfileDev     = "dev"
	ProfileStaging = "staging"
	ProfileProd    = "prod"

	TransportStdio = "stdio"
	// TransportHTTP serves MCP over Streamable HTTP (at /mcp) instead of
	// stdio; the relay service always serves it as well.
	TransportHTTP = "http"

	StorageMemory   = "memory"
	StorageSQLite   = "sqlite"
	StoragePostgres = "postgres"

	// KindCommand runs Executor.Argv as is.
	KindCommand = "command"
	// KindCodex, KindClaude and KindGemini are the built-in coding-agent
	// adapters.
	KindCodex  = "codex"
	KindClaude = "claude"
	KindGemini = "gemini"

	// SandboxLandlock is the landlock sandbox of command executors.
	SandboxLandlock = "landlock"

	LogLevelDebug = "debug"
	LogLevelInfo  = "info"
	LogLevelWarn  = "warn"
	LogLevelError = "error"

	AuthToken = "token"
	AuthNone  = "none"

	ProviderAnthropic = "anthropic"
	ProviderOpenAI    = "openai"
	ProviderSampling  = "sampling"
	ProviderNone      = "none"
)

// Built-in defaults. A zero value in a Config field means "use the default".
const (
	DefaultProfile   = ProfileDev
	DefaultConfigDir = "./.mcp-task-relay"
	DefaultTransport = TransportStdio

	DefaultMaxConcurrency       = 3
	MaxMaxConcurrency           = 256
	DefaultLeaseTTLSec          = 60
	MinLeaseTTLSec              = 5
	DefaultHeartbeatIntervalSec = 15
	DefaultIdempotencyWindowSec = 86400
	DefaultMaxOutputBytes       = int64(8 << 20)
	DefaultAdmitTimeoutSec      = 20
	MaxAdmitTimeoutSec          = 45

	DefaultStorageMode = StorageSQLite
	// DefaultMaxArtifactBytes is the default of storage.maxArtifactBytes.
	DefaultMaxArtifactBytes = 64 << 20

	DefaultExecutorKind     = KindCommand
	DefaultExecutorTimeoutS = 1800

	DefaultLogLevel = LogLevelInfo

	DefaultAskAnswerPort      = 3415
	DefaultAskAnswerHost      = "127.0.0.1"
	DefaultLongPollTimeoutSec = 25
	MaxLongPollTimeoutSec     = 300
	DefaultSSEHeartbeatSec    = 10
	DefaultAskTimeoutSec      = 600
	DefaultAuth               = AuthToken
	DefaultRunnerProvider     = ProviderAnthropic
	DefaultRunnerModel        = "claude-sonnet-4-5"
	DefaultRunnerMaxRetries   = 1
	DefaultRunnerTimeoutSec   = 60
	DefaultRunnerCacheTTLSec  = 3600
	DefaultAnthropicAPIKeyEnv = "ANTHROPIC_API_KEY"
	DefaultOpenAIAPIKeyEnv    = "OPENAI_API_KEY"
)

// Config is the complete relay configuration. The YAML key of each field is
// given in its comment; fields without one are set from flags, environment
// or defaults only.
type Config struct {
	// Profile is the deployment profile: dev, staging or prod. YAML key
	// profile, env TASK_RELAY_PROFILE, flag --profile. Defaults to dev.
	Profile string `yaml:"profile"`
	// ConfigDir is the directory holding config.yaml, policy.yaml, prompts/
	// and schemata/. Env TASK_RELAY_CONFIG_DIR, flag --config-dir. Defaults
	// to ./.mcp-task-relay.
	ConfigDir string `yaml:"-"`
	// Transport is the MCP transport of serve: stdio, or http (Streamable
	// HTTP at /mcp, with serve --standalone). YAML key transport, env
	// TASK_RELAY_TRANSPORT, flag --transport. Defaults to stdio.
	Transport string `yaml:"transport"`
	// DataDir is where the SQLite database, artifacts, workspaces and tokens
	// live unless configured one by one. It is the effective value of
	// Server.DataDir (YAML key server.dataDir, env TASK_RELAY_DATA_DIR);
	// when both are set on a hand-built Config, DataDir wins. WithDefaults
	// sets both to the same value. Defaults to $XDG_DATA_HOME/mcp-task-relay
	// or ~/.local/share/mcp-task-relay (ConfigDir/data if neither resolves).
	DataDir string `yaml:"-"`
	// Server holds the job engine settings. YAML key server.
	Server Server `yaml:"server"`
	// Storage selects the job store. YAML key storage.
	Storage Storage `yaml:"storage"`
	// Executors are the configured executors. YAML key executors. Defaults
	// to none.
	Executors Executors `yaml:"executors"`
	// Workspace bootstraps every job's workspace (executors may override
	// it). YAML key workspace.
	Workspace Workspace `yaml:"workspace"`
	// Logging configures the stderr logger. YAML key logging.
	Logging Logging `yaml:"logging"`
	// AskAnswer configures the Ask/Answer HTTP API and the Answer Runner.
	// YAML key askAnswer.
	AskAnswer AskAnswer `yaml:"askAnswer"`
	// Notify configures job notifications: webhook signing and delivery,
	// and pull requests. YAML key notify.
	Notify Notify `yaml:"notify"`
	// PromptsDir holds role prompt overrides (role.NAME@vN.yaml). YAML key
	// promptsDir, env TASK_RELAY_PROMPTS_DIR. Defaults to ConfigDir/prompts.
	PromptsDir string `yaml:"promptsDir"`
	// SchemataDir holds JSON Schemas. YAML key schemataDir, env
	// TASK_RELAY_SCHEMATA_DIR. Defaults to ConfigDir/schemata.
	SchemataDir string `yaml:"schemataDir"`
	// PolicyFile is the policy rules file. YAML key policyFile, env
	// TASK_RELAY_POLICY_FILE. Defaults to ConfigDir/policy.yaml.
	PolicyFile string `yaml:"policyFile"`

	// origins maps a YAML path to where its value came from ("FILE:LINE",
	// an env var name or a flag), so that Validate can say so.
	origins map[string]string
}

// Server holds the job engine settings.
type Server struct {
	// MaxConcurrency is how many jobs run at once, 1 to 256. YAML key
	// server.maxConcurrency. Defaults to 3.
	MaxConcurrency int `yaml:"maxConcurrency"`
	// LeaseTTLSec is how long a worker's lease on a job lasts without a
	// heartbeat, at least 5. YAML key server.leaseTtlSec. Defaults to 60.
	LeaseTTLSec int `yaml:"leaseTtlSec"`
	// HeartbeatIntervalSec is how often a worker renews its lease; it must
	// be less than LeaseTTLSec. YAML key server.heartbeatIntervalSec.
	// Defaults to 15, or LeaseTTLSec/4 if that is smaller.
	HeartbeatIntervalSec int `yaml:"heartbeatIntervalSec"`
	// ArtifactRoot is where job artifacts are stored. YAML key
	// server.artifactRoot. Defaults to DataDir/artifacts.
	ArtifactRoot string `yaml:"artifactRoot"`
	// WorkspaceRoot is where job workspaces are created. YAML key
	// server.workspaceRoot. Defaults to DataDir/workspaces.
	WorkspaceRoot string `yaml:"workspaceRoot"`
	// KeepWorkspaces keeps a job's workspace after it ends, for debugging.
	// YAML key server.keepWorkspaces. Defaults to false.
	KeepWorkspaces bool `yaml:"keepWorkspaces"`
	// IdempotencyWindowSec is how long a SUCCEEDED job answers a repeated
	// idempotency key. YAML key server.idempotencyWindowSec. Defaults to
	// 86400 (24 h).
	IdempotencyWindowSec int `yaml:"idempotencyWindowSec"`
	// DataDir is the data directory as configured in the file or the
	// environment; see Config.DataDir. YAML key server.dataDir, env
	// TASK_RELAY_DATA_DIR. Defaults to Config.DataDir.
	DataDir string `yaml:"dataDir"`
	// AdmitTimeoutSec bounds the git calls of a submit (resolving the
	// baseline of repo.url or repo.path), 1 to 45, so that jobs_submit
	// answers well within a client's tool-call timeout. YAML key
	// server.admitTimeoutSec. Defaults to 20.
	AdmitTimeoutSec int `yaml:"admitTimeoutSec"`
	// MaxOutputBytes caps the executor output kept in logs.txt. YAML key
	// server.maxOutputBytes. Defaults to 8388608 (8 MiB).
	MaxOutputBytes int64 `yaml:"maxOutputBytes"`
}

// LeaseTTL returns LeaseTTLSec as a duration. Defaults to 60 s.
func (s Server) LeaseTTL() time.Duration {
	return seconds(s.LeaseTTLSec, DefaultLeaseTTLSec)
}

// HeartbeatInterval returns HeartbeatIntervalSec as a duration. Defaults to
// the interval WithDefaults would choose.
func (s Server) HeartbeatInterval() time.Duration {
	return seconds(s.HeartbeatIntervalSec, defaultHeartbeatSec(s.LeaseTTLSec))
}

// AdmitTimeout returns AdmitTimeoutSec as a duration. Defaults to 20 s.
func (s Server) AdmitTimeout() time.Duration {
	return seconds(s.AdmitTimeoutSec, DefaultAdmitTimeoutSec)
}

// IdempotencyWindow returns IdempotencyWindowSec as a duration. Defaults to
// 24 h.
func (s Server) IdempotencyWindow() time.Duration {
	return seconds(s.IdempotencyWindowSec, DefaultIdempotencyWindowSec)
}

// Storage selects the job store.
type Storage struct {
	// Mode is memory, sqlite or postgres. YAML key storage.mode, env
	// TASK_RELAY_STORAGE, flag --storage. Defaults to sqlite.
	Mode string `yaml:"mode"`
	// SQLitePath is the SQLite database file. YAML key storage.sqlitePath,
	// env TASK_RELAY_SQLITE_URL (PATH, file:PATH or sqlite://PATH), flag
	// --sqlite. Defaults to DataDir/relay.db.
	SQLitePath string `yaml:"sqlitePath"`
	// PostgresURL is the PostgreSQL connection string, required when Mode is
	// postgres. YAML key storage.postgresUrl, env TASK_RELAY_POSTGRES_URL.
	// Defaults to empty.
	PostgresURL string `yaml:"postgresUrl"`
	// MaxArtifactBytes caps the bytes of one artifact stored in the
	// database with mode postgres, where every relay sharing it serves
	// it; a larger one is served only by the relay that ran the job.
	// YAML key storage.maxArtifactBytes. Defaults to 64 MiB.
	MaxArtifactBytes int64 `yaml:"maxArtifactBytes"`
}

// Executors are the configured executors. In YAML they form one mapping:
// the key "default" names the default executor, every other key is an
// executor name mapped to its settings:
//
//	executors:
//	  default: codex
//	  codex: {kind: codex}
//	  claude: {kind: command, argv: [claude, -p]}
type Executors struct {
	// Default names the executor used when a job names none. YAML key
	// executors.default. Defaults to the only executor when exactly one is
	// defined, else empty.
	Default string
	// ByName maps executor names to their settings. Names are letters,
	// digits, '_' and '-'; "default" is reserved. Defaults to empty.
	ByName map[string]Executor
}

// Names returns the executor names in sorted order.
func (e Executors) Names() []string {
	names := make([]string, 0, len(e.ByName))
	for name := range e.ByName {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Executor configures one executor.
type Executor struct {
	// Kind is the adapter: command, codex, claude or gemini.
	// YAML key executors.NAME.kind. Defaults to command.
	Kind string `yaml:"kind"`
	// Argv is the command line of a command executor; required for kind
	// command. YAML key executors.NAME.argv. Defaults to empty.
	Argv []string `yaml:"argv"`
	// Env is extra environment for the executor process. YAML key
	// executors.NAME.env. Defaults to empty.
	Env map[string]string `yaml:"env"`
	// TimeoutS is the executor's deadline in seconds. YAML key
	// executors.NAME.timeoutS. Defaults to 1800.
	TimeoutS int `yaml:"timeoutS"`
	// Binary overrides the program of a built-in adapter. YAML key
	// executors.NAME.binary. Defaults to the adapter's own.
	Binary string `yaml:"binary"`
	// Model is the model a built-in adapter asks for. YAML key
	// executors.NAME.model. Defaults to the agent's own.
	Model string `yaml:"model"`
	// ExtraArgs are appended to a built-in adapter's command line. YAML key
	// executors.NAME.extraArgs. Defaults to empty.
	ExtraArgs []string `yaml:"extraArgs"`
	// PassEnv names variables of the relay's environment that the executor
	// may see although they look like secrets (names ending in _API_KEY,
	// _TOKEN, _SECRET, _PASSWORD, ...), which are otherwise withheld. YAML
	// key executors.NAME.passEnv. Defaults to none.
	PassEnv []string `yaml:"passEnv"`
	// PermissionMode is claude's --permission-mode (default, acceptEdits,
	// plan, bypassPermissions). YAML key executors.NAME.permissionMode.
	// Defaults to acceptEdits.
	PermissionMode string `yaml:"permissionMode"`
	// AllowedTools is claude's --allowedTools list; Bash(mcp-task-relay
	// ask:*) is always added. YAML key executors.NAME.allowedTools.
	// Defaults to the adapter's list.
	AllowedTools []string `yaml:"allowedTools"`
	// MaxTurns is claude's --max-turns. YAML key executors.NAME.maxTurns.
	// Defaults to 50.
	MaxTurns int `yaml:"maxTurns"`
	// ApprovalMode is gemini's --approval-mode (default, auto_edit, yolo).
	// YAML key executors.NAME.approvalMode. Defaults to auto_edit.
	ApprovalMode string `yaml:"approvalMode"`
	// Sandbox confines a command executor: landlock (Linux 5.13 or later,
	// no root needed) lets it and its children write only to the job's
	// workspace and temp dirs and connect only to the relay's port; the
	// relay refuses to start where the kernel lacks it. YAML key
	// executors.NAME.sandbox. Defaults to none.
	Sandbox string `yaml:"sandbox"`
	// Workspace overrides the global workspace bootstrap for this
	// executor. YAML key executors.NAME.workspace. Defaults to the global
	// one.
	Workspace *Workspace `yaml:"workspace"`
}

// Workspace configures how a job's workspace is bootstrapped before its
// executor starts.
type Workspace struct {
	// CopyFiles are globs (relative to the source repository) of files to
	// copy into the workspace, such as untracked .env or local config.
	// YAML key workspace.copyFiles. Defaults to none.
	CopyFiles []string `yaml:"copyFiles"`
	// Setup is a shell command run in the workspace before the executor;
	// its failure fails the job. YAML key workspace.setup. Defaults to
	// none.
	Setup string `yaml:"setup"`
}

// Notify configures what a job's notify settings do. The webhook secret
// and the pull-request settings belong to a project; the delivery settings
// (webhookTimeoutSec, webhookMaxAgeSec, webhookRetryMinSec,
// webhookRetryMaxSec) to the relay service.
type Notify struct {
	// WebhookSecretEnv names the environment variable holding the secret
	// that signs the project's webhooks (Standard Webhooks: "whsec_"
	// followed by base64, or any other string of at least 16 bytes used as
	// is). YAML key notify.webhookSecretEnv. Defaults to none.
	WebhookSecretEnv string `yaml:"webhookSecretEnv"`
	// WebhookSecretFile is a file holding that secret instead (relative to
	// the config dir; surrounding white space is ignored). YAML key
	// notify.webhookSecretFile. Defaults to none. Without either, jobs with
	// notify.webhook are refused.
	WebhookSecretFile string `yaml:"webhookSecretFile"`
	// WebhookTimeoutSec bounds one webhook delivery attempt. YAML key
	// notify.webhookTimeoutSec (service). Defaults to 10.
	WebhookTimeoutSec int `yaml:"webhookTimeoutSec"`
	// WebhookMaxAgeSec is how long an undelivered webhook is retried
	// before it is given up on. YAML key notify.webhookMaxAgeSec
	// (service). Defaults to 86400 (24 h).
	WebhookMaxAgeSec int `yaml:"webhookMaxAgeSec"`
	// WebhookRetryMinSec and WebhookRetryMaxSec bound the exponential
	// backoff (with jitter) between attempts. YAML keys
	// notify.webhookRetryMinSec and notify.webhookRetryMaxSec (service).
	// Default to 5 and 3600.
	WebhookRetryMinSec int `yaml:"webhookRetryMinSec"`
	WebhookRetryMaxSec int `yaml:"webhookRetryMaxSec"`
	// PRCommand is the command that opens a pull request for a job with
	// notify.enablePr, run in the repository directory after the relay
	// pushed the branch; placeholders {branch}, {base}, {title},
	// {body_file}, {job_id}, {commit} and {remote}. YAML key
	// notify.prCommand. Defaults to gh pr create --head {branch} --base
	// {base} --title {title} --body-file {body_file}.
	PRCommand []string `yaml:"prCommand"`
	// PRTimeoutSec bounds the commit, push and PR command together. YAML
	// key notify.prTimeoutSec. Defaults to 120.
	PRTimeoutSec int `yaml:"prTimeoutSec"`
	// PRAuthor is the author and committer of the relay's commit, as
	// "Name <email>". YAML key notify.prAuthor. Defaults to
	// mcp-task-relay <mcp-task-relay@localhost>.
	PRAuthor string `yaml:"prAuthor"`
	// PRPassEnv names variables (such as GH_TOKEN) that git push and the
	// PR command may see although they look like secrets. YAML key
	// notify.prPassEnv. Defaults to none.
	PRPassEnv []string `yaml:"prPassEnv"`
	// NtfyURL is an ntfy topic URL (https://ntfy.example/TOPIC) that
	// receives a notification when a job of the project ends and when one
	// of its asks waits for a human or the orchestrator longer than
	// AskWaitingSec; asks for approval carry Approve and Reject buttons.
	// YAML key notify.ntfyUrl. Defaults to none.
	NtfyURL string `yaml:"ntfyUrl"`
	// SlackWebhookURL is a Slack-compatible incoming webhook URL that
	// receives the same notifications. YAML key notify.slackWebhookUrl.
	// Defaults to none.
	SlackWebhookURL string `yaml:"slackWebhookUrl"`
	// AskWaitingSec is how long an ask routed to a human or the
	// orchestrator waits before it is notified (ntfy, Slack and the
	// signed notify.webhook of its job); 0 turns these notifications
	// off. YAML key notify.askWaitingSec. Defaults to 300.
	AskWaitingSec *int `yaml:"askWaitingSec"`
	// DashboardURL is the dashboard's base URL that notifications link
	// to (and whose action buttons they POST to), for a relay reached
	// through another name. YAML key notify.dashboardUrl. Defaults to the
	// relay's own HTTP origin.
	DashboardURL string `yaml:"dashboardUrl"`
}

// DefaultAskWaitingSec is the default of notify.askWaitingSec.
const DefaultAskWaitingSec = 300

// AskWaiting returns AskWaitingSec as a duration (zero: off). Defaults
// to 5 min.
func (n Notify) AskWaiting() time.Duration {
	if n.AskWaitingSec == nil {
		return DefaultAskWaitingSec * time.Second
	}
	return time.Duration(*n.AskWaitingSec) * time.Second
}

// Notify defaults.
const (
	DefaultWebhookTimeoutSec  = 10
	DefaultWebhookMaxAgeSec   = 86400
	DefaultWebhookRetryMinSec = 5
	DefaultWebhookRetryMaxSec = 3600
	DefaultPRTimeoutSec       = 120
	DefaultPRAuthor           = "mcp-task-relay <mcp-task-relay@localhost>"
)

// DefaultPRCommand is the default of notify.prCommand.
var DefaultPRCommand = []string{"gh", "pr", "create", "--head", "{branch}", "--base", "{base}", "--title", "{title}", "--body-file", "{body_file}"}

// HasWebhookSecret reports whether a webhook secret is configured.
func (n Notify) HasWebhookSecret() bool { return n.WebhookSecretEnv != "" || n.WebhookSecretFile != "" }

// WebhookTimeout returns WebhookTimeoutSec as a duration. Defaults to 10 s.
func (n Notify) WebhookTimeout() time.Duration {
	return seconds(n.WebhookTimeoutSec, DefaultWebhookTimeoutSec)
}

// WebhookMaxAge returns WebhookMaxAgeSec as a duration. Defaults to 24 h.
func (n Notify) WebhookMaxAge() time.Duration {
	return seconds(n.WebhookMaxAgeSec, DefaultWebhookMaxAgeSec)
}

// WebhookRetryMin returns WebhookRetryMinSec as a duration. Defaults to 5 s.
func (n Notify) WebhookRetryMin() time.Duration {
	return seconds(n.WebhookRetryMinSec, DefaultWebhookRetryMinSec)
}

// WebhookRetryMax returns WebhookRetryMaxSec as a duration. Defaults to 1 h.
func (n Notify) WebhookRetryMax() time.Duration {
	return seconds(n.WebhookRetryMaxSec, DefaultWebhookRetryMaxSec)
}

// PRTimeout returns PRTimeoutSec as a duration. Defaults to 2 min.
func (n Notify) PRTimeout() time.Duration {
	return seconds(n.PRTimeoutSec, DefaultPRTimeoutSec)
}

// Timeout returns TimeoutS as a duration. Defaults to 30 min.
func (e Executor) Timeout() time.Duration {
	return seconds(e.TimeoutS, DefaultExecutorTimeoutS)
}

// Logging configures the stderr logger.
type Logging struct {
	// Level is debug, info, warn or error. YAML key logging.level, env
	// TASK_RELAY_LOG_LEVEL. Defaults to info.
	Level string `yaml:"level"`
}

// AskAnswer configures the Ask/Answer HTTP API and the Answer Runner.
type AskAnswer struct {
	// Port is the HTTP API port. YAML key askAnswer.port. Defaults to 3415.
	Port int `yaml:"port"`
	// Host is the HTTP API bind address. YAML key askAnswer.host. Defaults
	// to 127.0.0.1.
	Host string `yaml:"host"`
	// LongPollTimeoutSec caps GET /asks/{id}/answer?wait=, 1 to 300. YAML
	// key askAnswer.longPollTimeoutSec. Defaults to 25.
	LongPollTimeoutSec int `yaml:"longPollTimeoutSec"`
	// SSEHeartbeatSec is the interval of SSE heartbeat events. YAML key
	// askAnswer.sseHeartbeatSec. Defaults to 10.
	SSEHeartbeatSec int `yaml:"sseHeartbeatSec"`
	// Auth is token (bearer tokens required) or none (loopback hosts only).
	// YAML key askAnswer.auth. Defaults to token.
	Auth string `yaml:"auth"`
	// AllowedHosts are extra Host header values ("name" or "name:port")
	// the HTTP API accepts besides its own loopback names and bind
	// address, for a tunnel or proxy in front of it. YAML key
	// askAnswer.allowedHosts. Defaults to none.
	AllowedHosts []string `yaml:"allowedHosts"`
	// AllowedOrigins are extra browser origins (such as
	// http://localhost:6274) allowed to call the HTTP API besides its own.
	// YAML key askAnswer.allowedOrigins. Defaults to none.
	AllowedOrigins []string `yaml:"allowedOrigins"`
	// Runner configures the Answer Runner. YAML key askAnswer.runner.
	Runner Runner `yaml:"runner"`
	// AskTimeoutSec is the deadline of an ask that sets no
	// constraints.timeout_s and is answered by the orchestrator or a human;
	// at the deadline the ask is answered TIMEOUT. YAML key
	// askAnswer.askTimeoutSec. Defaults to 600.
	AskTimeoutSec int `yaml:"askTimeoutSec"`
	// Routing picks who answers each ask. YAML key askAnswer.routing.
	Routing Routing `yaml:"routing"`
}

// Routing picks who answers each ask: runner (the Answer Runner),
// orchestrator (the MCP client, through asks_answer) or human. A rule for
// the ask's role wins over one for its type, which wins over Default.
type Routing struct {
	// Default is the route of asks no rule matches. YAML key
	// askAnswer.routing.default. Defaults to runner when the Answer Runner
	// is available, else orchestrator.
	Default string `yaml:"default"`
	// ByType maps ask types (CLARIFICATION, RESOURCE_FETCH,
	// POLICY_DECISION, APPROVAL, CHOICE) to routes. YAML key
	// askAnswer.routing.byType. Defaults to none.
	ByType map[string]string `yaml:"byType"`
	// ByRole maps role ids to routes. YAML key askAnswer.routing.byRole.
	// Defaults to none.
	ByRole map[string]string `yaml:"byRole"`
}

// AskTimeout returns AskTimeoutSec as a duration. Defaults to 10 min.
func (a AskAnswer) AskTimeout() time.Duration {
	return seconds(a.AskTimeoutSec, DefaultAskTimeoutSec)
}

// LongPollTimeout returns LongPollTimeoutSec as a duration. Defaults to 25 s.
func (a AskAnswer) LongPollTimeout() time.Duration {
	return seconds(a.LongPollTimeoutSec, DefaultLongPollTimeoutSec)
}

// SSEHeartbeat returns SSEHeartbeatSec as a duration. Defaults to 10 s.
func (a AskAnswer) SSEHeartbeat() time.Duration {
	return seconds(a.SSEHeartbeatSec, DefaultSSEHeartbeatSec)
}

// Runner configures the Answer Runner.
type Runner struct {
	// Enabled turns the Answer Runner on; nil means the default. YAML key
	// askAnswer.runner.enabled, env TASK_RELAY_ANSWER_RUNNER_ENABLED
	// (true/false/1/0). Defaults to true.
	Enabled *bool `yaml:"enabled"`
	// Provider is anthropic, openai (any OpenAI-compatible endpoint),
	// sampling (MCP sampling through the client) or none. YAML key
	// askAnswer.runner.provider. Defaults to anthropic.
	Provider string `yaml:"provider"`
	// Model is the model the runner asks for; required for provider openai.
	// YAML key askAnswer.runner.model. Defaults to claude-sonnet-4-5 for
	// provider anthropic, else empty.
	Model string `yaml:"model"`
	// MaxRetries is how often an invalid answer is retried; -1 means never.
	// YAML key askAnswer.runner.maxRetries. Defaults to 1.
	MaxRetries int `yaml:"maxRetries"`
	// DefaultTimeout is an ask's deadline in seconds when it sets none. YAML
	// key askAnswer.runner.defaultTimeout. Defaults to 60.
	DefaultTimeout int `yaml:"defaultTimeout"`
	// BaseURL overrides the provider's API endpoint (http or https). YAML
	// key askAnswer.runner.baseURL. Defaults to the provider's own.
	BaseURL string `yaml:"baseURL"`
	// APIKeyEnv names the environment variable holding the API key. YAML key
	// askAnswer.runner.apiKeyEnv. Defaults to ANTHROPIC_API_KEY for provider
	// anthropic and OPENAI_API_KEY for openai, else empty.
	APIKeyEnv string `yaml:"apiKeyEnv"`
	// CacheTTLSec is how long the decision cache reuses an answer; 0 means
	// the default, -1 turns the cache off. YAML key
	// askAnswer.runner.cacheTtlSec. Defaults to 3600.
	CacheTTLSec int `yaml:"cacheTtlSec"`
}

// CacheTTL returns CacheTTLSec as a duration, 0 when the cache is off.
// Defaults to 1 h.
func (r Runner) CacheTTL() time.Duration {
	if r.CacheTTLSec < 0 {
		return 0
	}
	return seconds(r.CacheTTLSec, DefaultRunnerCacheTTLSec)
}

// IsEnabled reports whether the Answer Runner is on. Defaults to true.
func (r Runner) IsEnabled() bool {
	return r.Enabled == nil || *r.Enabled
}

// Retries returns how many retries MaxRetries allows: -1 means none.
// Defaults to 1.
func (r Runner) Retries() int {
	switch {
	case r.MaxRetries < 0:
		return 0
	case r.MaxRetries == 0:
		return DefaultRunnerMaxRetries
	}
	return r.MaxRetries
}

// Timeout returns DefaultTimeout as a duration. Defaults to 60 s.
func (r Runner) Timeout() time.Duration {
	return seconds(r.DefaultTimeout, DefaultRunnerTimeoutSec)
}

// WithDefaults returns a copy of c with every zero field set to its default.
// It does not modify c.
func (c *Config) WithDefaults() *Config {
	out := c.clone()
	out.Profile = or(out.Profile, DefaultProfile)
	out.ConfigDir = or(out.ConfigDir, DefaultConfigDir)
	out.Transport = or(out.Transport, DefaultTransport)

	out.DataDir = or(out.DataDir, out.Server.DataDir)
	if out.DataDir == "" {
		out.DataDir = DefaultDataDir(os.LookupEnv)
	}
	if out.DataDir == "" {
		out.DataDir = filepath.Join(out.ConfigDir, "data")
	}
	out.Server.DataDir = out.DataDir

	out.PromptsDir = or(out.PromptsDir, filepath.Join(out.ConfigDir, PromptsDirName))
	out.SchemataDir = or(out.SchemataDir, filepath.Join(out.ConfigDir, SchemataDirName))
	out.PolicyFile = or(out.PolicyFile, filepath.Join(out.ConfigDir, PolicyFileName))

	s := &out.Server
	s.MaxConcurrency = or(s.MaxConcurrency, DefaultMaxConcurrency)
	s.LeaseTTLSec = or(s.LeaseTTLSec, DefaultLeaseTTLSec)
	s.HeartbeatIntervalSec = or(s.HeartbeatIntervalSec, defaultHeartbeatSec(s.LeaseTTLSec))
	s.ArtifactRoot = or(s.ArtifactRoot, filepath.Join(out.DataDir, ArtifactsDirName))
	s.WorkspaceRoot = or(s.WorkspaceRoot, filepath.Join(out.DataDir, WorkspacesDirName))
	s.IdempotencyWindowSec = or(s.IdempotencyWindowSec, DefaultIdempotencyWindowSec)
	s.MaxOutputBytes = or(s.MaxOutputBytes, DefaultMaxOutputBytes)
	s.AdmitTimeoutSec = or(s.AdmitTimeoutSec, DefaultAdmitTimeoutSec)

	out.Storage.Mode = or(out.Storage.Mode, DefaultStorageMode)
	if out.Storage.MaxArtifactBytes == 0 {
		out.Storage.MaxArtifactBytes = DefaultMaxArtifactBytes
	}
	out.Storage.SQLitePath = or(out.Storage.SQLitePath, filepath.Join(out.DataDir, SQLiteFileName))

	for name, e := range out.Executors.ByName {
		e.Kind = or(e.Kind, DefaultExecutorKind)
		e.TimeoutS = or(e.TimeoutS, DefaultExecutorTimeoutS)
		out.Executors.ByName[name] = e
	}
	if out.Executors.Default == "" && len(out.Executors.ByName) == 1 {
		out.Executors.Default = out.Executors.Names()[0]
	}

	out.Logging.Level = or(out.Logging.Level, DefaultLogLevel)

	n := &out.Notify
	n.WebhookTimeoutSec = or(n.WebhookTimeoutSec, DefaultWebhookTimeoutSec)
	n.WebhookMaxAgeSec = or(n.WebhookMaxAgeSec, DefaultWebhookMaxAgeSec)
	n.WebhookRetryMinSec = or(n.WebhookRetryMinSec, DefaultWebhookRetryMinSec)
	n.WebhookRetryMaxSec = or(n.WebhookRetryMaxSec, DefaultWebhookRetryMaxSec)
	n.PRTimeoutSec = or(n.PRTimeoutSec, DefaultPRTimeoutSec)
	n.PRAuthor = or(n.PRAuthor, DefaultPRAuthor)
	if len(n.PRCommand) == 0 {
		n.PRCommand = slices.Clone(DefaultPRCommand)
	}

	a := &out.AskAnswer
	a.Port = or(a.Port, DefaultAskAnswerPort)
	a.Host = or(a.Host, DefaultAskAnswerHost)
	a.LongPollTimeoutSec = or(a.LongPollTimeoutSec, DefaultLongPollTimeoutSec)
	a.SSEHeartbeatSec = or(a.SSEHeartbeatSec, DefaultSSEHeartbeatSec)
	a.Auth = or(a.Auth, DefaultAuth)
	a.AskTimeoutSec = or(a.AskTimeoutSec, DefaultAskTimeoutSec)

	r := &a.Runner
	if r.Enabled == nil {
		enabled := true
		r.Enabled = &enabled
	}
	r.Provider = or(r.Provider, DefaultRunnerProvider)
	switch r.Provider {
	case ProviderAnthropic:
		r.Model = or(r.Model, DefaultRunnerModel)
		r.APIKeyEnv = or(r.APIKeyEnv, DefaultAnthropicAPIKeyEnv)
	case ProviderOpenAI:
		r.APIKeyEnv = or(r.APIKeyEnv, DefaultOpenAIAPIKeyEnv)
	}
	r.MaxRetries = or(r.MaxRetries, DefaultRunnerMaxRetries)
	r.DefaultTimeout = or(r.DefaultTimeout, DefaultRunnerTimeoutSec)
	return out
}

// DefaultDataDir returns the default data directory:
// $XDG_DATA_HOME/mcp-task-relay if XDG_DATA_HOME is an absolute path, else
// $HOME/.local/share/mcp-task-relay, else "". getenv looks up a variable;
// nil means the process environment.
func DefaultDataDir(getenv func(string) (string, bool)) string {
	if getenv == nil {
		getenv = os.LookupEnv
	}
	if xdg, _ := getenv("XDG_DATA_HOME"); xdg != "" && filepath.IsAbs(xdg) {
		return filepath.Join(xdg, AppName)
	}
	if home, _ := getenv("HOME"); home != "" {
		return filepath.Join(home, ".local", "share", AppName)
	}
	return ""
}

// clone returns a deep copy of c.
func (c *Config) clone() *Config {
	out := *c
	out.AskAnswer.Runner.Enabled = clonePtr(c.AskAnswer.Runner.Enabled)
	out.Workspace.CopyFiles = slices.Clone(c.Workspace.CopyFiles)
	out.Notify.PRCommand = slices.Clone(c.Notify.PRCommand)
	out.Notify.PRPassEnv = slices.Clone(c.Notify.PRPassEnv)
	out.AskAnswer.AllowedHosts = slices.Clone(c.AskAnswer.AllowedHosts)
	out.AskAnswer.AllowedOrigins = slices.Clone(c.AskAnswer.AllowedOrigins)
	out.AskAnswer.Routing.ByType = maps.Clone(c.AskAnswer.Routing.ByType)
	out.AskAnswer.Routing.ByRole = maps.Clone(c.AskAnswer.Routing.ByRole)
	if c.Executors.ByName != nil {
		out.Executors.ByName = make(map[string]Executor, len(c.Executors.ByName))
		for name, e := range c.Executors.ByName {
			out.Executors.ByName[name] = e.clone()
		}
	}
	if c.origins != nil {
		out.origins = make(map[string]string, len(c.origins))
		for k, v := range c.origins {
			out.origins[k] = v
		}
	}
	return &out
}

func (e Executor) clone() Executor {
	e.Argv = slices.Clone(e.Argv)
	e.ExtraArgs = slices.Clone(e.ExtraArgs)
	e.PassEnv = slices.Clone(e.PassEnv)
	e.AllowedTools = slices.Clone(e.AllowedTools)
	if e.Workspace != nil {
		w := *e.Workspace
		w.CopyFiles = slices.Clone(w.CopyFiles)
		e.Workspace = &w
	}
	if e.Env != nil {
		env := make(map[string]string, len(e.Env))
		for k, v := range e.Env {
			env[k] = v
		}
		e.Env = env
	}
	return e
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// or returns v, or def if v is the zero value.
func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func seconds(n, def int) time.Duration {
	return time.Duration(or(n, def)) * time.Second
}

// defaultHeartbeatSec keeps the default heartbeat below a short lease.
func defaultHeartbeatSec(leaseTTLSec int) int {
	lease := or(leaseTTLSec, DefaultLeaseTTLSec)
	if quarter := max(lease/4, 1); quarter < DefaultHeartbeatIntervalSec {
		return quarter
	}
	return DefaultHeartbeatIntervalSec
}
