// Package claudetest is a fake Anthropic Messages API for tests that run
// the real Claude Code CLI (claude -p) pointed at it with
// ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY.
//
// The conversation is scripted: each request of the agent's main loop (a
// streaming POST /v1/messages that declares tools) takes the next Turn from
// the queue and gets it back as server-sent events (message_start,
// content_block_start/delta/stop, message_delta with the usage,
// message_stop): tool_use blocks of Claude Code's real tools (Write, Edit,
// Bash, and MCP tools as mcp__<server>__<tool>) or a final text. Other
// requests (a side query without tools, count_tokens) get a short
// plausible answer. Every request is recorded, so tests can check the
// history the CLI sent (a resumed session, a tool's result).
//
// The server is also the CLI's HTTP(S) proxy (see Env): a request for any
// other host than 127.0.0.1 — the real vendor's API, telemetry, an update
// check — arrives here as a proxy request, is refused and is reported by
// Problems.
package claudetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/mcp-task-relay/mcp-task-relay/internal/executor/executortest"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// APIKey is the key the fake server expects in x-api-key.
const APIKey = "sk-ant-api03-claudetest-not-a-real-key"

// Model is a model id Claude Code knows the price of, so that it reports
// a cost ($3 per million input tokens, $15 per million output tokens,
// $0.30 per million cache reads, $3.75 per million cache writes).
const Model = "claude-sonnet-4-5"

// Usage is what a response reports.
type Usage struct {
	Input         int // input_tokens (not cached)
	Output        int // output_tokens
	CacheRead     int // cache_read_input_tokens
	CacheCreation int // cache_creation_input_tokens
}

// Add returns the sum of u and v.
func (u Usage) Add(v Usage) Usage {
	return Usage{Input: u.Input + v.Input, Output: u.Output + v.Output,
		CacheRead: u.CacheRead + v.CacheRead, CacheCreation: u.CacheCreation + v.CacheCreation}
}

// CostUSD is what Claude Code charges for u at Model's prices.
func (u Usage) CostUSD() float64 {
	return (float64(u.Input)*3 + float64(u.Output)*15 + float64(u.CacheRead)*0.3 + float64(u.CacheCreation)*3.75) / 1e6
}

// DefaultUsage is the usage of a Turn that sets none.
var DefaultUsage = Usage{Input: 1000, Output: 50, CacheRead: 200}

// Call is a tool call the model makes (a tool_use block).
type Call struct {
	// Name is the tool's name as the CLI declares it: Write, Edit, Bash,
	// or mcp__<server>__<tool> for an MCP tool.
	Name  string
	Input map[string]any
}

// Cwd stands for the CLI's working directory in a Call's string inputs:
// the server replaces it with the "Primary working directory" the
// request's system prompt names (claude's file tools take absolute paths).
const Cwd = "{{cwd}}"

// InCwd returns the path rel in the CLI's working directory (see Cwd).
func InCwd(rel string) string { return Cwd + "/" + rel }

// Write calls Claude Code's Write tool (path should be absolute).
func Write(path, content string) Call {
	return Call{Name: "Write", Input: map[string]any{"file_path": path, "content": content}}
}

// Edit calls Claude Code's Edit tool (path should be absolute; the file
// must have been read first in the session).
func Edit(path, old, replacement string) Call {
	return Call{Name: "Edit", Input: map[string]any{"file_path": path, "old_string": old, "new_string": replacement}}
}

// Read calls Claude Code's Read tool.
func Read(path string) Call {
	return Call{Name: "Read", Input: map[string]any{"file_path": path}}
}

// Bash calls Claude Code's Bash tool.
func Bash(command string) Call {
	return Call{Name: "Bash", Input: map[string]any{"command": command, "description": "Run a command for the task"}}
}

// MCP calls tool of the MCP server named server (mcp__<server>__<tool>).
func MCP(server, tool string, args map[string]any) Call {
	return Call{Name: "mcp__" + server + "__" + tool, Input: args}
}

// Turn is one scripted answer of the model.
type Turn struct {
	// Text is the answer's text (before any calls). A final answer has
	// text and no calls.
	Text string
	// Calls are tool calls, made in parallel in one answer.
	Calls []Call
	// Usage is reported in message_start and message_delta. Defaults to
	// DefaultUsage.
	Usage Usage
	// Error, when set, is returned instead: an HTTP error status with the
	// API's error object. The CLI retries 429 and 5xx, not other 4xx.
	Error *APIError
}

// APIError is an error response of the API.
type APIError struct {
	Status  int    // HTTP status
	Type    string // error.type, e.g. invalid_request_error
	Message string // error.message
}

