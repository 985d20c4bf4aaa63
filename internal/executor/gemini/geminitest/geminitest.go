// Package geminitest is a fake Gemini API (generativelanguage.googleapis.com
// v1beta) for tests that run the real Gemini CLI: the requests its
// @google/genai client makes with gemini-api-key auth and
// GOOGLE_GEMINI_BASE_URL pointing here.
//
// The conversation is scripted: each request of the agent's main loop (a
// streamGenerateContent call, alt=sse, that declares tools) takes the next
// Turn from the queue and gets it back as server-sent events — function
// calls of the CLI's real tools (write_file, replace, run_shell_command,
// MCP tools as mcp_<server>_<tool>) or a final text — with usageMetadata.
// The CLI's side requests (model routing, next-speaker checks, session
// summaries: generateContent with or without a JSON schema, countTokens)
// get a plausible answer, and their usage is counted too. Every request is
// recorded, so tests can check the history the CLI sent (a resumed session,
// a tool's result).
package geminitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/mcp-task-relay/mcp-task-relay/internal/executor/executortest"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// APIKey is the key the fake server expects in x-goog-api-key.
const APIKey = "geminitest-key"

// DefaultModel is the modelVersion the server reports when the request's
// model is not known.
const DefaultModel = "gemini-2.5-pro"

// Usage is what a response reports in usageMetadata.
type Usage struct {
	Prompt     int // promptTokenCount (cached tokens included)
	Candidates int // candidatesTokenCount
	Cached     int // cachedContentTokenCount
	Thoughts   int // thoughtsTokenCount
}

// Add returns the sum of u and v.
func (u Usage) Add(v Usage) Usage {
	return Usage{Prompt: u.Prompt + v.Prompt, Candidates: u.Candidates + v.Candidates,
		Cached: u.Cached + v.Cached, Thoughts: u.Thoughts + v.Thoughts}
}

// Call is a function call the model makes.
type Call struct {
	// Name is the tool's name as the CLI declares it: write_file, replace,
	// run_shell_command, or mcp_<server>_<tool> for an MCP tool.
	Name string
	Args map[string]any
}

// WriteFile calls the CLI's write_file tool.
func WriteFile(path, content string) Call {
	return Call{Name: "write_file", Args: map[string]any{"file_path": path, "content": content}}
}

// Replace calls the CLI's replace tool.
func Replace(path, old, replacement string) Call {
	return Call{Name: "replace", Args: map[string]any{"file_path": path, "old_string": old, "new_string": replacement,
		"instruction": "Replace the text as the task asks."}}
}

// Shell calls the CLI's run_shell_command tool.
func Shell(command string) Call {
	return Call{Name: "run_shell_command", Args: map[string]any{"command": command, "description": "Run a command for the task."}}
}

// MCP calls tool of the MCP server named server (mcp_<server>_<tool>).
func MCP(server, tool string, args map[string]any) Call {
	return Call{Name: "mcp_" + server + "_" + tool, Args: args}
}

// Turn is one scripted answer of the model.
type Turn struct {
	// Calls are function calls, made in parallel in one answer.
	Calls []Call
	// Text is the answer's text (after any calls). A final answer has
	// text and no calls.
	Text string
	// Usage is reported in usageMetadata. Defaults to DefaultUsage.
	Usage Usage
	// Error, when set, is returned instead: an HTTP error status with the
	// API's error object. 4xx other than 429 is not retried by the CLI.
	Error *APIError
}

// APIError is an error response of the API.
type APIError struct {
	Code    int    // HTTP status
	Message string // error.message
}

// DefaultUsage is the usage of a Turn that sets none.
var DefaultUsage = Usage{Prompt: 1000, Candidates: 50, Cached: 200}

// sideUsage is the usage of a side request (routing, checks, summaries).
var sideUsage = Usage{Prompt: 40, Candidates: 8}

// Request is a request the server received.
type Request struct {
	// Method is the API method: streamGenerateContent, generateContent,
	// countTokens, or the path of anything else.
	Method string
	// Model is the model in the path.
	Model string
	// Scripted is set for the requests of the agent's main loop, which took
	// a Turn.
	Scripted bool
	// Body is the raw JSON body.
	Body json.RawMessage
	// Contents is the conversation the request carried.
	Contents []Content
	// Tools are the names of the functions the request declared.
	Tools []string
	// Usage is what the response reported.
	Usage Usage
}

// Content is one message of a conversation.
type Content struct {
	Role  string `json:"role"`
	Parts []Part `json:"parts"`
}

// Part is one part of a message; one of its fields is set.
type Part struct {
	Text             string            `json:"text,omitempty"`
	FunctionCall     *FunctionCall     `json:"functionCall,omitempty"`
	FunctionResponse *FunctionResponse `json:"functionResponse,omitempty"`
}

// FunctionCall is a function call in a conversation.
type FunctionCall struct {
	Name string         `json:"name"`
	Args map[string]any `json:"args,omitempty"`
}

// FunctionResponse is a tool's result in a conversation.
type FunctionResponse struct {
	Name     string         `json:"name"`
	Response map[string]any `json:"response,omitempty"`
}

