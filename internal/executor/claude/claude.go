package claude

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// Claude Code defaults and the names the relay gives it.
const (
	// ClaudeDefaultPermissionMode is claude's --permission-mode when neither
	// the job's askPolicy nor the configuration names one: edits inside
	// the workspace are accepted, anything else outside the allowed tools
	// goes to the permission prompt tool (relay_approve).
	ClaudeDefaultPermissionMode = "acceptEdits"
	// ClaudeReadOnlyPermissionMode is the mode of read-only jobs: claude
	// never asks, and denies every tool call that the allowed tools do not
	// cover.
	ClaudeReadOnlyPermissionMode = "dontAsk"
	// ClaudeDefaultMaxTurns is claude's --max-turns when the configuration
	// names none.
	ClaudeDefaultMaxTurns = 50
	// ClaudeAskRule is the allowed-tools rule that lets claude run the
	// relay's ask command found on PATH; it is always allowed, and so is
	// the same command by the relay binary's absolute path.
	ClaudeAskRule = "Bash(mcp-task-relay ask:*)"
	// ClaudeMCPServer is the name of the relay in claude's MCP
	// configuration; claude calls its tools mcp__task-relay__TOOL.
	ClaudeMCPServer = "task-relay"
	// ClaudeApproveTool is claude's --permission-prompt-tool when the relay
	// serves MCP: permission prompts become relay approvals.
	ClaudeApproveTool = "mcp__" + ClaudeMCPServer + "__relay_approve"
	// ClaudeAskTool is the relay's ask tool as claude names it.
	ClaudeAskTool = "mcp__" + ClaudeMCPServer + "__relay_ask"
	// ClaudeMCPConfigFile is the file, in executor.Request.MetaDir, holding claude's
	// MCP configuration (with the job's bearer token, hence not in argv).
	ClaudeMCPConfigFile = "claude-mcp.json"
	// ClaudeIdleTimeoutEnv is the variable claude reads for how long an MCP
	// tool call over HTTP may go without a response or a progress
	// notification (5 min by default); the adapter raises it to the ask
	// deadline.
	ClaudeIdleTimeoutEnv = "CLAUDE_CODE_MCP_TOOL_IDLE_TIMEOUT"
	// ClaudeBashTimeoutEnv is the variable claude reads for how long a Bash
	// command may run when the model sets no timeout (2 min by default,
	// after which the command is killed); the adapter raises it to the ask
	// deadline, so that the relay's ask command can wait for its answer.
	ClaudeBashTimeoutEnv = "BASH_DEFAULT_TIMEOUT_MS"
)

const (
	// claudeDefaultAskTimeout is the ask deadline assumed when the request
	// has none (the relay's default askAnswer.askTimeoutSec).
	claudeDefaultAskTimeout = 10 * time.Minute
	// claudeAskTimeoutMargin is added to the ask deadline for claude's MCP
	// timeouts, so that the relay's own answer (a TIMEOUT included) comes
	// first.
	claudeAskTimeoutMargin = time.Minute
)

// Tool lists. The default allowed tools never include the edit tools: in
// acceptEdits mode claude accepts edits inside the workspace by itself,
// while an allow rule for Write or Edit would accept writes anywhere.
var (
	// claudeReadTools are allowed in every job: they change nothing in
	// the workspace.
	claudeReadTools = []string{
		"Read", "Glob", "Grep",
		"Bash(git status:*)", "Bash(git diff:*)", "Bash(git log:*)", "Bash(git show:*)",
		"Bash(go vet:*)", "Bash(go test:*)",
	}
	// claudeBuildTools are also allowed in jobs that may write: they can
	// leave files in the workspace (a binary, reformatted sources).
	claudeBuildTools = []string{"Bash(go build:*)", "Bash(gofmt:*)"}
	// claudeWriteTools are the tools that write files, disallowed outright
	// (not even offered to the model) in read-only jobs.
	claudeWriteTools = []string{"Write", "Edit", "NotebookEdit"}
	// claudeModes are the permission modes claude 2.1 knows.
	claudeModes = []string{"acceptEdits", "auto", "bypassPermissions", "default", "dontAsk", "plan"}
)