// Request is a request the server received.
type Request struct {
	// Method and Path are the HTTP method and the URL path (for a proxy
	// request, the host it was for).
	Method, Path string
	// Model is the body's model.
	Model string
	// Cwd is the working directory the system prompt names.
	Cwd string
	// Stream is the body's stream flag.
	Stream bool
	// Scripted is set for the requests of the agent's main loop, which
	// took a Turn.
	Scripted bool
	// Body is the raw JSON body.
	Body json.RawMessage
	// System is the system prompt's text.
	System string
	// Messages is the conversation the request carried.
	Messages []Message
	// Tools are the names of the tools the request declared.
	Tools []string
	// Usage is what the response reported.
	Usage Usage
}

// Message is one message of a conversation.
type Message struct {
	Role    string
	Content []Block
}

// Block is a content block of a message.
type Block struct {
	Type string `json:"type"`
	// text
	Text string `json:"text,omitempty"`
	// tool_use
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`
	// tool_result
	ToolUseID string          `json:"tool_use_id,omitempty"`
	Content   json.RawMessage `json:"content,omitempty"`
	IsError   bool            `json:"is_error,omitempty"`
}

// ResultText returns a tool_result's content: a string or text blocks.
func (b Block) ResultText() string {
	var s string
	if json.Unmarshal(b.Content, &s) == nil {
		return s
	}
	var blocks []Block
	if json.Unmarshal(b.Content, &blocks) != nil {
		return string(b.Content)
	}
	var parts []string
	for _, p := range blocks {
		if p.Text != "" {
			parts = append(parts, p.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// Transcript renders the conversation of a request as text, one entry per
// block: "user: TEXT", "assistant: TEXT", "assistant: call NAME INPUT",
// "user: result NAME [error] TEXT".
func (r Request) Transcript() string {
	names := map[string]string{}
	var b strings.Builder
	for _, m := range r.Messages {
		for _, c := range m.Content {
			switch c.Type {
			case "text":
				fmt.Fprintf(&b, "%s: %s\n", m.Role, c.Text)
			case "tool_use":
				names[c.ID] = c.Name
				fmt.Fprintf(&b, "%s: call %s %s\n", m.Role, c.Name, c.Input)
			case "tool_result":
				errMark := ""
				if c.IsError {
					errMark = "[error] "
				}
				fmt.Fprintf(&b, "%s: result %s %s%s\n", m.Role, names[c.ToolUseID], errMark, c.ResultText())
			}
		}
	}
	return b.String()
}

// Results returns the texts of the results of the calls of the tool named
// name in the request's conversation, in order.
func (r Request) Results(name string) []string {
	ids := map[string]bool{}
	var out []string
	for _, m := range r.Messages {
		for _, c := range m.Content {
			switch {
			case c.Type == "tool_use" && c.Name == name:
				ids[c.ID] = true
			case c.Type == "tool_result" && ids[c.ToolUseID]:
				out = append(out, c.ResultText())
			}
		}
	}
	return out
}

// Result returns the text of the result of the last call of the tool
// named name in the request's conversation, and whether there is one.
func (r Request) Result(name string) (string, bool) {
	res := r.Results(name)
	if len(res) == 0 {
		return "", false
	}
	return res[len(res)-1], true
}

// Server is the fake Anthropic API. Its methods are safe for concurrent
// use.
type Server struct {
	srv *httptest.Server
	executortest.Recorder[Turn, Request]

	mu  sync.Mutex
	ids int
}

// New starts a fake Anthropic API on 127.0.0.1 that is closed when tb
// ends.
func New(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.srv.Close)
	return s
}

// URL returns the server's base URL, http://127.0.0.1:PORT.
func (s *Server) URL() string { return s.srv.URL }

// Env returns the environment that points Claude Code at the server
// (ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY), turns off its telemetry, error
// reporting, update checks and other non-essential traffic, and makes the
// server its proxy for every other host.
func (s *Server) Env() map[string]string {
	return map[string]string{
		"ANTHROPIC_BASE_URL":                       s.srv.URL,
		"ANTHROPIC_API_KEY":                        APIKey,
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
		"DISABLE_TELEMETRY":                        "1",
		"DISABLE_ERROR_REPORTING":                  "1",
		"DISABLE_AUTOUPDATER":                      "1",
		"DISABLE_BUG_COMMAND":                      "1",
		"HTTPS_PROXY":                              s.srv.URL,
		"HTTP_PROXY":                               s.srv.URL,
		"NO_PROXY":                                 "127.0.0.1,localhost",
	}
}

// Scripted returns the requests of the main loop received so far.
func (s *Server) Scripted() []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Scripted {
			out = append(out, r)
		}
	}
	return out
}

// Usage returns the usage reported by the responses to requests[from:].
func (s *Server) Usage(from int) Usage {
	var u Usage
	for _, r := range s.Requests()[from:] {
		u = u.Add(r.Usage)
	}
	return u
}

// record appends r and returns its index.
func (s *Server) record(r Request) int { return s.Record(r) }

func (s *Server) setUsage(i int, u Usage) { s.Update(i, func(r *Request) { r.Usage = u }) }

func (s *Server) problem(format string, a ...any) { s.Problem(format, a...) }

// next takes the next turn, if any.
func (s *Server) next() (Turn, bool) { return s.Next() }

func (s *Server) newID(prefix string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids++
	return fmt.Sprintf("%s_claudetest%04d", prefix, s.ids)
}

// body is the part of a Messages API request the server reads.
type body struct {
	Model    string          `json:"model"`
	Stream   bool            `json:"stream"`
	System   json.RawMessage `json:"system"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Tools []struct {
		Name string `json:"name"`
	} `json:"tools"`
}

