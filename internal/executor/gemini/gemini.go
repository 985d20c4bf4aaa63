package gemini

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
	"maps"
	"slices"
	"strings"
)

// Gemini drives the Gemini CLI in headless mode: `gemini -p PROMPT -o json`
// prints one JSON object, {"session_id", "response", "stats", "error"}, and
// exits 0 on success, 1 on a general or API error, 42 on an input error and
// 53 when the session's turn limit is hit.
type Adapter struct{}

var _ executor.Adapter = Adapter{}

// Gemini approval modes (--approval-mode).
const (
	// geminiApprovalDefault would ask before impactful tools; headless,
	// gemini leaves out the shell and file-editing tools instead, which
	// makes it the read-only mode.
	geminiApprovalDefault = "default"
	// geminiApprovalAutoEdit approves file edits; headless, gemini still
	// leaves out the shell tool unless allowed by name (see ExtraArgs).
	geminiApprovalAutoEdit = "auto_edit"
)

// Exit codes the Gemini CLI documents for headless runs.
const (
	geminiExitInput     = 42
	geminiExitTurnLimit = 53
)

// Kind returns "gemini".
func (Adapter) Kind() string { return "gemini" }

// DefaultBinary returns "gemini".
func (Adapter) DefaultBinary() string { return "gemini" }

// Argv returns `gemini -p PROMPT -o json --approval-mode MODE [-m MODEL]
// [--resume SESSION] [EXTRA...]`. The mode is cfg.ApprovalMode, else
// default for a read-only job (gemini then offers no editing tools) and
// auto_edit otherwise.
func (Adapter) Argv(cfg *executor.AgentConfig, req *executor.Request) ([]string, error) {
	if req.Prompt == "" {
		return nil, errors.New("gemini: request without a prompt")
	}
	mode := cfg.ApprovalMode
	if mode == "" {
		mode = geminiApprovalAutoEdit
		if req.Sandbox == "read-only" {
			mode = geminiApprovalDefault
		}
	}
	argv := []string{cfg.Binary, "-p", req.Prompt, "-o", "json", "--approval-mode", mode}
	if model := cmp.Or(req.Model, cfg.Model); model != "" {
		argv = append(argv, "-m", model)
	}
	if req.ResumeSessionID != "" {
		argv = append(argv, "--resume", req.ResumeSessionID)
	}
	return append(argv, cfg.ExtraArgs...), nil
}

// geminiOutput is the JSON object of `gemini -o json`, read field by field
// (see decodeGeminiOutput).
type geminiOutput struct {
	SessionID string
	Response  string
	Stats     *geminiStats
	Error     *geminiError
}

// geminiStats is the part of the CLI's session metrics the relay reads;
// the CLI adds others freely.
type geminiStats struct {
	Models map[string]geminiModelStats `json:"models"`
	Tools  *struct {
		TotalCalls   int `json:"totalCalls"`
		TotalSuccess int `json:"totalSuccess"`
		TotalFail    int `json:"totalFail"`
		ByName       map[string]struct {
			Count int `json:"count"`
		} `json:"byName"`
	} `json:"tools"`
	Files *struct {
		TotalLinesAdded   int `json:"totalLinesAdded"`
		TotalLinesRemoved int `json:"totalLinesRemoved"`
	} `json:"files"`
}

type geminiModelStats struct {
	API struct {
		TotalRequests int `json:"totalRequests"`
		TotalErrors   int `json:"totalErrors"`
	} `json:"api"`
	// Tokens are cumulative over the session's requests. Prompt counts the
	// whole prompt, Cached the part of it served from the cache.
	Tokens struct {
		Prompt     int `json:"prompt"`
		Candidates int `json:"candidates"`
		Cached     int `json:"cached"`
		Thoughts   int `json:"thoughts"`
	} `json:"tokens"`
}

// geminiError is the error object. Its code (the exit code, or an API
// error code as a number or a string) is left out: the exit code says more.
type geminiError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// String returns "Type: message", or whichever of the two is set.
func (e *geminiError) String() string {
	switch {
	case e == nil:
		return ""
	case e.Type != "" && e.Message != "":
		return e.Type + ": " + e.Message
	case e.Message != "":
		return e.Message
	}
	return e.Type
}

// Parse reads the JSON object gemini printed and its exit code.
//
// Gemini writes the error object of a fatal error to stderr, which Parse
// is not given; the failure summary then rests on the exit code alone.
func (Adapter) Parse(_ *executor.AgentConfig, _ *executor.Request, stdout []byte, exitCode int) executor.AgentOutput {
	return parseGemini(stdout, exitCode)
}

func parseGemini(stdout []byte, exitCode int) executor.AgentOutput {
	var out executor.AgentOutput
	res, found := findGeminiOutput(stdout)
	if found {
		out.SessionID = res.SessionID
		out.FinalMessage = strings.TrimSpace(res.Response)
		if res.Stats != nil {
			for _, m := range res.Stats.Models {
				out.Usage.InputTokens += m.Tokens.Prompt
				out.Usage.CachedInputTokens += m.Tokens.Cached
				out.Usage.OutputTokens += m.Tokens.Candidates
			}
		}
	}
	out.Log = geminiLog(res, found, len(stdout), exitCode)

	errText := res.Error.String()
	switch {
	case exitCode == geminiExitInput:
		out.Failed = true
		out.FailureSummary = "gemini rejected the input (exit 42)"
		if msg := cmp.Or(res.Error.message(), errText); msg != "" {
			out.FailureSummary += ": " + msg
		}
	case exitCode == geminiExitTurnLimit:
		out.Failed = true
		out.FailureSummary = "gemini hit its turn limit (exit 53)"
	case exitCode != 0:
		out.Failed = true
		out.FailureSummary = fmt.Sprintf("gemini exited with code %d", exitCode)
		if errText != "" {
			out.FailureSummary += ": " + errText
		}
	case res.Error != nil:
		out.Failed = true
		out.FailureSummary = cmp.Or(errText, "gemini reported an error")
	case !found:
		// Without the result there is no telling what the run did.
		out.Failed = true
		out.FailureSummary = "gemini printed no JSON result"
	}
	out.FailureSummary = geminiOneLine(out.FailureSummary)
	return out
}

