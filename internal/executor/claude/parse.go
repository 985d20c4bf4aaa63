package claude

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// claudeBudgetSubtype is the result subtype of a run claude stopped at
// --max-budget-usd.
const claudeBudgetSubtype = "error_max_budget_usd"

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
	IsError        bool                        `json:"is_error"`
	APIErrorStatus *int                        `json:"api_error_status"`
	Result         string                      `json:"result"`
	NumTurns       int                         `json:"num_turns"`
	DurationMS     int64                       `json:"duration_ms"`
	TotalCostUSD   float64                     `json:"total_cost_usd"`
	CostUSD        float64                     `json:"cost_usd"` // before total_cost_usd
	Usage          *claudeUsage                `json:"usage"`
	ModelUsage     map[string]claudeModelUsage `json:"modelUsage"`
	Errors         []string                    `json:"errors"`
	Denials        []claudeDenial              `json:"permission_denials"`
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

// claudeModelUsage is one model's entry of the result's modelUsage: what
// the whole run used of it, side queries included.
type claudeModelUsage struct {
	InputTokens              int     `json:"inputTokens"`
	OutputTokens             int     `json:"outputTokens"`
	CacheReadInputTokens     int     `json:"cacheReadInputTokens"`
	CacheCreationInputTokens int     `json:"cacheCreationInputTokens"`
	CostUSD                  float64 `json:"costUSD"`
}

// claudeDenial is a tool call claude's permissions denied.
type claudeDenial struct {
	ToolName  string          `json:"tool_name"`
	ToolInput json.RawMessage `json:"tool_input"`
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

// claudeRunUsage sums the result's modelUsage, the run's usage of every
// model. It is the run's own (a resumed session starts from zero), and,
// unlike the result's usage, whole in error results too, where usage holds
// the last request's only.
func claudeRunUsage(models map[string]claudeModelUsage) (executor.AgentUsage, bool) {
	var sum claudeUsage
	for _, m := range models {
		sum.InputTokens += m.InputTokens
		sum.OutputTokens += m.OutputTokens
		sum.CacheReadInputTokens += m.CacheReadInputTokens
		sum.CacheCreationInputTokens += m.CacheCreationInputTokens
	}
	return sum.agentUsage(), len(models) > 0
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
// and usage. A result of subtype error_max_budget_usd sets OverBudget;
// the result's errors (the CLI's own messages) go into FailureSummary.
// Lines that are not JSON objects are skipped.
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
	if u, ok := claudeRunUsage(result.ModelUsage); ok {
		out.Usage = u
	} else if result.Usage != nil {
		out.Usage = result.Usage.agentUsage()
	}
	for _, d := range result.Denials {
		log = append(log, "denied: "+claudeToolSummary(d.ToolName, d.ToolInput, req.Workdir))
	}
	subtype := claudeOr(result.Subtype, "success")
	entry := fmt.Sprintf("result: %s after %d turns, $%.4f", subtype, result.NumTurns, out.CostUSD)
	if result.DurationMS > 0 {
		entry += ", " + (time.Duration(result.DurationMS) * time.Millisecond).String()
	}
	log = append(log, entry)
	// A budget stop did not finish the task, whatever is_error says.
	if result.IsError || subtype != "success" {
		out.Failed = true
		out.OverBudget = subtype == claudeBudgetSubtype
		label := subtype
		if label == "success" {
			label = "error"
		}
		if result.NumTurns > 0 {
			label += fmt.Sprintf(" after %d turns", result.NumTurns)
		}
		if s := result.APIErrorStatus; s != nil && *s != 0 {
			label += fmt.Sprintf(" (API status %d)", *s)
		}
		var why []string
		for _, e := range result.Errors {
			if e = strings.TrimSpace(e); e != "" && !slices.Contains(why, e) {
				why = append(why, e)
			}
		}
		if text := strings.TrimSpace(result.Result); text != "" && !slices.Contains(why, text) {
			why = append(why, text)
		}
		if len(why) > 0 {
			label += ": " + claudeClip(strings.Join(why, "; "))
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
	case "Task", "Agent":
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
