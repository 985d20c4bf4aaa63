package gemini

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// Exit codes of the Gemini CLI (its FatalError classes and ExitCodes).
const (
	exitGeneral       = 1
	exitAuth          = 41
	exitInput         = 42
	exitSandbox       = 44
	exitConfig        = 52
	exitTurnLimit     = 53
	exitToolExecution = 54
	exitUntrusted     = 55
	exitCanceled      = 130
)

// exitReasons says what each exit code of gemini means.
var exitReasons = map[int]string{
	exitGeneral:       "gemini failed",
	exitAuth:          "gemini could not authenticate",
	exitInput:         "gemini rejected the input",
	exitSandbox:       "gemini's sandbox failed",
	exitConfig:        "gemini's configuration is invalid",
	exitTurnLimit:     "gemini hit its turn limit",
	exitToolExecution: "a gemini tool failed fatally",
	exitUntrusted:     "gemini does not trust the workspace",
	exitCanceled:      "gemini was canceled",
}

// event is one line of `gemini -o stream-json`; each type uses some of
// the fields.
type event struct {
	Type string `json:"type"`
	// init
	SessionID string `json:"session_id"`
	Model     string `json:"model"`
	// message
	Role    string `json:"role"`
	Content string `json:"content"`
	// tool_use
	ToolName   string          `json:"tool_name"`
	ToolID     string          `json:"tool_id"`
	Parameters json.RawMessage `json:"parameters"`
	// tool_result (also Error)
	Status string `json:"status"`
	Output string `json:"output"`
	// error (also Message)
	Severity string `json:"severity"`
	Message  string `json:"message"`
	// result (also Status, Error)
	Error *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
	Stats *stats `json:"stats"`
}

// stats are the run's totals in the result event. Gemini counts them per
// process, so a resumed session reports only the run's own usage.
type stats struct {
	InputTokens  int                   `json:"input_tokens"`
	OutputTokens int                   `json:"output_tokens"`
	Cached       int                   `json:"cached"`
	DurationMS   int64                 `json:"duration_ms"`
	ToolCalls    int                   `json:"tool_calls"`
	Models       map[string]modelStats `json:"models"`
}

type modelStats struct {
	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
	Cached       int `json:"cached"`
}

// logClip bounds one value quoted in Log.
const logClip = 200

// Parse reads gemini's stream-json output and exit code. Agent.Run passes
// stdout followed by stderr, where gemini writes its fatal errors (exit
// 41, 42, 52, 55…) as text; lines that are not JSON events are read as
// that text.
//
// The session comes from the init event, the final message is the
// assistant's text after its last tool call, and the usage is the result
// event's. A run fails when gemini exits non-zero (the summary names the
// exit code and quotes gemini's own message), when the result says error,
// or when there is no result.
func (Adapter) Parse(_ *executor.AgentConfig, _ *executor.Request, stdout []byte, exitCode int) executor.AgentOutput {
	var (
		out      executor.AgentOutput
		log      strings.Builder
		final    strings.Builder
		result   *event
		text     []string // lines that are not events
		warnings []string
	)
	tools := map[string]string{} // tool_id → tool name
	for _, line := range bytes.Split(stdout, []byte("\n")) {
		trimmed := bytes.TrimSpace(line)
		var ev event
		if len(trimmed) == 0 || trimmed[0] != '{' || json.Unmarshal(trimmed, &ev) != nil || ev.Type == "" {
			text = append(text, string(line))
			continue
		}
		switch ev.Type {
		case "init":
			out.SessionID = ev.SessionID
			fmt.Fprintf(&log, "gemini: session %s, model %s\n", ev.SessionID, ev.Model)
		case "message":
			if ev.Role == "assistant" {
				final.WriteString(ev.Content)
			}
		case "tool_use":
			final.Reset()
			tools[ev.ToolID] = ev.ToolName
			fmt.Fprintf(&log, "gemini: tool %s %s\n", ev.ToolName, clip(string(ev.Parameters)))
		case "tool_result":
			if ev.Status == "error" && ev.Error != nil {
				fmt.Fprintf(&log, "gemini: tool %s failed: %s\n", tools[ev.ToolID], clip(ev.Error.Message))
			}
		case "error":
			warnings = append(warnings, ev.Message)
			fmt.Fprintf(&log, "gemini: %s: %s\n", ev.Severity, clip(ev.Message))
		case "result":
			r := ev
			result = &r
		}
	}
	out.FinalMessage = strings.TrimSpace(final.String())
	if result != nil && result.Stats != nil {
		s := result.Stats
		out.Usage = executor.AgentUsage{InputTokens: s.InputTokens, CachedInputTokens: s.Cached, OutputTokens: s.OutputTokens}
		for _, name := range slices.Sorted(maps.Keys(s.Models)) {
			m := s.Models[name]
			fmt.Fprintf(&log, "gemini: model %s: input tokens %d (%d cached), output tokens %d\n", name, m.InputTokens, m.Cached, m.OutputTokens)
		}
		fmt.Fprintf(&log, "gemini: %d tool calls, %.1fs\n", s.ToolCalls, float64(s.DurationMS)/1000)
	}

	why, apiStatus := "", 0
	if result != nil && result.Error != nil {
		why, apiStatus = apiError(result.Error.Message)
		if t := result.Error.Type; t != "" && t != "unknown" && t != "Error" && apiStatus == 0 && why != "" {
			why = t + ": " + why
		}
	}
	if why == "" {
		why = errorText(text)
	}
	switch {
	case exitCode != 0:
		out.Failed = true
		reason, ok := exitReasons[exitCode]
		switch {
		case apiStatus != 0 && apiStatus%256 == exitCode:
			// Gemini exits with the HTTP status of a failed API request.
			reason = "gemini's API request failed"
		case !ok:
			reason = "gemini exited"
		}
		out.FailureSummary = fmt.Sprintf("%s (exit %d)", reason, exitCode)
		if why != "" {
			out.FailureSummary += ": " + why
		}
	case result == nil:
		out.Failed = true
		out.FailureSummary = "gemini ended without a result"
		if why != "" {
			out.FailureSummary += ": " + why
		}
	case result.Status != "success":
		out.Failed = true
		out.FailureSummary = "gemini reported " + cmp.Or(result.Status, "no status")
		if why == "" && len(warnings) > 0 {
			why = warnings[len(warnings)-1]
		}
		if why != "" {
			out.FailureSummary += ": " + why
		}
	}
	out.FailureSummary = oneLine(out.FailureSummary)
	if exitCode != 0 {
		fmt.Fprintf(&log, "gemini: exit code %d\n", exitCode)
	}
	if out.Failed {
		fmt.Fprintf(&log, "gemini: %s\n", out.FailureSummary)
	}
	out.Log = log.String()
	return out
}