// Adapter is the executor.Adapter for Claude Code run non-interactively
// (claude -p) with stream-json output. It also resumes sessions across
// workspaces (executor.Resumer) and checks the CLI for doctor
// (executor.Checker).
type Adapter struct{}

var (
	_ executor.Adapter = Adapter{}
	_ executor.Resumer = Adapter{}
	_ executor.Checker = Adapter{}
)

// Kind returns "claude".
func (Adapter) Kind() string { return "claude" }

// DefaultBinary returns "claude".
func (Adapter) DefaultBinary() string { return "claude" }

// claudePermissions is the permission setup of one run.
type claudePermissions struct {
	// mode is --permission-mode.
	mode string
	// prompt is whether permission prompts go to relay_approve
	// (--permission-prompt-tool); without it claude denies what it would
	// have asked about.
	prompt bool
	// disallowed are --disallowedTools.
	disallowed []string
}

// permissionsFor maps the job's sandbox and askPolicy to claude's
// permission setup:
//
//   - read-only: dontAsk (or a configured plan, default or dontAsk), the
//     write tools disallowed, and no permission prompt tool: nothing but
//     the allowed (read-only) tools runs, and nothing is asked;
//   - untrusted: default, every edit and every command outside the
//     allowed tools goes to relay_approve;
//   - on-request, on-failure: acceptEdits, edits inside the workspace are
//     accepted, anything else goes to relay_approve (claude has no "ask
//     after a failure");
//   - never: acceptEdits without a permission prompt tool, so claude never
//     asks: edits inside the workspace and the allowed tools run, anything
//     else (a write outside the workspace, another command) is denied;
//   - no askPolicy: the configured permissionMode, else acceptEdits, with
//     relay_approve.
//
// Permission prompts go to relay_approve only when the relay serves MCP.
func permissionsFor(cfg *executor.AgentConfig, req *executor.Request) claudePermissions {
	p := claudePermissions{prompt: req.RelayMCPURL != ""}
	switch {
	case req.ReadOnly():
		p.mode = ClaudeReadOnlyPermissionMode
		if slices.Contains([]string{"plan", "default", "dontAsk"}, cfg.PermissionMode) {
			p.mode = cfg.PermissionMode
		}
		p.prompt = false
		p.disallowed = claudeWriteTools
	case req.AskPolicy == "untrusted":
		p.mode = "default"
	case req.AskPolicy == "on-request" || req.AskPolicy == "on-failure":
		p.mode = "acceptEdits"
	case req.AskPolicy == "never":
		p.mode = "acceptEdits"
		p.prompt = false
	default:
		p.mode = claudeOr(cfg.PermissionMode, ClaudeDefaultPermissionMode)
	}
	return p
}

