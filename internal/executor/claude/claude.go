package claude

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Claude Code defaults and the names the relay gives it.
const (
	// ClaudeDefaultPermissionMode is claude's --permission-mode when the
	// configuration names none: edits are accepted, anything else outside
	// the allowed tools goes to the permission prompt tool (or is denied).
	ClaudeDefaultPermissionMode = "acceptEdits"
	// ClaudeReadOnlyPermissionMode is the mode for read-only jobs: claude
	// plans and reads but does not edit.
	ClaudeReadOnlyPermissionMode = "plan"
	// ClaudeDefaultMaxTurns is claude's --max-turns when the configuration
	// names none.
	ClaudeDefaultMaxTurns = 50
	// ClaudeAskRule is the allowed-tools rule that lets claude run the
	// relay's ask command; it is always allowed.
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
)

// claudeReadTools are the default allowed tools that do not change the
// workspace; claudeEditTools those that do, left out for read-only jobs.
var (
	claudeReadTools = []string{
		"Read", "Glob", "Grep", "TodoWrite",
		"Bash(git status:*)", "Bash(git diff:*)", "Bash(git log:*)", "Bash(git show:*)",
		"Bash(go build:*)", "Bash(go test:*)", "Bash(go vet:*)", "Bash(gofmt:*)",
	}
	claudeEditTools = []string{"Edit", "MultiEdit", "Write"}
)

// Claude is the Adapter for Claude Code run non-interactively (claude -p)
// with stream-json output.
type Adapter struct{}

var _ executor.Adapter = Adapter{}

// Kind returns "claude".
func (Adapter) Kind() string { return "claude" }

// DefaultBinary returns "claude".
func (Adapter) DefaultBinary() string { return "claude" }