// ansi matches terminal escape sequences (gemini colors its fatal errors
// red unless NO_COLOR is set).
var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]`)

// noise are gemini's lines on stderr that never explain a failure.
var noise = []string{
	"Warning: 256-color support not detected",
	"Ripgrep is not available",
	"[STARTUP]",
	"Loaded cached credentials",
	"YOLO mode is enabled",
	"Data collection is disabled",
	"[WARNING]",
	"[INFO]",
	"[DEBUG]",
	"Approval mode overridden",
}

// fatalMessage returns the message of the fatal error gemini printed last,
// which it colors red (unless NO_COLOR is set), or "".
func fatalMessage(lines []string) string {
	text := strings.Join(lines, "\n")
	start := strings.LastIndex(text, red)
	if start < 0 {
		return ""
	}
	msg := text[start+len(red):]
	if end := strings.Index(msg, reset); end >= 0 {
		msg = msg[:end]
	}
	return oneLine(ansi.ReplaceAllString(msg, ""))
}

const (
	red   = "\x1b[31m"
	reset = "\x1b[0m"
)

// maxErrorLines bounds the lines of gemini's text quoted in a summary.
const maxErrorLines = 6

// errorText returns gemini's own account of a failure from the text it
// printed (its stderr): the last "[ERROR]" line, else the last block of
// text, leaving out the usage that follows an argument error, stack
// frames and known noise.
func errorText(lines []string) string {
	if msg := fatalMessage(lines); msg != "" {
		return msg
	}
	clean := make([]string, 0, len(lines))
	for _, l := range lines {
		l = strings.TrimRight(ansi.ReplaceAllString(l, ""), " \t\r")
		if strings.HasPrefix(l, "Usage: gemini") {
			break // yargs prints the help after its error
		}
		clean = append(clean, l)
	}
	for i := len(clean) - 1; i >= 0; i-- {
		if msg, ok := strings.CutPrefix(strings.TrimSpace(clean[i]), "[ERROR]"); ok {
			return oneLine(errorMessage(msg))
		}
	}
	var block []string
	for i := len(clean) - 1; i >= 0 && len(block) < maxErrorLines; i-- {
		l := clean[i]
		t := strings.TrimSpace(l)
		switch {
		case t == "" || t == "}" || strings.HasPrefix(t, "at "):
			if len(block) > 0 {
				i = -1 // the block ends here
				continue
			}
		case isNoise(t):
			if len(block) > 0 {
				i = -1
			}
		default:
			block = append(block, t)
		}
	}
	slices.Reverse(block)
	return oneLine(strings.Join(block, " "))
}

// apiErrorRE matches how gemini reports a failed API request.
var apiErrorRE = regexp.MustCompile(`^\[API Error: (.*)\]$`)

// apiError rewrites gemini's "[API Error: {JSON error}]" as "API error
// CODE STATUS: message" and returns the HTTP status; other messages are
// returned as they are, with status 0.
func apiError(msg string) (string, int) {
	m := apiErrorRE.FindStringSubmatch(strings.TrimSpace(msg))
	if m == nil {
		return msg, 0
	}
	var obj struct {
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Status  string `json:"status"`
		} `json:"error"`
	}
	if json.Unmarshal([]byte(m[1]), &obj) != nil || obj.Error.Message == "" {
		return "API error: " + m[1], 0
	}
	e := obj.Error
	head := "API error"
	if e.Code != 0 {
		head += " " + strconv.Itoa(e.Code)
	}
	if e.Status != "" {
		head += " " + e.Status
	}
	return head + ": " + e.Message, e.Code
}

// errorMessage returns the message of gemini's JSON error object, when
// msg is one, else msg.
func errorMessage(msg string) string {
	var obj struct {
		Error *struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal([]byte(msg), &obj) == nil && obj.Error != nil && obj.Error.Message != "" {
		return obj.Error.Message
	}
	return msg
}

func isNoise(line string) bool {
	for _, n := range noise {
		if strings.HasPrefix(line, n) {
			return true
		}
	}
	return false
}

// clip shortens s to one line of at most logClip bytes.
func clip(s string) string {
	s = oneLine(s)
	if len(s) > logClip {
		return s[:logClip] + "…"
	}
	return s
}

// oneLine joins the lines of s with spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