// Argv returns the claude command line for req. When the relay serves MCP
// (req.RelayMCPURL), it also writes claude's MCP configuration to
// req.MetaDir, so that the job's token stays out of the command line. It
// sets ClaudeBashTimeoutEnv and, with MCP, ClaudeIdleTimeoutEnv in req.Env
// (which Agent.Run reads after Argv), unless the executor's env sets them,
// so that the ask command and a relay tool call may wait as long as an ask
// does.
func (Adapter) Argv(cfg *executor.AgentConfig, req *executor.Request) ([]string, error) {
	prompt, err := claudePrompt(req)
	if err != nil {
		return nil, err
	}
	readOnly := req.ReadOnly()
	perms := permissionsFor(cfg, req)
	maxTurns := cfg.MaxTurns
	if maxTurns <= 0 {
		maxTurns = ClaudeDefaultMaxTurns
	}
	withMCP := req.RelayMCPURL != ""
	timeout := claudeMCPTimeout(req.AskTimeout)
	claudeSetEnv(cfg, req, ClaudeBashTimeoutEnv, timeout)

	argv := []string{cfg.Binary,
		// -p is a switch; the prompt is claude's positional argument.
		"-p", prompt,
		// In print mode claude refuses stream-json without --verbose.
		"--output-format", "stream-json", "--verbose",
		"--permission-mode", perms.mode,
		"--allowedTools", strings.Join(claudeAllowedTools(cfg.AllowedTools, readOnly, withMCP, req.RelayBinary), ","),
	}
	if len(perms.disallowed) > 0 {
		argv = append(argv, "--disallowedTools", strings.Join(perms.disallowed, ","))
	}
	argv = append(argv, "--append-system-prompt", claudeSystemPrompt(readOnly, withMCP && req.AskPolicy != "never", req.AskPolicy == "never", req.RelayBinary))
	// --mcp-config takes several values, so it goes before the
	// single-valued options, never last before ExtraArgs.
	if withMCP {
		file, err := writeClaudeMCPConfig(req, timeout)
		if err != nil {
			return nil, err
		}
		argv = append(argv, "--mcp-config", file)
		if perms.prompt {
			argv = append(argv, "--permission-prompt-tool", ClaudeApproveTool)
		}
		claudeSetEnv(cfg, req, ClaudeIdleTimeoutEnv, timeout)
	}
	argv = append(argv, "--max-turns", strconv.Itoa(maxTurns))
	if model := claudeOr(req.Model, cfg.Model); model != "" {
		argv = append(argv, "--model", model)
	}
	if req.ResumeSessionID != "" {
		argv = append(argv, "--resume", req.ResumeSessionID)
	}
	// Claude stops between turns once its cost passes the budget, with a
	// result of subtype error_max_budget_usd; a single turn can overshoot,
	// so the relay still watches total_cost_usd itself.
	if req.MaxBudgetUSD > 0 {
		argv = append(argv, "--max-budget-usd", strconv.FormatFloat(req.MaxBudgetUSD, 'f', -1, 64))
	}
	return append(argv, cfg.ExtraArgs...), nil
}

// claudeSetEnv sets key to d in milliseconds in req.Env, unless the
// executor's configured env sets key.
func claudeSetEnv(cfg *executor.AgentConfig, req *executor.Request, key string, d time.Duration) {
	if _, ok := cfg.Env[key]; ok {
		return
	}
	if req.Env == nil {
		req.Env = map[string]string{}
	}
	req.Env[key] = strconv.FormatInt(d.Milliseconds(), 10)
}

// claudeMCPTimeout is the timeout of a relay tool call or ask command: the
// ask deadline (or the relay's default one) plus a margin.
func claudeMCPTimeout(ask time.Duration) time.Duration {
	if ask <= 0 {
		ask = claudeDefaultAskTimeout
	}
	return ask + claudeAskTimeoutMargin
}

// claudeOr returns a, or b when a is empty.
func claudeOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// claudePrompt returns the prompt, read from req.PromptFile when
// req.Prompt is empty.
func claudePrompt(req *executor.Request) (string, error) {
	prompt := req.Prompt
	if prompt == "" && req.PromptFile != "" {
		b, err := os.ReadFile(req.PromptFile)
		if err != nil {
			return "", fmt.Errorf("read prompt: %w", err)
		}
		prompt = string(b)
	}
	if strings.TrimSpace(prompt) == "" {
		return "", errors.New("claude: empty prompt")
	}
	// claude's option parser would take a prompt starting with "-" for an
	// option; a leading space keeps it an argument and means nothing to
	// the model.
	if strings.HasPrefix(prompt, "-") {
		prompt = " " + prompt
	}
	return prompt, nil
}

// claudeAskRules returns the allowed-tools rules for the relay's ask
// command: by name and, when known, by the relay binary's absolute path
// (the one the prompt tells the agent to run).
func claudeAskRules(relayBinary string) []string {
	rules := []string{ClaudeAskRule}
	if relayBinary != "" && !strings.ContainsAny(relayBinary, "(),") {
		rules = append(rules, "Bash("+relayBinary+" ask:*)")
	}
	return rules
}

