package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
	"github.com/mcp-task-relay/mcp-task-relay/internal/role"
)

func newInit() *cobra.Command {
	return newInitWith(os.LookupEnv)
}

// newInitWith builds the init command; lookup reads the environment (for
// TASK_RELAY_CONFIG_DIR), so that tests need not change the process's.
func newInitWith(lookup func(string) (string, bool)) *cobra.Command {
	var (
		dir   string
		force bool
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a starter config directory",
		Long: `init writes a config directory to start from: config.yaml listing every
setting with its default and commented examples of each executor kind,
policy.yaml with example rules, prompts/ with copies of the built-in Answer
Runner roles (edit them to change how asks are answered) and schemata/ with an
example JSON Schema.

The directory is --dir, else TASK_RELAY_CONFIG_DIR, else ./.mcp-task-relay,
which is where serve looks by default. init never overwrites a file unless
--force is given; without it, if any file exists, nothing is written.`,
		Example: `  mcp-task-relay init
  mcp-task-relay init --dir ~/.config/mcp-task-relay`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("dir") {
				if v, ok := lookup(config.EnvConfigDir); ok && v != "" {
					dir = v
				}
			}
			// As config.Load does, so that init writes where serve reads.
			if dir == "~" || strings.HasPrefix(dir, "~/") {
				home, _ := lookup("HOME")
				if home == "" {
					return fmt.Errorf("cannot expand %q: HOME is not set", dir)
				}
				dir = filepath.Join(home, dir[1:])
			}
			return runInit(cmd.OutOrStdout(), dir, force)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", config.DefaultConfigDir, "config directory to write (env TASK_RELAY_CONFIG_DIR)")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite files that already exist")
	return cmd
}

// initFile is one file init writes, by path relative to the config dir.
type initFile struct {
	rel  string
	data []byte
}

// initFiles returns everything init writes, in the order it reports them.
func initFiles() []initFile {
	files := []initFile{
		{config.ConfigFileName, []byte(initConfigYAML)},
		{config.PolicyFileName, []byte(initPolicyYAML)},
	}
	roles := role.BuiltinRoleFiles()
	names := make([]string, 0, len(roles))
	for name := range roles {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		files = append(files, initFile{filepath.Join(config.PromptsDirName, name), roles[name]})
	}
	return append(files,
		initFile{filepath.Join(config.SchemataDirName, "README.md"), []byte(initSchemataReadme)},
		initFile{filepath.Join(config.SchemataDirName, initExampleSchemaName+".json"), []byte(initExampleSchema)},
	)
}

// runInit writes the starter files into dir. Every target is checked
// before the first is written, so that a refusal leaves dir as it was.
func runInit(w io.Writer, dir string, force bool) error {
	if dir == "" {
		return errors.New("--dir must not be empty")
	}
	files := initFiles()

	// Directories init needs must be directories (or not exist yet).
	for _, d := range []string{dir, filepath.Join(dir, config.PromptsDirName), filepath.Join(dir, config.SchemataDirName)} {
		if fi, err := os.Stat(d); err == nil && !fi.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", d)
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("init: %w", err)
		}
	}
	var existing []string
	exists := map[string]bool{}
	for _, f := range files {
		p := filepath.Join(dir, f.rel)
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return fmt.Errorf("init: %w", err)
		case fi.IsDir():
			return fmt.Errorf("%s exists and is a directory; move it away first", p)
		}
		existing = append(existing, p)
		exists[p] = true
	}
	if len(existing) > 0 && !force {
		more := ""
		if n := len(existing) - 1; n > 0 {
			more = fmt.Sprintf(" (and %d more of the files init writes)", n)
		}
		return fmt.Errorf("%s already exists%s; nothing was written; rerun with --force to overwrite", existing[0], more)
	}

	for _, d := range []string{filepath.Join(dir, config.PromptsDirName), filepath.Join(dir, config.SchemataDirName)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("init: %w", err)
		}
	}
	for _, f := range files {
		p := filepath.Join(dir, f.rel)
		if err := writeFileReplacing(p, f.data); err != nil {
			return fmt.Errorf("init: %w", err)
		}
		verb := "created"
		if exists[p] {
			verb = "overwrote"
		}
		if _, err := fmt.Fprintf(w, "%-9s %s\n", verb, p); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, initNextSteps(dir))
	return err
}

