// Package codextest is a fake OpenAI Responses API for running the real
// Codex CLI in tests: `codex exec` is pointed at it through a custom
// model provider (wire_api = "responses") in an isolated CODEX_HOME, and
// it answers POST /v1/responses with server-sent events in the shape the
// CLI reads (response.created, response.output_item.added/done,
// response.completed with usage).
//
// A test scripts the model: a queue of turns, each answering one request
// with output items — an assistant message, an apply_patch call, an
// exec_command call, a tool_search call, a call of an MCP tool — and its
// token usage. Every request is recorded, so a test can assert the
// conversation the CLI sent (its history after a resume, the outputs of
// the tools it ran). The server is also the HTTP proxy of the CLI's
// environment: any attempt to reach another host (the vendor's API,
// telemetry, plugin sync) is refused and recorded (Outbound).
package codextest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Defaults of the scripted model.
const (
	// Model is the model the isolated config asks for: one of codex
	// 0.171's catalog whose tools are the classic ones (exec_command and
	// the freeform apply_patch tool). The catalog's newer models run in a
	// code-only tool mode.
	Model = "gpt-5.5"
	// KeyEnv is the variable the fake provider's API key is read from
	// (env_key); Key is its value.
	KeyEnv = "CODEX_FAKE_API_KEY"
	Key    = "sk-codextest-not-a-real-key"
	// ProviderID is the id of the fake provider in config.toml.
	ProviderID = "codextest"
)

// DefaultUsage is the usage of a response whose turn sets none.
var DefaultUsage = Usage{Input: 100, Cached: 20, Output: 10}

// Usage is the token usage a response reports.
type Usage struct {
	Input, Cached, Output, Reasoning int
}

// Plus returns the sum of u and v.
func (u Usage) Plus(v Usage) Usage {
	return Usage{Input: u.Input + v.Input, Cached: u.Cached + v.Cached, Output: u.Output + v.Output, Reasoning: u.Reasoning + v.Reasoning}
}

// Item is one output item of a response, as the Responses API streams it.
type Item map[string]any

// Message is an assistant message with text.
func Message(text string) Item {
	return Item{"type": "message", "role": "assistant", "status": "completed",
		"content": []any{map[string]any{"type": "output_text", "text": text, "annotations": []any{}}}}
}

// ApplyPatch is a call of codex's freeform apply_patch tool with a patch in
// its own format ("*** Begin Patch" ... "*** End Patch").
func ApplyPatch(callID, patch string) Item {
	return Item{"type": "custom_tool_call", "status": "completed", "call_id": callID, "name": "apply_patch", "input": patch}
}

// ExecCommand is a call of codex's exec_command tool (unified exec).
func ExecCommand(callID, cmd string) Item {
	return functionCall(callID, "", "exec_command", map[string]any{"cmd": cmd})
}

// ToolSearch is a call of codex's client-side tool_search, which makes
// deferred tools (the tools of MCP servers) callable.
func ToolSearch(callID, query string) Item {
	return Item{"type": "tool_search_call", "status": "completed", "call_id": callID, "execution": "client",
		"arguments": map[string]any{"query": query}}
}

// MCPCall is a call of a tool of the MCP server configured as server
// (mcp_servers.<server>), which codex offers in the namespace
// mcp__<server> ('-' becomes '_') once tool_search found it.
func MCPCall(callID, server, tool string, args any) Item {
	return functionCall(callID, Namespace(server), tool, args)
}

// Namespace is the tool namespace codex gives the tools of an MCP server.
func Namespace(server string) string {
	return "mcp__" + strings.ReplaceAll(server, "-", "_")
}

func functionCall(callID, namespace, name string, args any) Item {
	raw, err := json.Marshal(args)
	if err != nil {
		panic(fmt.Sprintf("codextest: arguments of %s: %v", name, err))
	}
	it := Item{"type": "function_call", "status": "completed", "call_id": callID, "name": name, "arguments": string(raw)}
	if namespace != "" {
		it["namespace"] = namespace
	}
	return it
}

// Response is what the fake model answers one request with.
type Response struct {
	Items []Item
	// Usage is reported in response.completed; zero means DefaultUsage.
	Usage Usage
	// Failure, when set, ends the stream with response.failed and this
	// error message instead of response.completed (after Items).
	Failure string
}

