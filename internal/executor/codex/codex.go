package codex

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// Adapter drives the OpenAI Codex CLI in its non-interactive mode,
// `codex exec --json`, and reads the JSONL events it prints on stdout.
type Adapter struct{}

var (
	_ executor.Adapter = Adapter{}
	_ executor.Resumer = Adapter{}
	_ executor.Checker = Adapter{}
)

// Codex command-line settings.
const (
	// CodexLastMessageFile is the name, in executor.Request.MetaDir, of the file
	// codex writes its final message to (-o).
	CodexLastMessageFile = "codex-last-message.txt"
	// CodexUsageBaselineFile is the name, in executor.Request.MetaDir, of
	// the file PrepareResume records the resumed thread's token usage in
	// (see Parse).
	CodexUsageBaselineFile = "codex-usage-baseline.json"
	// CodexMCPServer is the name the relay's executor MCP endpoint gets in
	// codex's mcp_servers for a run. It is not "task-relay", the name the
	// README suggests for registering the relay itself (`serve`, stdio) in
	// ~/.codex/config.toml: codex refuses a url on a stdio server, so the
	// same name would break every run of a user who did.
	CodexMCPServer = "task-relay-job"
	// codexTokenEnv is the variable the run's job token is in; codex reads
	// the bearer token of the MCP endpoint from it (bearer_token_env_var),
	// so that the token is never on the command line.
	codexTokenEnv = "TASK_RELAY_TOKEN"
	// codexNetworkAccess lets commands in the workspace-write sandbox reach
	// the network, so that `mcp-task-relay ask` can reach the relay on
	// loopback. The read-only sandbox keeps codex's default (no network);
	// there the agent asks through the MCP endpoint, which codex itself
	// calls, outside the sandbox.
	codexNetworkAccess = "sandbox_workspace_write.network_access=true"
	// codexDefaultAskTimeout is the ask deadline assumed when the request
	// names none: the relay's default (askAnswer.askTimeoutSec).
	codexDefaultAskTimeout = 10 * time.Minute
	// codexAskTimeoutMargin is added to the ask deadline for codex's MCP
	// tool-call timeout: the relay answers an ask that times out itself
	// (status TIMEOUT) a few seconds after its deadline, and codex should
	// get that answer rather than give up first.
	codexAskTimeoutMargin = 30 * time.Second
	// codexMaxPrompt is the longest prompt codex can take: the prompt is one
	// argument, and Linux limits each argument to 128 KiB (MAX_ARG_STRLEN)
	// including its terminating NUL.
	codexMaxPrompt = 128<<10 - 1
	// codexLogLineMax bounds each line of executor.AgentOutput.Log, in runes.
	codexLogLineMax = 200
)

// Sandbox modes of executor.Request.Sandbox, which are codex's own names.
const (
	codexReadOnly       = "read-only"
	codexWorkspaceWrite = "workspace-write"
)

// Kind returns "codex".
func (Adapter) Kind() string { return "codex" }

// DefaultBinary returns "codex".
func (Adapter) DefaultBinary() string { return "codex" }