// writeFileReplacing writes data to path through a temporary file and a
// rename, so that an interrupted --force leaves each file old or new, never
// cut short. A symlink at path is replaced, not followed.
func writeFileReplacing(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// initNextSteps tells the user what to do after init.
func initNextSteps(dir string) string {
	dirFlag := ""
	if filepath.Clean(dir) != filepath.Clean(config.DefaultConfigDir) {
		dirFlag = " --config-dir " + shellQuote(dir)
	}
	// A client starts the server from its own working directory, so it
	// gets an absolute path unless init wrote the default directory.
	serveFlag := ""
	if abs, err := filepath.Abs(dir); err == nil && dirFlag != "" {
		serveFlag = " --config-dir " + shellQuote(abs)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `
Next steps:
  1. Configure an executor: uncomment one of the examples under "executors:"
     in %s
     and point it at your coding agent or script.
  2. Optionally let the Answer Runner answer executors' questions:
     export ANTHROPIC_API_KEY (or choose askAnswer.runner.provider).
  3. Check the setup:
       mcp-task-relay doctor%s
  4. Add the relay to your MCP client, for example:
       claude mcp add task-relay -- mcp-task-relay serve%s
       codex mcp add task-relay -- mcp-task-relay serve%s
       gemini mcp add task-relay mcp-task-relay serve%s
`, filepath.Join(dir, config.ConfigFileName), dirFlag, serveFlag, serveFlag, serveFlag)
	if serveFlag == "" {
		b.WriteString("     (run these in the directory that holds " + config.DefaultConfigDir + ": serve looks for it in its working directory)\n")
	}
	return b.String()
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:@+,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// initExampleSchemaName is the name roles and asks use for the example
// schema that init writes.
const initExampleSchemaName = "choice"

// initConfigYAML is the config.yaml init writes. Settings that exist in this
// version are given with their defaults (active where the default is a
// fixed value, commented where it is derived from other settings); keys of
// upcoming features are commented examples only. It must load with
// config.Load as written (init_test checks).
const initConfigYAML = `# mcp-task-relay configuration (written by "mcp-task-relay init").
#
# Where a setting comes from, first match wins: command-line flags, then
# TASK_RELAY_* environment variables, then this file, then built-in defaults.
# Unknown keys and values of the wrong type are errors that name the key and
# line. Relative paths are resolved against this directory; ~/ is $HOME.
#
# Active lines below hold the built-in defaults; commented ones show a default
# that is derived from other settings, or an example. Check your changes with
# "mcp-task-relay doctor".

# Deployment profile: dev, staging or prod (--profile, TASK_RELAY_PROFILE).
# Executors see it as TASK_RELAY_PROFILE; policy rules can match it.
# profile: dev

# MCP transport of serve (--transport, TASK_RELAY_TRANSPORT): stdio, or http
# with serve --standalone (the relay service always serves MCP at /mcp).
# transport: stdio

# Service settings: the job engine, the store, the HTTP API and logging are
# shared by every project of the relay service, which reads them from
# service.yaml in its data dir (same keys; "mcp-task-relay daemon status"
# shows where). Here they apply only to "serve --standalone".
# server:
#   # Jobs that run at once, 1 to 256.
#   maxConcurrency: 3
#   # Seconds a worker's lease on a running job lasts without a heartbeat
#   # (at least 5). A job whose lease lapses is retried.
#   leaseTtlSec: 60
#   # Seconds between lease renewals; must be less than leaseTtlSec.
#   # Default: 15, or a quarter of leaseTtlSec when that is smaller.
#   # heartbeatIntervalSec: 15
#   # Base of the paths below (TASK_RELAY_DATA_DIR); it also names the relay
#   # service this project's serve connects to, so it does apply here.
#   # Default: $XDG_DATA_HOME/mcp-task-relay or ~/.local/share/mcp-task-relay.
#   # dataDir: ~/.local/share/mcp-task-relay
#   # Where job artifacts (patch.diff, out.md, logs.txt) are kept.
#   # Default: DATA_DIR/artifacts.
#   # artifactRoot: ~/.local/share/mcp-task-relay/artifacts
#   # Where each job's git workspace is created. Default: DATA_DIR/workspaces.
#   # workspaceRoot: ~/.local/share/mcp-task-relay/workspaces
#   # Keep a job's workspace after it ends, for debugging.
#   keepWorkspaces: false
#   # Seconds a SUCCEEDED job answers a repeated idempotencyKey (24 h).
#   idempotencyWindowSec: 86400
#   # Bytes of executor output kept in logs.txt (head and tail; 8 MiB).
#   maxOutputBytes: 8388608
#   # Seconds the git calls of a submit (resolving repo.url or repo.path) may
#   # take, 1 to 45.
#   admitTimeoutSec: 20

# storage:
#   # Job store: sqlite (a file), postgres (a server several relays can
#   # share) or memory (lost when the relay stops) (--storage, TASK_RELAY_STORAGE).
#   mode: sqlite
#   # The database file (--sqlite, TASK_RELAY_SQLITE_URL).
#   # Default: DATA_DIR/relay.db.
#   # sqlitePath: ~/.local/share/mcp-task-relay/relay.db
#   # Connection string for mode postgres (TASK_RELAY_POSTGRES_URL).
#   # postgresUrl: postgres://relay@localhost/relay

# How each job's workspace is prepared before its executor starts. An
# executor's own workspace section (see below) replaces this one.
# workspace:
#   # Files (globs, relative to the repository) copied from the repository's
#   # working copy into the job's workspace, such as untracked local settings.
#   copyFiles: [".env", "config/local.*.yaml"]
#   # A shell command run in the workspace first; if it fails, the job fails.
#   setup: "npm ci"

# Executors run the jobs; add at least one. "default" names the executor a
# job gets when it names none (default: the only executor, if there is one).
# Every executor has:
#   kind      command, codex, claude or gemini (default: command)
#   env       extra environment variables for the process (default: none)
#   timeoutS  deadline in seconds; a job can only shorten it (default: 1800)
#   passEnv   variables of the relay's environment the executor may see
#             although they look like secrets (*_API_KEY, *_TOKEN, *_SECRET,
#             *_PASSWORD, ...); those are withheld otherwise (default: none)
#   workspace copyFiles and setup for this executor, replacing the
#             top-level workspace section (default: that section)
executors:
  # default: agent
  #
  # kind command runs argv in the job's workspace. argv may use the
  # templates {{prompt}}, {{prompt_file}}, {{workdir}}, {{job_id}} and
  # {{model}}. The program is looked up on PATH, or relative to the workspace
  # when it holds a slash.
  # agent:
  #   kind: command
  #   argv: ["codex", "exec", "--skip-git-repo-check", "{{prompt}}"]
  #   env: {}
  #   timeoutS: 1800
  #   passEnv: [CODEX_API_KEY]
  #
  # kind codex drives the Codex CLI (codex exec).
  # codex:
  #   kind: codex
  #   binary: codex          # the program (default: codex)
  #   model: ""              # default: Codex's own; a job's preferredModel wins
  #   extraArgs: []          # appended to the command line
  #   env: {}
  #   timeoutS: 1800
  #   passEnv: [CODEX_API_KEY]
  #
  # kind claude drives Claude Code (claude -p).
  # claude:
  #   kind: claude
  #   binary: claude         # default: claude
  #   model: ""              # default: Claude Code's own
  #   extraArgs: []
  #   timeoutS: 1800
  #   passEnv: [ANTHROPIC_API_KEY]
  #   permissionMode: acceptEdits   # claude --permission-mode (default: acceptEdits)
  #   allowedTools: ["Read", "Edit", "Write", "Bash(go test:*)"]  # claude --allowedTools
  #                                 # (default: the adapter's list; the ask command is always allowed)
  #   maxTurns: 50                  # claude --max-turns (default: 50)
  #   workspace:
  #     copyFiles: [".env"]
  #     setup: "go mod download"
  #
  # kind gemini drives the Gemini CLI (gemini -p).
  # gemini:
  #   kind: gemini
  #   binary: gemini         # default: gemini
  #   model: ""              # default: Gemini CLI's own
  #   extraArgs: []
  #   timeoutS: 1800
  #   passEnv: [GEMINI_API_KEY]
  #   approvalMode: auto_edit       # gemini --approval-mode (default: auto_edit)

# logging:
#   # debug, info, warn or error; JSON lines on stderr (TASK_RELAY_LOG_LEVEL).
#   level: info

# The Ask/Answer HTTP API, through which executors ask questions while they
# work, and who answers them.
askAnswer:
  # The API's address and limits are service settings (see above):
  # # Address of the API. When the port is taken (another relay on this
  # # machine), a free one is used: executors learn it from ASK_ANSWER_ORIGIN.
  # port: 3415
  # host: 127.0.0.1
  # # Longest long poll for an answer, in seconds (1 to 300).
  # longPollTimeoutSec: 25
  # # Seconds between heartbeat events on the SSE event streams.
  # sseHeartbeatSec: 10
  # # token: bearer tokens required (each executor gets one for its own job);
  # # none: no authentication, allowed only when host is a loopback address.
  # auth: token
  # Deadline in seconds of an ask that sets none and is answered by the
  # orchestrator or a human; at the deadline it is answered TIMEOUT.
  askTimeoutSec: 600
  # Who answers an ask that policy.yaml does not decide: runner (the Answer
  # Runner), orchestrator (the MCP client, with asks_answer) or human. A
  # byRole rule beats a byType rule, which beats default.
  # Default: runner when the Answer Runner is usable, else orchestrator.
  routing:
    # default: runner
    # byType:                 # CLARIFICATION, RESOURCE_FETCH, POLICY_DECISION, APPROVAL, CHOICE
    #   APPROVAL: human
    # byRole:
    #   risk_assessor: orchestrator
  # The Answer Runner: an LLM that answers asks in the role of
  # prompts/role.NAME@vN.yaml.
  runner:
    # TASK_RELAY_ANSWER_RUNNER_ENABLED overrides this.
    enabled: true
    # anthropic, openai (any OpenAI-compatible endpoint: OpenAI, Ollama,
    # vLLM, ...), sampling (MCP sampling through the client) or none.
    provider: anthropic
    # Default: claude-sonnet-4-5 for anthropic; required for openai.
    # model: claude-sonnet-4-5
    # Retries of an answer that fails its output schema; -1: none.
    maxRetries: 1
    # Seconds an ask routed to the runner may take when it sets no timeout.
    defaultTimeout: 60
    # The provider's API endpoint (default: the provider's own).
    # baseURL: http://localhost:11434/v1
    # The environment variable holding the API key.
    # Default: ANTHROPIC_API_KEY for anthropic, OPENAI_API_KEY for openai.
    # apiKeyEnv: ANTHROPIC_API_KEY
    # Seconds the decision cache answers a repeated ask; -1 turns it off.
    cacheTtlSec: 3600

# Role prompt overrides (TASK_RELAY_PROMPTS_DIR), named JSON Schemas
# (TASK_RELAY_SCHEMATA_DIR) and policy rules (TASK_RELAY_POLICY_FILE).
# promptsDir: prompts
# schemataDir: schemata
# policyFile: policy.yaml
`

// initPolicyYAML is the policy.yaml init writes; it must parse with
// policy.ParsePolicy (init_test checks).
const initPolicyYAML = `# Policy rules decide some asks without a model or a person.
#
# When an executor asks something, the rules are tried in order and the first
# whose match conditions all hold decides it:
#   decision: ALLOW     the ask is answered "allowed" (ANSWERED)
#   decision: DENY      the ask is REJECTED, with the reason
#   decision: ESCALATE  the Answer Runner weighs it (role policy_decider)
#   route: runner | orchestrator | human   send it to that answerer
# An ask no rule matches is routed by askAnswer.routing in config.yaml.
#
# match conditions (all optional; a rule without any matches every ask):
#   ask_type:    [CLARIFICATION, RESOURCE_FETCH, POLICY_DECISION, APPROVAL, CHOICE]
#   role:        [policy_decider]        the ask's role
#   prompt:      Go regular expression, found anywhere in the question
#   prompt_glob: glob over the whole question ("*deploy*")
#   facts:       {KEY: glob}; keys: repo, commit_sha, env_profile,
#                policy_version, role, or any fact the executor sent
#                (TASK_RELAY_FACT_<key>)
#
# policy_version is recorded with every decision and shown to executors as
# TASK_RELAY_POLICY_VERSION: change it when you change the rules.
policy_version: "1.0"

rules:
  # Destructive SQL is never approved by a model.
  - name: no-destructive-sql
    match:
      ask_type: [POLICY_DECISION, APPROVAL]
      prompt: '(?i)\b(drop|truncate)\s+(table|database|schema)\b'
    decision: DENY
    reason: dropping or truncating data needs a person, outside the relay

  # Credentials stay with the relay: executors that need a key get it
  # through executors.NAME.passEnv, not by asking for it.
  - name: no-credentials-by-ask
    match:
      ask_type: [RESOURCE_FETCH]
      prompt: '(?i)\b(api[ _-]?keys?|passwords?|secrets?|credentials?|private[ _-]keys?)\b'
    decision: DENY
    reason: credentials are not handed out through asks; configure passEnv instead

  # In production, approvals go to a person (MCP elicitation in the client,
  # or asks_answer / POST /answers).
  - name: prod-approvals-to-a-person
    match:
      ask_type: [APPROVAL]
      facts: {env_profile: prod}
    route: human
`

// initSchemataReadme explains the schemata directory.
const initSchemataReadme = `# schemata

JSON Schemas (draft 2020-12) that Answer Runner answers can be held to. Every
*.json file here, in sub-folders too, is a schema named by its path without
".json": choice.json is "choice", artifacts/plan.json is "artifacts/plan".

Use a schema by name:

- in a role file (prompts/role.NAME@vN.yaml): output_schema: choice
- in an ask: meta.prompt_overrides.output_schema: "choice"

A schema may "$ref" another by relative path ("artifacts/plan.json"); nothing
outside this directory is ever fetched. A file that is not valid JSON or not a
valid schema stops the relay at start-up (while the Answer Runner is on),
naming the file; "mcp-task-relay doctor" checks them too.

choice.json is an example: the answer to a CHOICE ask, one option and why.
`

// initExampleSchema is schemata/choice.json.
const initExampleSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Choice",
  "description": "The answer to a CHOICE ask: the option picked and why.",
  "type": "object",
  "required": ["choice", "reason"],
  "properties": {
    "choice": {"type": "string", "description": "The option picked, exactly as offered."},
    "reason": {"type": "string", "description": "The one reason that decides it."}
  },
  "additionalProperties": false
}
`