// Fail is a turn whose response fails with message (response.failed,
// code server_error).
func Fail(message string) Turn {
	return func(*Request) Response { return Response{Failure: message} }
}

// Turn answers one request. It may block (to hold the model back until
// a test is ready) and it may read the request (to answer with what a
// tool returned).
type Turn func(r *Request) Response

// Reply is a turn that answers with items and DefaultUsage.
func Reply(items ...Item) Turn {
	return ReplyUsage(Usage{}, items...)
}

// ReplyUsage is a turn that answers with items and usage u.
func ReplyUsage(u Usage, items ...Item) Turn {
	return func(*Request) Response { return Response{Items: items, Usage: u} }
}

// Server is the fake Responses API. Its methods are safe for concurrent
// use.
type Server struct {
	srv *httptest.Server

	mu         sync.Mutex
	turns      []Turn
	requests   []*Request
	outbound   []string
	unexpected []string
	served     []Usage
}

// New starts a fake Responses API on 127.0.0.1 that answers with turns,
// in order; more can be queued with Enqueue. It is closed when the test
// ends.
func New(tb testing.TB, turns ...Turn) *Server {
	tb.Helper()
	s := &Server{turns: turns}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.srv.Close)
	return s
}

// URL is the server's origin, http://127.0.0.1:PORT.
func (s *Server) URL() string { return s.srv.URL }

// BaseURL is the provider's base_url: URL + "/v1".
func (s *Server) BaseURL() string { return s.srv.URL + "/v1" }

// Enqueue adds turns to the queue.
func (s *Server) Enqueue(turns ...Turn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.turns = append(s.turns, turns...)
}

// Requests returns the model requests received so far.
func (s *Server) Requests() []*Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Request(nil), s.requests...)
}

// Outbound returns every attempt to reach a host other than this server
// through it as a proxy ("CONNECT host:443", "GET http://host/path"), and
// every request to a path it does not serve.
func (s *Server) Outbound() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.outbound...)
}

// Pending returns how many queued turns no request has taken yet.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.turns)
}

// Unexpected returns the problems the server met: requests when no turn
// was left, request bodies it could not read.
func (s *Server) Unexpected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.unexpected...)
}

// Served returns the usage of every completed response sent, in order.
func (s *Server) Served() []Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Usage(nil), s.served...)
}

// ServedTotal returns the sum of Served from response from on.
func (s *Server) ServedTotal(from int) Usage {
	var u Usage
	for _, v := range s.Served()[from:] {
		u = u.Plus(v)
	}
	return u
}