func (e *geminiError) message() string {
	if e == nil {
		return ""
	}
	return e.Message
}

// findGeminiOutput returns the last top-level JSON object in stdout that
// looks like gemini's result. The object is pretty-printed, and other
// output (warnings, extension logs) may come before or after it, so each
// line that opens with "{" is tried as the start of an object, skipping
// past the objects found.
func findGeminiOutput(stdout []byte) (geminiOutput, bool) {
	var (
		best  geminiOutput
		found bool
	)
	for i := 0; i < len(stdout); {
		start := bytes.IndexByte(stdout[i:], '{')
		if start < 0 {
			break
		}
		start += i
		if !geminiLineStart(stdout, start) {
			i = geminiNextLine(stdout, start)
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(stdout[start:]))
		var fields map[string]json.RawMessage
		if err := dec.Decode(&fields); err != nil {
			i = geminiNextLine(stdout, start)
			continue
		}
		i = start + int(dec.InputOffset())
		if isGeminiOutput(fields) {
			best, found = decodeGeminiOutput(fields), true
		}
	}
	return best, found
}

// decodeGeminiOutput decodes each field on its own, so that a field whose
// shape changed in some CLI version costs only that field.
func decodeGeminiOutput(fields map[string]json.RawMessage) geminiOutput {
	var res geminiOutput
	_ = json.Unmarshal(fields["session_id"], &res.SessionID)
	_ = json.Unmarshal(fields["response"], &res.Response)
	if raw, ok := fields["stats"]; ok {
		var s geminiStats
		if json.Unmarshal(raw, &s) == nil {
			res.Stats = &s
		}
	}
	if raw, ok := fields["error"]; ok && !bytes.Equal(raw, []byte("null")) {
		var e geminiError
		if json.Unmarshal(raw, &e) != nil {
			e = geminiError{Message: string(raw)}
		}
		res.Error = &e
	}
	return res
}

// geminiLineStart reports whether only blanks precede pos on its line.
func geminiLineStart(b []byte, pos int) bool {
	for j := pos - 1; j >= 0; j-- {
		switch b[j] {
		case '\n':
			return true
		case ' ', '\t', '\r':
		default:
			return false
		}
	}
	return true
}

// geminiNextLine returns the start of the line after pos.
func geminiNextLine(b []byte, pos int) int {
	if nl := bytes.IndexByte(b[pos:], '\n'); nl >= 0 {
		return pos + nl + 1
	}
	return len(b)
}

// isGeminiOutput tells gemini's result from other JSON objects.
func isGeminiOutput(fields map[string]json.RawMessage) bool {
	for _, k := range []string{"response", "stats", "error", "session_id"} {
		if _, ok := fields[k]; ok {
			return true
		}
	}
	return false
}

// geminiLog condenses a run for logs.txt: the session, per-model requests
// and tokens, tool calls, lines changed and any error.
func geminiLog(res geminiOutput, found bool, stdoutLen, exitCode int) string {
	var b strings.Builder
	if !found {
		fmt.Fprintf(&b, "gemini: no JSON result in %d bytes of stdout\n", stdoutLen)
	}
	if res.SessionID != "" {
		fmt.Fprintf(&b, "gemini: session %s\n", res.SessionID)
	}
	if s := res.Stats; s != nil {
		for _, name := range slices.Sorted(maps.Keys(s.Models)) {
			m := s.Models[name]
			fmt.Fprintf(&b, "gemini: model %s: requests %d", name, m.API.TotalRequests)
			if m.API.TotalErrors > 0 {
				fmt.Fprintf(&b, " (%d failed)", m.API.TotalErrors)
			}
			fmt.Fprintf(&b, ", prompt tokens %d (%d cached), output tokens %d", m.Tokens.Prompt, m.Tokens.Cached, m.Tokens.Candidates)
			if m.Tokens.Thoughts > 0 {
				fmt.Fprintf(&b, ", thought tokens %d", m.Tokens.Thoughts)
			}
			b.WriteByte('\n')
		}
		if t := s.Tools; t != nil {
			fmt.Fprintf(&b, "gemini: tool calls %d (%d succeeded, %d failed)", t.TotalCalls, t.TotalSuccess, t.TotalFail)
			if len(t.ByName) > 0 {
				names := slices.Sorted(maps.Keys(t.ByName))
				counts := make([]string, len(names))
				for i, n := range names {
					counts[i] = fmt.Sprintf("%s %d", n, t.ByName[n].Count)
				}
				b.WriteString(": " + strings.Join(counts, ", "))
			}
			b.WriteByte('\n')
		}
		if f := s.Files; f != nil && (f.TotalLinesAdded > 0 || f.TotalLinesRemoved > 0) {
			fmt.Fprintf(&b, "gemini: lines +%d -%d\n", f.TotalLinesAdded, f.TotalLinesRemoved)
		}
	}
	if res.Error != nil {
		fmt.Fprintf(&b, "gemini: error: %s\n", geminiOneLine(res.Error.String()))
	}
	if exitCode != 0 {
		fmt.Fprintf(&b, "gemini: exit code %d\n", exitCode)
	}
	return b.String()
}

// geminiOneLine joins the lines of s with spaces.
func geminiOneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
