package codex

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"unicode/utf8"
)

// Codex drives the OpenAI Codex CLI in its non-interactive mode,
// `codex exec --json`, and reads the JSONL events it prints on stdout.
type Adapter struct{}

var _ executor.Adapter = Adapter{}

// Codex command-line settings.
const (
	// CodexLastMessageFile is the name, in executor.Request.MetaDir, of the file
	// codex writes its final message to (-o).
	CodexLastMessageFile = "codex-last-message.txt"
	// codexNetworkAccess lets commands in the workspace-write sandbox reach
	// the network, so that `mcp-task-relay ask` can reach the relay on
	// loopback. The read-only sandbox keeps codex's default (no network).
	codexNetworkAccess = "sandbox_workspace_write.network_access=true"
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
//	  [-c sandbox_workspace_write.network_access=true] [-o META/codex-last-message.txt]
//	  [-m MODEL] [EXTRA...] [resume SESSION_ID] -- PROMPT
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
// Argv removes a final-message file left in MetaDir by an earlier run, so
// that a run which ends without writing one is not credited with the old
// message. Without MetaDir there is no -o; the final message then comes from
// the JSONL events alone.
func (Adapter) Argv(cfg *executor.AgentConfig, req *executor.Request) ([]string, error) {
	sandbox := req.Sandbox
	switch sandbox {
	case "":
		sandbox = codexWorkspaceWrite
	case codexReadOnly, codexWorkspaceWrite:
	default:
		return nil, fmt.Errorf("codex: sandbox %q: want %s or %s", req.Sandbox, codexReadOnly, codexWorkspaceWrite)
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
	if req.MetaDir != "" {
		last := filepath.Join(req.MetaDir, CodexLastMessageFile)
		if err := os.Remove(last); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("codex: remove old final message: %w", err)
		}
		argv = append(argv, "-o", last)
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
// skipped. The final-message file (-o) wins over the last agent_message.
// The run failed when a turn failed, when an error event was not followed
// by a completed turn (codex also reports errors it retries past), or when
// codex exited non-zero.
func (Adapter) Parse(_ *executor.AgentConfig, req *executor.Request, stdout []byte, exitCode int) executor.AgentOutput {
	var (
		out        executor.AgentOutput
		log        []string
		turnFailed string
		lastError  string
	)
	for line := range bytes.SplitSeq(stdout, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] != '{' {
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
				out.Usage.InputTokens += ev.Usage.InputTokens
				out.Usage.CachedInputTokens += ev.Usage.CachedInputTokens
				out.Usage.OutputTokens += ev.Usage.OutputTokens
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
	switch {
	case turnFailed != "":
		out.Failed, out.FailureSummary = true, codexOneLine(turnFailed)
	case lastError != "":
		out.Failed, out.FailureSummary = true, codexOneLine(lastError)
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