func (s *Server) note(list *[]string, format string, a ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	*list = append(*list, fmt.Sprintf(format, a...))
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodConnect:
		s.note(&s.outbound, "CONNECT %s", r.Host)
		http.Error(w, "codextest: no outbound connections", http.StatusForbidden)
		return
	case strings.HasPrefix(r.RequestURI, "http://") || strings.HasPrefix(r.RequestURI, "https://"):
		s.note(&s.outbound, "%s %s", r.Method, r.RequestURI)
		http.Error(w, "codextest: no outbound connections", http.StatusForbidden)
		return
	case r.Method == http.MethodPost && r.URL.Path == "/v1/responses":
	default:
		s.note(&s.outbound, "%s %s", r.Method, r.URL.Path)
		http.NotFound(w, r)
		return
	}
	req, err := readRequest(r)
	if err != nil {
		s.note(&s.unexpected, "read request: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	req.Index = len(s.requests)
	s.requests = append(s.requests, req)
	var turn Turn
	if len(s.turns) > 0 {
		turn, s.turns = s.turns[0], s.turns[1:]
	}
	s.mu.Unlock()

	var resp Response
	if turn == nil {
		s.note(&s.unexpected, "request %d: no scripted turn left", req.Index)
		resp = Response{Items: []Item{Message("codextest: no scripted turn left")}}
	} else {
		resp = turn(req)
	}
	if resp.Usage == (Usage{}) {
		resp.Usage = DefaultUsage
	}
	if resp.Failure == "" {
		s.mu.Lock()
		s.served = append(s.served, resp.Usage)
		s.mu.Unlock()
	}
	writeStream(w, fmt.Sprintf("resp_%d", req.Index), resp)
}

// writeStream writes resp as the Responses API's event stream.
func writeStream(w http.ResponseWriter, id string, resp Response) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriter(w)
	seq := 0
	event := func(typ string, fields map[string]any) {
		fields["type"] = typ
		fields["sequence_number"] = seq
		seq++
		raw, err := json.Marshal(fields)
		if err != nil {
			panic(fmt.Sprintf("codextest: event %s: %v", typ, err))
		}
		fmt.Fprintf(bw, "event: %s\ndata: %s\n\n", typ, raw)
	}
	event("response.created", map[string]any{"response": map[string]any{"id": id, "object": "response", "status": "in_progress"}})
	for i, it := range resp.Items {
		done := Item{"id": fmt.Sprintf("%s_item_%d", id, i)}
		for k, v := range it {
			done[k] = v
		}
		added := Item{}
		for k, v := range done {
			added[k] = v
		}
		added["status"] = "in_progress"
		event("response.output_item.added", map[string]any{"output_index": i, "item": added})
		if done["type"] == "message" {
			for _, c := range done["content"].([]any) {
				if text, ok := c.(map[string]any)["text"].(string); ok {
					event("response.output_text.delta", map[string]any{"output_index": i, "content_index": 0, "item_id": done["id"], "delta": text})
				}
			}
		}
		event("response.output_item.done", map[string]any{"output_index": i, "item": done})
	}
	if resp.Failure != "" {
		event("response.failed", map[string]any{"response": map[string]any{
			"id": id, "object": "response", "status": "failed",
			"error": map[string]any{"code": "server_error", "message": resp.Failure},
		}})
		_ = bw.Flush()
		return
	}
	u := resp.Usage
	event("response.completed", map[string]any{"response": map[string]any{
		"id": id, "object": "response", "status": "completed",
		"usage": map[string]any{
			"input_tokens":          u.Input,
			"input_tokens_details":  map[string]any{"cached_tokens": u.Cached},
			"output_tokens":         u.Output,
			"output_tokens_details": map[string]any{"reasoning_tokens": u.Reasoning},
			"total_tokens":          u.Input + u.Output,
		},
	}})
	_ = bw.Flush()
}

// Request is one POST /v1/responses the CLI sent.
type Request struct {
	// Index is the request's position among all the server received.
	Index  int
	Header http.Header
	// Body is the raw JSON body.
	Body  []byte
	Model string
	// Input is the conversation sent, one item per element.
	Input []InputItem
	// Tools are the names of the tools offered ("exec_command",
	// "apply_patch", "tool_search", ...).
	Tools []string
}

// InputItem is one item of a request's input.
type InputItem struct {
	Type string `json:"type"`
	Role string `json:"role"`
	// CallID is set on tool calls and their outputs.
	CallID string `json:"call_id"`
	Name   string `json:"name"`
	// Raw is the whole item.
	Raw json.RawMessage `json:"-"`
	// Text is the text of a message (its parts joined with "\n"), the
	// output of a tool call (its text parts joined with "\n"), or the JSON
	// of the tools a tool_search found.
	Text string `json:"-"`
}

// SessionID is the session (thread) id codex sends in its session-id
// header.
func (r *Request) SessionID() string { return r.Header.Get("Session-Id") }

// Texts returns the texts of the messages of role in the input, in order.
func (r *Request) Texts(role string) []string {
	var out []string
	for _, it := range r.Input {
		if it.Type == "message" && it.Role == role {
			out = append(out, it.Text)
		}
	}
	return out
}

// ToolOutput returns the output the CLI sent for the tool call callID.
func (r *Request) ToolOutput(callID string) (string, bool) {
	for _, it := range r.Input {
		if it.CallID == callID && strings.HasSuffix(it.Type, "_output") {
			return it.Text, true
		}
	}
	return "", false
}

// HasTool reports whether the request offered a tool of that name.
func (r *Request) HasTool(name string) bool {
	for _, t := range r.Tools {
		if t == name {
			return true
		}
	}
	return false
}