// Text returns the texts of the content's parts, joined by newlines.
func (c Content) Text() string {
	var parts []string
	for _, p := range c.Parts {
		if p.Text != "" {
			parts = append(parts, p.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// Transcript renders the conversation of a request as text, one line per
// part, for assertions: "user: text", "model: call name {args}",
// "user: result name {response}".
func (r Request) Transcript() string {
	var b strings.Builder
	for _, c := range r.Contents {
		for _, p := range c.Parts {
			switch {
			case p.FunctionCall != nil:
				args, _ := json.Marshal(p.FunctionCall.Args)
				fmt.Fprintf(&b, "%s: call %s %s\n", c.Role, p.FunctionCall.Name, args)
			case p.FunctionResponse != nil:
				resp, _ := json.Marshal(p.FunctionResponse.Response)
				fmt.Fprintf(&b, "%s: result %s %s\n", c.Role, p.FunctionResponse.Name, resp)
			case p.Text != "":
				fmt.Fprintf(&b, "%s: %s\n", c.Role, p.Text)
			}
		}
	}
	return b.String()
}

// Server is the fake Gemini API. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL (GOOGLE_GEMINI_BASE_URL).
	URL string

	srv *httptest.Server
	executortest.Recorder[Turn, Request]
}

// New starts a fake Gemini API on 127.0.0.1 that is closed when tb ends.
func New(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	tb.Cleanup(s.srv.Close)
	return s
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

// Env returns the environment that points the Gemini CLI at the server:
// GOOGLE_GEMINI_BASE_URL and GEMINI_API_KEY.
func (s *Server) Env() map[string]string {
	return map[string]string{"GOOGLE_GEMINI_BASE_URL": s.URL, "GEMINI_API_KEY": APIKey}
}

// Settings are user settings for a Gemini CLI that talks to the fake
// server only: API-key auth, and no telemetry, usage statistics, update
// checks or IDE connection.
const Settings = `{
  "security": {"auth": {"selectedType": "gemini-api-key"}},
  "telemetry": {"enabled": false},
  "privacy": {"usageStatisticsEnabled": false},
  "general": {"enableAutoUpdate": false, "enableAutoUpdateNotification": false},
  "ide": {"enabled": false}
}
`

// WriteHome makes home a Gemini CLI home (HOME or GEMINI_CLI_HOME) with
// Settings as its ~/.gemini/settings.json, and returns home.
func WriteHome(tb testing.TB, home string) string {
	tb.Helper()
	dir := filepath.Join(home, ".gemini")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "settings.json"), []byte(Settings), 0o600); err != nil {
		tb.Fatal(err)
	}
	return home
}

func (s *Server) problem(format string, a ...any) { s.Problem(format, a...) }

// request is the part of a GenerateContentRequest the server reads.
type request struct {
	Contents []Content `json:"contents"`
	Tools    []struct {
		FunctionDeclarations []struct {
			Name string `json:"name"`
		} `json:"functionDeclarations"`
	} `json:"tools"`
	GenerationConfig struct {
		ResponseMimeType   string          `json:"responseMimeType"`
		ResponseJSONSchema json.RawMessage `json:"responseJsonSchema"`
		ResponseSchema     json.RawMessage `json:"responseSchema"`
	} `json:"generationConfig"`
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if key := r.Header.Get("x-goog-api-key"); key != APIKey && r.URL.Query().Get("key") != APIKey {
		s.problem("%s %s: API key %q", r.Method, r.URL.Path, key)
		writeError(w, http.StatusUnauthorized, "API key not valid.")
		return
	}
	// Paths are /v1beta/models/MODEL:METHOD.
	path := strings.TrimPrefix(r.URL.Path, "/")
	_, rest, _ := strings.Cut(path, "models/")
	model, method, ok := strings.Cut(rest, ":")
	if r.Method != http.MethodPost || !ok {
		s.problem("unexpected request %s %s", r.Method, r.URL.Path)
		writeError(w, http.StatusNotFound, "no such method: "+r.URL.Path)
		return
	}
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		s.problem("%s: bad JSON: %v", path, err)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	rec := Request{Method: method, Model: model, Body: body, Contents: req.Contents}
	for _, t := range req.Tools {
		for _, f := range t.FunctionDeclarations {
			rec.Tools = append(rec.Tools, f.Name)
		}
	}
	switch {
	case method == "countTokens":
		s.record(rec)
		writeJSON(w, map[string]any{"totalTokens": 42})
	case method == "streamGenerateContent" && len(rec.Tools) > 0:
		rec.Scripted = true
		turn := s.next(model)
		if turn.Error != nil {
			s.record(rec)
			writeError(w, turn.Error.Code, turn.Error.Message)
			return
		}
		rec.Usage = turn.Usage
		s.record(rec)
		s.stream(w, r, turn, model)
	case method == "generateContent" || method == "streamGenerateContent":
		rec.Usage = sideUsage
		s.record(rec)
		text := "OK."
		if schema := cmpRaw(req.GenerationConfig.ResponseJSONSchema, req.GenerationConfig.ResponseSchema); schema != nil {
			b, _ := json.Marshal(sample(schema))
			text = string(b)
		}
		resp := response(model, []map[string]any{{"text": text}}, sideUsage)
		if method == "streamGenerateContent" {
			w.Header().Set("Content-Type", "text/event-stream")
			writeEvent(w, resp)
			return
		}
		writeJSON(w, resp)
	default:
		s.problem("unexpected method %s", path)
		writeError(w, http.StatusNotFound, "no such method: "+method)
	}
}

func (s *Server) record(rec Request) { s.Record(rec) }

// next takes the next scripted turn.
func (s *Server) next(model string) Turn {
	t, ok := s.Next()
	if !ok {
		s.Problem("a main-loop request to %s found no scripted turn", model)
		return Turn{Text: "(geminitest: no scripted turn left)", Usage: DefaultUsage}
	}
	if t.Usage == (Usage{}) && t.Error == nil {
		t.Usage = DefaultUsage
	}
	return t
}

// stream writes turn as server-sent events: the calls in one chunk, the
// text in two, and the usage on the last, as the real API streams.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, turn Turn, model string) {
	w.Header().Set("Content-Type", "text/event-stream")
	var chunks [][]map[string]any
	if len(turn.Calls) > 0 {
		var parts []map[string]any
		for _, c := range turn.Calls {
			args := c.Args
			if args == nil {
				args = map[string]any{}
			}
			parts = append(parts, map[string]any{"functionCall": map[string]any{"name": c.Name, "args": args}})
		}
		chunks = append(chunks, parts)
	}
	if turn.Text != "" {
		half := len(turn.Text) / 2
		for half > 0 && half < len(turn.Text) && turn.Text[half]&0xC0 == 0x80 {
			half++ // not inside a UTF-8 sequence
		}
		for _, t := range []string{turn.Text[:half], turn.Text[half:]} {
			if t != "" {
				chunks = append(chunks, []map[string]any{{"text": t}})
			}
		}
	}
	for i, parts := range chunks {
		resp := map[string]any{
			"candidates":   []map[string]any{{"content": map[string]any{"role": "model", "parts": parts}, "index": 0}},
			"modelVersion": modelVersion(model),
		}
		if i == len(chunks)-1 {
			resp = response(model, parts, turn.Usage)
		}
		writeEvent(w, resp)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		if r.Context().Err() != nil {
			return
		}
	}
}

// response is a whole GenerateContentResponse ending the answer.
func response(model string, parts []map[string]any, u Usage) map[string]any {
	usage := map[string]any{
		"promptTokenCount":     u.Prompt,
		"candidatesTokenCount": u.Candidates,
		"totalTokenCount":      u.Prompt + u.Candidates + u.Thoughts,
	}
	if u.Cached > 0 {
		usage["cachedContentTokenCount"] = u.Cached
	}
	if u.Thoughts > 0 {
		usage["thoughtsTokenCount"] = u.Thoughts
	}
	return map[string]any{
		"candidates": []map[string]any{{
			"content":      map[string]any{"role": "model", "parts": parts},
			"finishReason": "STOP",
			"index":        0,
		}},
		"usageMetadata": usage,
		"modelVersion":  modelVersion(model),
	}
}

func modelVersion(model string) string {
	if model == "" {
		return DefaultModel
	}
	return model
}

func writeEvent(w io.Writer, v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintf(w, "data: %s\r\n\r\n", b)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// statuses are the API's error statuses by HTTP code.
var statuses = map[int]string{400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
	429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	status := statuses[code]
	if status == "" {
		status = "UNKNOWN"
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg, "status": status}})
}