// claudeAllowedTools returns the configured tools (or the default list),
// always with the ask rules, and the relay's ask tool when claude has the
// relay's MCP server.
func claudeAllowedTools(configured []string, readOnly, withMCP bool, relayBinary string) []string {
	tools := slices.Clone(configured)
	if len(tools) == 0 {
		tools = slices.Clone(claudeReadTools)
		if !readOnly {
			tools = append(tools, claudeBuildTools...)
		}
	}
	tools = append(tools, claudeAskRules(relayBinary)...)
	if withMCP {
		tools = append(tools, ClaudeAskTool)
	}
	out := tools[:0]
	seen := make(map[string]bool, len(tools))
	for _, t := range tools {
		if t = strings.TrimSpace(t); t != "" && !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// claudeSystemPrompt is appended to claude's system prompt: how to ask the
// relay (or, when the job's askPolicy is never, that it cannot), and the
// sections the final message ends with.
func claudeSystemPrompt(readOnly, withMCP, noAsk bool, relayBinary string) string {
	var b strings.Builder
	b.WriteString(`You are running non-interactively as an executor of mcp-task-relay, in a git workspace; nobody reads this session while it runs.`)
	if readOnly {
		b.WriteString(` This job is read-only: do not modify files; tools that write are not available, and commands outside the allowed ones are denied.`)
	}
	cmd := "mcp-task-relay"
	if relayBinary != "" {
		cmd = relayBinary
	}
	if noAsk {
		b.WriteString(`

This job may not ask questions (its askPolicy is never): the relay refuses every ask. Where the repository and the task leave something open, make the safest reasonable choice yourself and say so in NOTES.`)
	} else {
		b.WriteString(`

When you need information or a decision that the repository and the task do not give you, ask the relay instead of guessing or stopping:

    ` + cmd + ` ask --type TYPE "your question"

TYPE is one of:
- CLARIFICATION: what the task means or expects;
- CHOICE: pick one of the options you list in the question;
- APPROVAL: permission for a risky, destructive or out-of-scope action;
- POLICY_DECISION: what the project's rules allow;
- RESOURCE_FETCH: content you cannot reach yourself.
The command waits for the answer, which can take minutes, and prints it. Exit status 3 means the request was rejected and 4 that it timed out; then carry on with the safest reasonable choice and say so in NOTES.`)
		if withMCP {
			b.WriteString(` You can also call the relay_ask tool of the ` + ClaudeMCPServer + ` MCP server with the same type and question.`)
		}
	}
	b.WriteString(`

End your final message with these two sections:
### TEST_PLAN
How the change was tested or should be tested: commands run, cases covered.
### NOTES
Assumptions, questions asked and their answers, anything left undone.`)
	return b.String()
}

// claudeMCPConfig is claude's --mcp-config file.
type claudeMCPConfig struct {
	MCPServers map[string]claudeMCPServer `json:"mcpServers"`
}

type claudeMCPServer struct {
	Type    string            `json:"type"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	// Timeout bounds one tool call, in ms; it also raises the HTTP
	// request timeout of the server (60 s by default), which would
	// otherwise cut a relay_ask or relay_approve waiting for its answer.
	Timeout int64 `json:"timeout,omitempty"`
	// AlwaysLoad has claude connect to the server before the first turn
	// and list its tools to the model, never deferred behind tool search.
	AlwaysLoad bool `json:"alwaysLoad,omitempty"`
}

// writeClaudeMCPConfig writes the MCP configuration pointing claude at the
// relay, readable by its owner only since it holds the job's token, and
// returns its path.
func writeClaudeMCPConfig(req *executor.Request, timeout time.Duration) (string, error) {
	if req.MetaDir == "" {
		return "", errors.New("claude: the relay's MCP endpoint needs a meta directory for the MCP config")
	}
	srv := claudeMCPServer{Type: "http", URL: req.RelayMCPURL, Timeout: timeout.Milliseconds(), AlwaysLoad: true}
	if req.RelayToken != "" {
		srv.Headers = map[string]string{"Authorization": "Bearer " + req.RelayToken}
	}
	data, err := json.MarshalIndent(claudeMCPConfig{MCPServers: map[string]claudeMCPServer{ClaudeMCPServer: srv}}, "", "  ")
	if err != nil {
		return "", fmt.Errorf("claude mcp config: %w", err)
	}
	path := filepath.Join(req.MetaDir, ClaudeMCPConfigFile)
	if err := executor.WritePrivate(path, append(data, '\n')); err != nil {
		return "", fmt.Errorf("claude mcp config: %w", err)
	}
	return path, nil
}