func readRequest(r *http.Request) (*Request, error) {
	var body bytes.Buffer
	if _, err := body.ReadFrom(r.Body); err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if enc := r.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
		return nil, fmt.Errorf("content-encoding %q is not supported", enc)
	}
	var raw struct {
		Model string            `json:"model"`
		Input []json.RawMessage `json:"input"`
		Tools []struct {
			Type string `json:"type"`
			Name string `json:"name"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(body.Bytes(), &raw); err != nil {
		return nil, fmt.Errorf("decode body: %w", err)
	}
	req := &Request{Header: r.Header.Clone(), Body: body.Bytes(), Model: raw.Model}
	for _, t := range raw.Tools {
		name := t.Name
		if name == "" {
			name = t.Type
		}
		req.Tools = append(req.Tools, name)
	}
	for _, b := range raw.Input {
		var it InputItem
		if err := json.Unmarshal(b, &it); err != nil {
			return nil, fmt.Errorf("decode input item: %w", err)
		}
		it.Raw = b
		it.Text = itemText(b)
		req.Input = append(req.Input, it)
	}
	return req, nil
}

// itemText flattens the text of a message ("content") or a tool output
// ("output": a string or a list of text parts).
func itemText(b json.RawMessage) string {
	var v struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
		Output json.RawMessage `json:"output"`
		Tools  json.RawMessage `json:"tools"`
	}
	if json.Unmarshal(b, &v) != nil {
		return ""
	}
	var parts []string
	for _, c := range v.Content {
		parts = append(parts, c.Text)
	}
	if len(v.Output) > 0 {
		var s string
		if json.Unmarshal(v.Output, &s) == nil {
			parts = append(parts, s)
		} else {
			var list []struct {
				Text string `json:"text"`
			}
			if json.Unmarshal(v.Output, &list) == nil {
				for _, c := range list {
					parts = append(parts, c.Text)
				}
			}
		}
	}
	if len(v.Tools) > 0 {
		parts = append(parts, string(v.Tools))
	}
	return strings.Join(parts, "\n")
}

// Home is an isolated home for one codex: HOME and CODEX_HOME in a
// temporary directory, with a config.toml that points codex at the fake
// server and turns off what would reach the network (update check,
// analytics, feedback, plugin sync).
type Home struct {
	// Dir is HOME; CodexHome is Dir/.codex.
	Dir, CodexHome string
	// Env is the environment a codex run needs: HOME, CODEX_HOME, the
	// fake provider's key, and proxy variables that send any other
	// connection to the server, which refuses and records it.
	Env map[string]string
}

// NewHome makes an isolated home for codex runs against s, with model as
// the configured model (empty: Model).
func (s *Server) NewHome(tb testing.TB, model string) *Home {
	tb.Helper()
	if model == "" {
		model = Model
	}
	dir := tb.TempDir()
	h := &Home{Dir: dir, CodexHome: filepath.Join(dir, ".codex")}
	if err := os.MkdirAll(h.CodexHome, 0o700); err != nil {
		tb.Fatalf("codextest: %v", err)
	}
	if err := os.WriteFile(filepath.Join(h.CodexHome, "config.toml"), []byte(s.ConfigTOML(model)), 0o600); err != nil {
		tb.Fatalf("codextest: %v", err)
	}
	proxy := s.URL()
	h.Env = map[string]string{
		"HOME":        h.Dir,
		"CODEX_HOME":  h.CodexHome,
		KeyEnv:        Key,
		"HTTPS_PROXY": proxy, "https_proxy": proxy,
		"HTTP_PROXY": proxy, "http_proxy": proxy,
		"ALL_PROXY": proxy, "all_proxy": proxy,
		"NO_PROXY": "127.0.0.1,localhost,::1", "no_proxy": "127.0.0.1,localhost,::1",
	}
	return h
}

// ConfigTOML is the config.toml of a Home: the fake provider as the model
// provider, and no update check, analytics, feedback or plugin sync
// (each of which connects to OpenAI or GitHub at startup otherwise).
func (s *Server) ConfigTOML(model string) string {
	return fmt.Sprintf(`model = %q
model_provider = %q
check_for_update_on_startup = false

[model_providers.%s]
name = "codextest fake Responses API"
base_url = %q
wire_api = "responses"
env_key = %q
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

[feedback]
enabled = false

[features]
plugins = false
`, model, ProviderID, ProviderID, s.BaseURL(), KeyEnv)
}