// Argv returns
//
//	codex exec --json --skip-git-repo-check -C WORKDIR --sandbox MODE
//	  [-c sandbox_workspace_write.network_access=true]
//	  -c approval_policy="never"
//	  [-c mcp_servers.task-relay-job.url="RELAY_MCP_URL"
//	   -c mcp_servers.task-relay-job.bearer_token_env_var="TASK_RELAY_TOKEN"
//	   -c mcp_servers.task-relay-job.tool_timeout_sec=SECONDS
//	   -c mcp_servers.task-relay-job.default_tools_approval_mode="approve"]
//	  [-o META/codex-last-message.txt] [-m MODEL] [EXTRA...]
//	  [resume SESSION_ID] -- PROMPT
//
// The sandbox is the job's execution.sandbox (workspace-write when
// unset). The approval policy comes from its execution.askPolicy (see
// codexApprovalPolicy). When the request names the relay's executor MCP
// endpoint and a job token, the endpoint is configured for this run only
// (nothing is written to the workspace or to CODEX_HOME): codex reads the
// bearer token from TASK_RELAY_TOKEN, which the relay sets; the tool-call
// timeout is the ask deadline (AskTimeout) plus a margin, so that an ask
// answered after minutes still reaches the agent; and its tools need no
// approval (codex would otherwise refuse them under approval "never"),
// which is safe: relay_ask is how the agent asks.
//
// A follow-up job resumes with `codex exec [OPTIONS] resume SESSION_ID
// PROMPT`. The options stay in front of `resume` on purpose: --json,
// --skip-git-repo-check, -o, -c and -m are global to `codex exec` and could
// follow it, but -C and --sandbox are not, and the CLI rejects them after
// `resume` ("unexpected argument"); given before it they set the working
// directory and sandbox of the resumed turn. "--" keeps a prompt that
// starts with "-" or is a subcommand name from being read as anything but
// the prompt.
//
// The prompt is executor.Request.Prompt, else the contents of executor.Request.PromptFile.
// Stdin is /dev/null: codex would append piped stdin to the prompt.
//
// Argv removes the side files an earlier run left in MetaDir (the final
// message, a usage baseline), so that a run which ends without writing one
// is not credited with the old one. Without MetaDir there is no -o; the
// final message then comes from the JSONL events alone.
func (Adapter) Argv(cfg *executor.AgentConfig, req *executor.Request) ([]string, error) {
	sandbox := req.Sandbox
	switch sandbox {
	case "":
		sandbox = codexWorkspaceWrite
	case codexReadOnly, codexWorkspaceWrite:
	default:
		return nil, fmt.Errorf("codex: sandbox %q: want %s or %s", req.Sandbox, codexReadOnly, codexWorkspaceWrite)
	}
	approval, err := codexApprovalPolicy(req.AskPolicy)
	if err != nil {
		return nil, err
	}
	prompt := req.Prompt
	if prompt == "" && req.PromptFile != "" {
		b, err := os.ReadFile(req.PromptFile)
		if err != nil {
			return nil, fmt.Errorf("codex: read prompt: %w", err)
		}
		prompt = string(b)
	}
	if strings.TrimSpace(prompt) == "" {
		return nil, errors.New("codex: empty prompt")
	}
	if runtime.GOOS == "linux" && len(prompt) > codexMaxPrompt {
		return nil, fmt.Errorf("codex: prompt is %d bytes; codex takes it as one argument, at most %d bytes", len(prompt), codexMaxPrompt)
	}

	argv := []string{cfg.Binary, "exec", "--json", "--skip-git-repo-check", "-C", req.Workdir, "--sandbox", sandbox}
	if sandbox == codexWorkspaceWrite {
		argv = append(argv, "-c", codexNetworkAccess)
	}
	argv = append(argv, "-c", "approval_policy="+codexTOMLString(approval))
	if req.RelayMCPURL != "" && req.RelayToken != "" {
		argv = append(argv, codexMCPArgs(req.RelayMCPURL, req.AskTimeout)...)
	}
	if req.MetaDir != "" {
		for _, name := range []string{CodexLastMessageFile, CodexUsageBaselineFile} {
			if err := os.Remove(filepath.Join(req.MetaDir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("codex: remove the %s of an earlier run: %w", name, err)
			}
		}
		argv = append(argv, "-o", filepath.Join(req.MetaDir, CodexLastMessageFile))
	}
	model := req.Model
	if model == "" {
		model = cfg.Model
	}
	if model != "" {
		argv = append(argv, "-m", model)
	}
	argv = append(argv, cfg.ExtraArgs...)
	if req.ResumeSessionID != "" {
		argv = append(argv, "resume", req.ResumeSessionID)
	}
	return append(argv, "--", prompt), nil
}

// codexApprovalPolicy maps a job's execution.askPolicy to codex's
// approval_policy. `codex exec` cannot stop for an approval: whatever
// approval_policy says, codex 0.171 runs exec turns with approval "never"
// (an escalation the sandbox does not allow is refused, and the model is
// told so), and it refuses "untrusted" outright ("no longer supported").
// So every ask policy maps to "never", given explicitly so that a
// user's config.toml cannot make runs fail; the agent asks for approvals
// and decisions through the relay instead (relay_ask, or the relay's ask
// command), where the job's policy and answerers decide. An unknown
// policy is an error.
func codexApprovalPolicy(askPolicy string) (string, error) {
	switch askPolicy {
	case "", "never", "on-request", "on-failure", "untrusted":
		return "never", nil
	}
	return "", fmt.Errorf("codex: askPolicy %q: want untrusted, on-request, on-failure or never", askPolicy)
}

// codexMCPArgs returns the -c options that configure the relay's
// executor MCP endpoint as CodexMCPServer for one run.
func codexMCPArgs(url string, askTimeout time.Duration) []string {
	if askTimeout <= 0 {
		askTimeout = codexDefaultAskTimeout
	}
	secs := int64(math.Ceil((askTimeout + codexAskTimeoutMargin).Seconds()))
	key := "mcp_servers." + CodexMCPServer + "."
	return []string{
		"-c", key + "url=" + codexTOMLString(url),
		"-c", key + "bearer_token_env_var=" + codexTOMLString(codexTokenEnv),
		"-c", key + "tool_timeout_sec=" + strconv.FormatInt(secs, 10),
		"-c", key + "default_tools_approval_mode=" + codexTOMLString("approve"),
	}
}

// codexTOMLString quotes s as a TOML basic string, the form -c values
// are parsed in.
func codexTOMLString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