func cmpRaw(a, b json.RawMessage) json.RawMessage {
	for _, r := range []json.RawMessage{a, b} {
		if len(bytes.TrimSpace(r)) > 0 && string(r) != "null" {
			return r
		}
	}
	return nil
}

// sample returns a value that satisfies the JSON schema raw (OpenAPI or
// JSON Schema flavour, as the CLI's side requests use): objects with
// their required properties, the first enum value, small numbers.
func sample(raw json.RawMessage) any {
	var sc struct {
		Type       any                        `json:"type"`
		Properties map[string]json.RawMessage `json:"properties"`
		Required   []string                   `json:"required"`
		Enum       []any                      `json:"enum"`
		Items      json.RawMessage            `json:"items"`
	}
	if json.Unmarshal(raw, &sc) != nil {
		return nil
	}
	if len(sc.Enum) > 0 {
		return sc.Enum[0]
	}
	typ, _ := sc.Type.(string)
	if types, ok := sc.Type.([]any); ok && len(types) > 0 {
		typ, _ = types[0].(string)
	}
	switch strings.ToLower(typ) {
	case "object":
		out := map[string]any{}
		for _, name := range sc.Required {
			out[name] = sample(sc.Properties[name])
		}
		return out
	case "array":
		if sc.Items != nil {
			return []any{sample(sc.Items)}
		}
		return []any{}
	case "integer", "number":
		return 30
	case "boolean":
		return false
	case "string":
		return "geminitest"
	}
	return nil
}