// textOf returns the text of a string or a list of text blocks.
func textOf(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var blocks []Block
	_ = json.Unmarshal(raw, &blocks)
	var parts []string
	for _, b := range blocks {
		parts = append(parts, b.Text)
	}
	return strings.Join(parts, "\n")
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect || r.URL.IsAbs() {
		// A proxy request: the CLI tried to reach another host.
		s.record(Request{Method: r.Method, Path: r.Host + r.URL.Path})
		s.problem("the CLI tried to reach %s %s%s", r.Method, r.Host, r.URL.Path)
		http.Error(w, "claudetest: no traffic to other hosts", http.StatusForbidden)
		return
	}
	raw, _ := io.ReadAll(r.Body)
	req := Request{Method: r.Method, Path: r.URL.Path, Body: raw}
	if r.Method == http.MethodHead || r.Method == http.MethodGet && r.URL.Path == "/" {
		// The CLI's connection warm-up.
		s.record(req)
		w.WriteHeader(http.StatusOK)
		return
	}
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/v1/messages") {
		s.record(req)
		s.problem("unexpected request %s %s", r.Method, r.URL.Path)
		writeError(w, APIError{Status: http.StatusNotFound, Type: "not_found_error", Message: "claudetest: no such endpoint " + r.URL.Path})
		return
	}
	if got := r.Header.Get("x-api-key"); got != APIKey {
		s.record(req)
		s.problem("%s without the API key (x-api-key %q)", r.URL.Path, got)
		writeError(w, APIError{Status: http.StatusUnauthorized, Type: "authentication_error", Message: "invalid x-api-key"})
		return
	}
	var b body
	if err := json.Unmarshal(raw, &b); err != nil {
		s.record(req)
		s.problem("%s: body is not JSON: %v", r.URL.Path, err)
		writeError(w, APIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Message: err.Error()})
		return
	}
	req.Model, req.Stream, req.System = b.Model, b.Stream, textOf(b.System)
	if m := cwdLine.FindStringSubmatch(req.System); m != nil {
		req.Cwd = m[1]
	}
	for _, m := range b.Messages {
		msg := Message{Role: m.Role}
		var str string
		if json.Unmarshal(m.Content, &str) == nil {
			msg.Content = []Block{{Type: "text", Text: str}}
		} else {
			_ = json.Unmarshal(m.Content, &msg.Content)
		}
		req.Messages = append(req.Messages, msg)
	}
	for _, t := range b.Tools {
		req.Tools = append(req.Tools, t.Name)
	}
	model := b.Model
	if model == "" {
		model = Model
	}

	if r.URL.Path == "/v1/messages/count_tokens" {
		s.record(req)
		writeJSON(w, http.StatusOK, map[string]any{"input_tokens": 1000})
		return
	}
	if r.URL.Path != "/v1/messages" {
		s.record(req)
		s.problem("unexpected request %s %s", r.Method, r.URL.Path)
		writeError(w, APIError{Status: http.StatusNotFound, Type: "not_found_error", Message: "claudetest: no such endpoint " + r.URL.Path})
		return
	}
	if !b.Stream || len(b.Tools) == 0 {
		// A side query (a title, a check): a short answer.
		u := Usage{Input: 40, Output: 8}
		req.Usage = u
		s.record(req)
		turn := Turn{Text: "none", Usage: u}
		if b.Stream {
			s.stream(w, model, turn)
		} else {
			writeJSON(w, http.StatusOK, s.message(model, turn))
		}
		return
	}

	req.Scripted = true
	i := s.record(req)
	turn, ok := s.next()
	if !ok {
		s.problem("main-loop request %d with no scripted turn left", i)
		turn = Turn{Text: "claudetest: no scripted turn left."}
	}
	if turn.Error != nil {
		writeError(w, *turn.Error)
		return
	}
	if turn.Usage == (Usage{}) {
		turn.Usage = DefaultUsage
	}
	s.setUsage(i, turn.Usage)
	turn.Calls = withCwd(turn.Calls, req.Cwd)
	s.stream(w, model, turn)
}

