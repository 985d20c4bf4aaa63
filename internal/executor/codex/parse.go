package codex

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// codexEvent is one line of `codex exec --json` output. Only the fields
// the adapter reads are declared.
type codexEvent struct {
	// Type is thread.started, turn.started, turn.completed, turn.failed,
	// item.started, item.updated, item.completed or error.
	Type     string `json:"type"`
	ThreadID string `json:"thread_id"`
	// Message is set on error events.
	Message string      `json:"message"`
	Usage   *codexUsage `json:"usage"`
	// Error is set on turn.failed events.
	Error *codexError `json:"error"`
	Item  *codexItem  `json:"item"`
}

type codexUsage struct {
	InputTokens       int `json:"input_tokens"`
	CachedInputTokens int `json:"cached_input_tokens"`
	OutputTokens      int `json:"output_tokens"`
}

// since returns u less base, the usage of a run whose thread had used
// base before it. A total smaller than base in any count is not a running
// total that includes base (a CLI that reports per turn), and is returned
// unchanged.
func (u codexUsage) since(base codexUsage) codexUsage {
	if u.InputTokens < base.InputTokens || u.CachedInputTokens < base.CachedInputTokens || u.OutputTokens < base.OutputTokens {
		return u
	}
	return codexUsage{
		InputTokens:       u.InputTokens - base.InputTokens,
		CachedInputTokens: u.CachedInputTokens - base.CachedInputTokens,
		OutputTokens:      u.OutputTokens - base.OutputTokens,
	}
}

// codexToolErrorMark precedes the message of the error codex logs (on
// stderr, as text) when it refuses or fails a tool call, such as
//
//	2026-11-27T15:02:38.245359Z ERROR codex_core::tools::router: error=patch rejected: writing is blocked by read-only sandbox; rejected by user approval settings
const codexToolErrorMark = " ERROR codex_core::tools::router: error="

// codexToolError returns the message of a tool-call error line.
func codexToolError(line []byte) (string, bool) {
	_, msg, ok := bytes.Cut(line, []byte(codexToolErrorMark))
	if !ok || len(bytes.TrimSpace(msg)) == 0 {
		return "", false
	}
	return string(bytes.TrimSpace(msg)), true
}

type codexError struct {
	Message string `json:"message"`
}

// codexItem is a thread item: agent_message, reasoning, command_execution,
// file_change, mcp_tool_call, web_search, todo_list or error.
type codexItem struct {
	Type string `json:"type"`
	// Text is the text of agent_message and reasoning items.
	Text     string `json:"text"`
	Command  string `json:"command"`
	ExitCode *int   `json:"exit_code"`
	// Status is in_progress, completed, failed or declined.
	Status  string `json:"status"`
	Changes []struct {
		Path string `json:"path"`
		Kind string `json:"kind"` // add, delete or update
	} `json:"changes"`
	Server string      `json:"server"`
	Tool   string      `json:"tool"`
	Query  string      `json:"query"`
	Error  *codexError `json:"error"`
	// Message is the text of error items (non-fatal warnings).
	Message string `json:"message"`
}