// Argv returns the claude command line for req. When the relay serves MCP
// (req.RelayMCPURL), it also writes claude's MCP configuration to
// req.MetaDir, so that the job's token stays out of the command line.
func (Adapter) Argv(cfg *executor.AgentConfig, req *executor.Request) ([]string, error) {
	prompt, err := claudePrompt(req)
	if err != nil {
		return nil, err
	}
	readOnly := req.Sandbox == "read-only"
	mode := cfg.PermissionMode
	if mode == "" {
		mode = ClaudeDefaultPermissionMode
		if readOnly {
			mode = ClaudeReadOnlyPermissionMode
		}
	}
	maxTurns := cfg.MaxTurns
	if maxTurns <= 0 {
		maxTurns = ClaudeDefaultMaxTurns
	}
	withMCP := req.RelayMCPURL != ""

	argv := []string{cfg.Binary,
		// -p is a switch; the prompt is claude's positional argument.
		"-p", prompt,
		// In print mode claude refuses stream-json without --verbose.
		"--output-format", "stream-json", "--verbose",
		"--permission-mode", mode,
		"--allowedTools", strings.Join(claudeAllowedTools(cfg.AllowedTools, readOnly, withMCP), ","),
		"--append-system-prompt", claudeSystemPrompt(readOnly, withMCP),
	}
	// --mcp-config takes several values, so it goes before the
	// single-valued options, never last before ExtraArgs.
	if withMCP {
		file, err := writeClaudeMCPConfig(req)
		if err != nil {
			return nil, err
		}
		argv = append(argv, "--mcp-config", file, "--permission-prompt-tool", ClaudeApproveTool)
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

// claudeAllowedTools returns the configured tools (or the default list),
// always with the ask rule, and the relay's ask tool when claude has the
// relay's MCP server.
func claudeAllowedTools(configured []string, readOnly, withMCP bool) []string {
	tools := slices.Clone(configured)
	if len(tools) == 0 {
		tools = slices.Clone(claudeReadTools)
		if !readOnly {
			tools = append(tools, claudeEditTools...)
		}
	}
	tools = append(tools, ClaudeAskRule)
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
// relay, and the sections the final message ends with.
func claudeSystemPrompt(readOnly, withMCP bool) string {
	var b strings.Builder
	b.WriteString(`You are running non-interactively as an executor of mcp-task-relay, in a git workspace; nobody reads this session while it runs.`)
	if readOnly {
		b.WriteString(` This job is read-only: do not modify files.`)
	}
	b.WriteString(`

When you need information or a decision that the repository and the task do not give you, ask the relay instead of guessing or stopping:

    mcp-task-relay ask --type TYPE "your question"

TYPE is one of:
- CLARIFICATION: what the task means or expects;
- CHOICE: pick one of the options you list in the question;
- APPROVAL: permission for a risky, destructive or out-of-scope action;
- POLICY_DECISION: what the project's rules allow;
- RESOURCE_FETCH: content you cannot reach yourself.
The command waits for the answer and prints it. Exit status 3 means the request was rejected and 4 that it timed out; then carry on with the safest reasonable choice and say so in NOTES.`)
	if withMCP {
		b.WriteString(` You can also call the relay_ask tool of the ` + ClaudeMCPServer + ` MCP server with the same type and question.`)
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
}

// writeClaudeMCPConfig writes the MCP configuration pointing claude at the
// relay, readable by its owner only since it holds the job's token, and
// returns its path.
func writeClaudeMCPConfig(req *executor.Request) (string, error) {
	if req.MetaDir == "" {
		return "", errors.New("claude: the relay's MCP endpoint needs a meta directory for the MCP config")
	}
	srv := claudeMCPServer{Type: "http", URL: req.RelayMCPURL}
	if req.RelayToken != "" {
		srv.Headers = map[string]string{"Authorization": "Bearer " + req.RelayToken}
	}
	data, err := json.MarshalIndent(claudeMCPConfig{MCPServers: map[string]claudeMCPServer{ClaudeMCPServer: srv}}, "", "  ")
	if err != nil {
		return "", fmt.Errorf("claude mcp config: %w", err)
	}
	// A new temporary file is created with mode 0600, whatever an earlier
	// file at the path had; the rename replaces it whole.
	f, err := os.CreateTemp(req.MetaDir, ClaudeMCPConfigFile+".*")
	if err != nil {
		return "", fmt.Errorf("claude mcp config: %w", err)
	}
	_, err = f.Write(append(data, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	path := filepath.Join(req.MetaDir, ClaudeMCPConfigFile)
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", fmt.Errorf("claude mcp config: %w", err)
	}
	return path, nil
}

// claudeEvent is one line of claude's stream-json output; each type uses
// some of the fields.
type claudeEvent struct {
	Type    string `json:"type"`
	Subtype string `json:"subtype"`
	// system/init
	SessionID      string `json:"session_id"`
	Model          string `json:"model"`
	PermissionMode string `json:"permissionMode"`
	// assistant and user
	Message         *claudeMessage `json:"message"`
	ParentToolUseID *string        `json:"parent_tool_use_id"`
	// result
	IsError      bool         `json:"is_error"`
	Result       string       `json:"result"`
	NumTurns     int          `json:"num_turns"`
	DurationMS   int64        `json:"duration_ms"`
	TotalCostUSD float64      `json:"total_cost_usd"`
	CostUSD      float64      `json:"cost_usd"` // before total_cost_usd
	Usage        *claudeUsage `json:"usage"`
}

type claudeMessage struct {
	ID string `json:"id"`
	// Content is a list of blocks, or a string in user messages.
	Content json.RawMessage `json:"content"`
	Usage   *claudeUsage    `json:"usage"`
}

type claudeBlock struct {
	Type    string          `json:"type"`
	Text    string          `json:"text"`
	Name    string          `json:"name"`
	Input   json.RawMessage `json:"input"`
	IsError bool            `json:"is_error"`
	Content json.RawMessage `json:"content"`
}

type claudeUsage struct {
	InputTokens              int `json:"input_tokens"`
	CacheReadInputTokens     int `json:"cache_read_input_tokens"`
	CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
	OutputTokens             int `json:"output_tokens"`
}

// agentUsage counts cache writes as input, since they are billed as
// (more expensive) input, and cache reads as cached input.
func (u claudeUsage) agentUsage() executor.AgentUsage {
	return executor.AgentUsage{
		InputTokens:       u.InputTokens + u.CacheCreationInputTokens,
		CachedInputTokens: u.CacheReadInputTokens,
		OutputTokens:      u.OutputTokens,
	}
}

func (m *claudeMessage) blocks() []claudeBlock {
	var blocks []claudeBlock
	if json.Unmarshal(m.Content, &blocks) != nil {
		return nil
	}
	return blocks
}

// claudeLogClip bounds one Log line.
const claudeLogClip = 200

// Parse reads claude's stream-json output: the init event gives the
// session, assistant messages the tools used and the last text, and the
// final result event, when there is one, wins for session, message, cost
// and usage. Lines that are not JSON objects are skipped.
func (Adapter) Parse(_ *executor.AgentConfig, req *executor.Request, stdout []byte, exitCode int) executor.AgentOutput {
	var (
		out      executor.AgentOutput
		log      []string
		result   *claudeEvent
		lastText string
		// Claude Code emits one assistant event per content block, each
		// with the whole message's usage: count each message once.
		msgUsage = map[string]claudeUsage{}
		msgOrder []string
	)
	for line := range bytes.SplitSeq(stdout, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var ev claudeEvent
		if json.Unmarshal(line, &ev) != nil {
			continue
		}
		switch ev.Type {
		case "system":
			if ev.Subtype != "init" {
				continue
			}
			out.SessionID = claudeOr(ev.SessionID, out.SessionID)
			entry := "session: " + ev.SessionID
			if ev.Model != "" {
				entry += " model " + ev.Model
			}
			if ev.PermissionMode != "" {
				entry += " mode " + ev.PermissionMode
			}
			log = append(log, entry)
		case "assistant":
			if ev.Message == nil {
				continue
			}
			sub := ev.ParentToolUseID != nil && *ev.ParentToolUseID != ""
			for _, b := range ev.Message.blocks() {
				switch b.Type {
				case "text":
					text := strings.TrimSpace(b.Text)
					if text == "" {
						continue
					}
					if !sub {
						lastText = text
					}
					log = append(log, "message: "+claudeClip(text))
				case "tool_use":
					log = append(log, "tool: "+claudeToolSummary(b.Name, b.Input, req.Workdir))
				}
			}
			if u := ev.Message.Usage; u != nil && ev.Message.ID != "" {
				if _, ok := msgUsage[ev.Message.ID]; !ok {
					msgOrder = append(msgOrder, ev.Message.ID)
				}
				msgUsage[ev.Message.ID] = *u
			}
		case "user":
			if ev.Message == nil {
				continue
			}
			for _, b := range ev.Message.blocks() {
				if b.Type == "tool_result" && b.IsError {
					log = append(log, "tool error: "+claudeClip(claudeResultText(b.Content)))
				}
			}
		case "result":
			result = &ev
		}
	}

	out.FinalMessage = lastText
	if result == nil {
		// A killed or crashed run: the usage so far is what the assistant
		// messages reported.
		for _, id := range msgOrder {
			u := msgUsage[id].agentUsage()
			out.Usage.InputTokens += u.InputTokens
			out.Usage.CachedInputTokens += u.CachedInputTokens
			out.Usage.OutputTokens += u.OutputTokens
		}
		out.Failed = true
		if exitCode != 0 {
			out.FailureSummary = fmt.Sprintf("claude exited with code %d", exitCode)
		} else {
			out.FailureSummary = "claude ended without a result"
		}
		log = append(log, "result: none, "+out.FailureSummary)
		out.Log = claudeJoinLog(log)
		return out
	}

	out.SessionID = claudeOr(result.SessionID, out.SessionID)
	if text := strings.TrimSpace(result.Result); text != "" {
		out.FinalMessage = text
	}
	out.CostUSD = result.TotalCostUSD
	if out.CostUSD == 0 {
		out.CostUSD = result.CostUSD
	}
	if result.Usage != nil {
		out.Usage = result.Usage.agentUsage()
	}
	subtype := claudeOr(result.Subtype, "success")
	entry := fmt.Sprintf("result: %s after %d turns, $%.4f", subtype, result.NumTurns, out.CostUSD)
	if result.DurationMS > 0 {
		entry += ", " + (time.Duration(result.DurationMS) * time.Millisecond).String()
	}
	log = append(log, entry)
	// A budget stop has is_error false but did not finish the task.
	if result.IsError || subtype != "success" {
		out.Failed = true
		label := subtype
		if label == "success" {
			label = "error"
		}
		if result.NumTurns > 0 {
			label += fmt.Sprintf(" after %d turns", result.NumTurns)
		}
		if text := strings.TrimSpace(result.Result); text != "" {
			label += ": " + claudeClip(text)
		}
		out.FailureSummary = label
	}
	out.Log = claudeJoinLog(log)
	return out
}

func claudeJoinLog(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

// claudeToolSummary says what a tool call did in a few words: the tool's
// name and its command, file, pattern or URL.
func claudeToolSummary(name string, input json.RawMessage, workdir string) string {
	var in map[string]any
	_ = json.Unmarshal(input, &in)
	str := func(key string) string {
		s, _ := in[key].(string)
		return s
	}
	var arg string
	switch name {
	case "Bash":
		arg = str("command")
	case "Read", "Edit", "MultiEdit", "Write":
		arg = claudeRel(str("file_path"), workdir)
	case "NotebookEdit":
		arg = claudeRel(str("notebook_path"), workdir)
	case "Glob", "Grep":
		arg = str("pattern")
	case "LS":
		arg = claudeRel(str("path"), workdir)
	case "WebFetch":
		arg = str("url")
	case "WebSearch":
		arg = str("query")
	case "Task", "executor.Agent":
		arg = str("description")
	}
	if arg == "" {
		return claudeClip(name)
	}
	return claudeClip(name + " " + arg)
}

// claudeRel shortens a path inside the workspace to a relative one.
func claudeRel(path, workdir string) string {
	if path == "" || workdir == "" || !filepath.IsAbs(path) {
		return path
	}
	if rel, err := filepath.Rel(workdir, path); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return path
}

// claudeResultText returns the text of a tool_result's content, a string
// or a list of text blocks.
func claudeResultText(content json.RawMessage) string {
	var s string
	if json.Unmarshal(content, &s) == nil {
		return s
	}
	var blocks []claudeBlock
	if json.Unmarshal(content, &blocks) != nil {
		return ""
	}
	var parts []string
	for _, b := range blocks {
		if b.Text != "" {
			parts = append(parts, b.Text)
		}
	}
	return strings.Join(parts, " ")
}

// claudeClip makes s one line of at most claudeLogClip runes.
func claudeClip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > claudeLogClip {
		return string(r[:claudeLogClip]) + "…"
	}
	return s
}