// cwdLine finds the working directory in claude's system prompt.
var cwdLine = regexp.MustCompile(`(?m)Primary working directory: (\S+)`)

// withCwd returns calls with Cwd replaced by cwd in their inputs.
func withCwd(calls []Call, cwd string) []Call {
	var expand func(v any) any
	expand = func(v any) any {
		switch v := v.(type) {
		case string:
			return strings.ReplaceAll(v, Cwd, cwd)
		case map[string]any:
			m := make(map[string]any, len(v))
			for k, x := range v {
				m[k] = expand(x)
			}
			return m
		case []any:
			l := make([]any, len(v))
			for i, x := range v {
				l[i] = expand(x)
			}
			return l
		}
		return v
	}
	out := make([]Call, len(calls))
	for i, c := range calls {
		out[i] = Call{Name: c.Name}
		if c.Input != nil {
			out[i].Input = expand(c.Input).(map[string]any)
		}
	}
	return out
}

// blocks returns the content blocks of turn with fresh tool_use ids.
func (s *Server) blocks(turn Turn) []map[string]any {
	var out []map[string]any
	if turn.Text != "" {
		out = append(out, map[string]any{"type": "text", "text": turn.Text})
	}
	for _, c := range turn.Calls {
		in := c.Input
		if in == nil {
			in = map[string]any{}
		}
		out = append(out, map[string]any{"type": "tool_use", "id": s.newID("toolu"), "name": c.Name, "input": in})
	}
	return out
}

func stopReason(turn Turn) string {
	if len(turn.Calls) > 0 {
		return "tool_use"
	}
	return "end_turn"
}

func usageJSON(u Usage) map[string]any {
	return map[string]any{"input_tokens": u.Input, "output_tokens": u.Output,
		"cache_read_input_tokens": u.CacheRead, "cache_creation_input_tokens": u.CacheCreation}
}

// message is a non-streaming response.
func (s *Server) message(model string, turn Turn) map[string]any {
	return map[string]any{"id": s.newID("msg"), "type": "message", "role": "assistant", "model": model,
		"content": s.blocks(turn), "stop_reason": stopReason(turn), "stop_sequence": nil, "usage": usageJSON(turn.Usage)}
}

// stream writes turn as the Messages API's server-sent events.
func (s *Server) stream(w http.ResponseWriter, model string, turn Turn) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	event := func(name string, data map[string]any) {
		data["type"] = name
		b, _ := json.Marshal(data)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b)
		if fl != nil {
			fl.Flush()
		}
	}
	start := usageJSON(turn.Usage)
	start["output_tokens"] = min(1, turn.Usage.Output)
	event("message_start", map[string]any{"message": map[string]any{"id": s.newID("msg"), "type": "message", "role": "assistant",
		"model": model, "content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": start}})
	for i, blk := range s.blocks(turn) {
		switch blk["type"] {
		case "text":
			event("content_block_start", map[string]any{"index": i, "content_block": map[string]any{"type": "text", "text": ""}})
			event("content_block_delta", map[string]any{"index": i, "delta": map[string]any{"type": "text_delta", "text": blk["text"]}})
		case "tool_use":
			event("content_block_start", map[string]any{"index": i, "content_block": map[string]any{"type": "tool_use",
				"id": blk["id"], "name": blk["name"], "input": map[string]any{}}})
			in, _ := json.Marshal(blk["input"])
			// Split the input as the API does, in several deltas.
			half := len(in) / 2
			for _, part := range [][]byte{in[:half], in[half:]} {
				event("content_block_delta", map[string]any{"index": i, "delta": map[string]any{"type": "input_json_delta", "partial_json": string(part)}})
			}
		}
		event("content_block_stop", map[string]any{"index": i})
	}
	event("message_delta", map[string]any{"delta": map[string]any{"stop_reason": stopReason(turn), "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": turn.Usage.Output}})
	event("message_stop", map[string]any{})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, e APIError) {
	writeJSON(w, e.Status, map[string]any{"type": "error", "error": map[string]any{"type": e.Type, "message": e.Message}})
}