// Parse reads codex's JSONL events; lines that are not JSON objects are
// skipped, but for the errors codex logs when it refuses a tool call (a
// patch the sandbox blocks, an escalation under approval "never"), which
// go into the log. The final-message file (-o) wins over the last
// agent_message.
//
// Token usage: codex's turn.completed reports the thread's running total,
// not the turn's, so a resumed thread's first turn would count every
// earlier run again. The usage is the last turn.completed's less the
// thread's total before this run, which PrepareResume recorded in
// CodexUsageBaselineFile (when codex's session file had it).
//
// The run failed when a turn failed, when an error event was not followed
// by a completed turn (codex also reports errors it retries past), or when
// codex exited non-zero (the summary then quotes the first "Error..." line
// it printed, such as a config error).
func (Adapter) Parse(_ *executor.AgentConfig, req *executor.Request, stdout []byte, exitCode int) executor.AgentOutput {
	var (
		out        executor.AgentOutput
		log        []string
		turnFailed string
		lastError  string
		cliError   string
		total      *codexUsage
	)
	for line := range bytes.SplitSeq(stdout, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] != '{' {
			if msg, ok := codexToolError(line); ok {
				log = append(log, "refused: "+codexOneLine(msg))
			} else if cliError == "" && bytes.HasPrefix(line, []byte("Error")) {
				cliError = string(line)
			}
			continue
		}
		var ev codexEvent
		if json.Unmarshal(line, &ev) != nil {
			continue
		}
		switch ev.Type {
		case "thread.started":
			if ev.ThreadID != "" {
				out.SessionID = ev.ThreadID
			}
		case "turn.completed":
			if ev.Usage != nil {
				total = ev.Usage
			}
			lastError = ""
		case "turn.failed":
			msg := "turn failed"
			if ev.Error != nil && ev.Error.Message != "" {
				msg = ev.Error.Message
			}
			turnFailed = msg
			log = append(log, "turn failed: "+codexOneLine(msg))
		case "error":
			lastError = ev.Message
			log = append(log, "error: "+codexOneLine(ev.Message))
		case "item.completed":
			if ev.Item == nil {
				continue
			}
			if ev.Item.Type == "agent_message" {
				out.FinalMessage = ev.Item.Text
			}
			if l := codexItemLine(ev.Item, req.Workdir); l != "" {
				log = append(log, l)
			}
		}
	}

	if req.MetaDir != "" {
		if b, err := os.ReadFile(filepath.Join(req.MetaDir, CodexLastMessageFile)); err == nil && len(bytes.TrimSpace(b)) > 0 {
			out.FinalMessage = strings.TrimSpace(string(b))
		}
	}
	if total != nil {
		u := *total
		if base, ok := readUsageBaseline(req.MetaDir); ok {
			u = u.since(base)
		}
		out.Usage = executor.AgentUsage{InputTokens: u.InputTokens, CachedInputTokens: u.CachedInputTokens, OutputTokens: u.OutputTokens}
	}
	switch {
	case turnFailed != "":
		out.Failed, out.FailureSummary = true, codexOneLine(turnFailed)
	case lastError != "":
		out.Failed, out.FailureSummary = true, codexOneLine(lastError)
	case exitCode != 0 && cliError != "":
		out.Failed, out.FailureSummary = true, codexOneLine(fmt.Sprintf("codex exited with code %d: %s", exitCode, cliError))
	case exitCode != 0:
		out.Failed, out.FailureSummary = true, fmt.Sprintf("codex exited with code %d", exitCode)
	}
	out.Log = strings.Join(log, "\n")
	return out
}

// codexItemLine condenses a completed item into one line of log, or ""
// for items not worth one (reasoning, to-do lists).
func codexItemLine(it *codexItem, workdir string) string {
	switch it.Type {
	case "agent_message":
		return "message: " + codexOneLine(it.Text)
	case "command_execution":
		var result string
		switch {
		case it.ExitCode != nil:
			result = fmt.Sprintf("exit %d", *it.ExitCode)
		case it.Status != "":
			result = it.Status
		default:
			result = "no exit code"
		}
		return codexOneLine(fmt.Sprintf("$ %s (%s)", codexUnwrapShell(it.Command), result))
	case "file_change":
		parts := make([]string, 0, len(it.Changes))
		for _, c := range it.Changes {
			parts = append(parts, c.Kind+" "+codexRelPath(workdir, c.Path))
		}
		line := "changed: " + strings.Join(parts, ", ")
		if it.Status == "failed" {
			line += " (failed)"
		}
		return codexOneLine(line)
	case "mcp_tool_call":
		line := fmt.Sprintf("mcp: %s/%s (%s)", it.Server, it.Tool, it.Status)
		if it.Error != nil && it.Error.Message != "" {
			line += ": " + it.Error.Message
		}
		return codexOneLine(line)
	case "web_search":
		return codexOneLine("search: " + it.Query)
	case "error":
		return "warning: " + codexOneLine(it.Message)
	}
	return ""
}

// codexUnwrapShell turns `/bin/bash -lc 'go test ./...'`, the form codex
// reports its commands in, into `go test ./...`; other commands are
// returned unchanged.
func codexUnwrapShell(cmd string) string {
	prog, rest, ok := strings.Cut(cmd, " ")
	if !ok {
		return cmd
	}
	switch filepath.Base(prog) {
	case "bash", "zsh", "sh":
	default:
		return cmd
	}
	flag, script, ok := strings.Cut(rest, " ")
	if !ok || (flag != "-lc" && flag != "-c") || len(script) < 2 {
		return cmd
	}
	switch q := script[0]; {
	case q == '\'' && script[len(script)-1] == q && !strings.ContainsRune(script[1:len(script)-1], '\''):
		return script[1 : len(script)-1]
	case q == '"' && script[len(script)-1] == q && !strings.ContainsAny(script[1:len(script)-1], "\"\\$`"):
		return script[1 : len(script)-1]
	}
	return script
}

// codexRelPath shows path relative to the workspace when it is inside it.
func codexRelPath(workdir, path string) string {
	if workdir == "" || !filepath.IsAbs(path) {
		return path
	}
	if rel, err := filepath.Rel(workdir, path); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
		return rel
	}
	return path
}

// codexOneLine returns the first non-empty line of s, cut to
// codexLogLineMax runes.
func codexOneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i]) + " …"
	}
	if utf8.RuneCountInString(s) <= codexLogLineMax {
		return s
	}
	r := []rune(s)
	return string(r[:codexLogLineMax-1]) + "…"
}
