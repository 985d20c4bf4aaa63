package llm

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const openAITestKey = "sk-proj-test"

// openAIWire is an httptest server speaking OpenAI's Chat Completions API
// at /v1/chat/completions, as OpenAI and compatible servers (vLLM, Ollama)
// do. It records every request it accepted.
type openAIWire struct {
	URL string

	mu   sync.Mutex
	reqs []openAIWireRequest
}

// openAIWireRequest is what one POST /v1/chat/completions carried.
type openAIWireRequest struct {
	Header http.Header
	// Fields lists the body's top-level keys, to tell max_tokens from
	// max_completion_tokens.
	Fields              map[string]json.RawMessage
	Model               string
	MaxTokens           int
	MaxCompletionTokens int
	Messages            []Message
}

// openAIReply answers the n-th (1-based) accepted request.
type openAIReply func(w http.ResponseWriter, r *http.Request, n int, req openAIWireRequest)

// newOpenAIWire starts the fake. With a non-empty key it demands
// "Authorization: Bearer key" as OpenAI does; with an empty one it accepts
// anything, as Ollama does. A nil reply answers with writeOpenAICompletion.
func newOpenAIWire(t *testing.T, key string, reply openAIReply) *openAIWire {
	t.Helper()
	wire := &openAIWire{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		if key != "" && r.Header.Get("Authorization") != "Bearer "+key {
			writeOpenAIError(w, http.StatusUnauthorized, "Incorrect API key provided: sk-wro***ong.", "invalid_request_error", "invalid_api_key")
			return
		}
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
			writeOpenAIError(w, http.StatusBadRequest, "Content-Type must be application/json", "invalid_request_error", nil)
			return
		}
		var fields map[string]json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&fields); err != nil {
			writeOpenAIError(w, http.StatusBadRequest, "We could not parse the JSON body of your request.", "invalid_request_error", nil)
			return
		}
		req := openAIWireRequest{Header: r.Header.Clone(), Fields: fields}
		var messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		}
		if err := json.Unmarshal(fields["model"], &req.Model); err != nil || req.Model == "" {
			writeOpenAIError(w, http.StatusBadRequest, "you must provide a model parameter", "invalid_request_error", nil)
			return
		}
		if err := json.Unmarshal(fields["messages"], &messages); err != nil || len(messages) == 0 {
			writeOpenAIError(w, http.StatusBadRequest, "'messages' must be a non-empty array of {role, content: string}", "invalid_request_error", nil)
			return
		}
		for name, dst := range map[string]*int{"max_tokens": &req.MaxTokens, "max_completion_tokens": &req.MaxCompletionTokens} {
			if raw, ok := fields[name]; ok {
				if err := json.Unmarshal(raw, dst); err != nil {
					writeOpenAIError(w, http.StatusBadRequest, name+" must be an integer", "invalid_request_error", nil)
					return
				}
			}
		}
		for _, m := range messages {
			req.Messages = append(req.Messages, Message{Role: m.Role, Content: m.Content})
		}
		wire.mu.Lock()
		wire.reqs = append(wire.reqs, req)
		n := len(wire.reqs)
		wire.mu.Unlock()

		if reply == nil {
			writeOpenAICompletion(w, req.Model, 20, 6, "Hello from GPT.")
			return
		}
		reply(w, r, n, req)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	wire.URL = srv.URL
	return wire
}

// requests returns the requests accepted so far.
func (w *openAIWire) requests() []openAIWireRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]openAIWireRequest(nil), w.reqs...)
}

// writeOpenAICompletion writes a successful reply shaped like the API's.
func writeOpenAICompletion(w http.ResponseWriter, model string, promptTokens, completionTokens int, text string) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id":      "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
		"object":  "chat.completion",
		"created": 1741569952,
		"model":   model,
		"choices": []map[string]any{{
			"index":         0,
			"message":       map[string]any{"role": "assistant", "content": text, "refusal": nil, "annotations": []any{}},
			"logprobs":      nil,
			"finish_reason": "stop",
		}},
		"usage": map[string]any{
			"prompt_tokens":     promptTokens,
			"completion_tokens": completionTokens,
			"total_tokens":      promptTokens + completionTokens,
		},
		"service_tier":       "default",
		"system_fingerprint": "fp_test",
	})
}

// writeOpenAIError writes an error reply shaped like the API's; code is a
// string, a number or nil, as servers differ.
func writeOpenAIError(w http.ResponseWriter, status int, message, errType string, code any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"error": map[string]any{"message": message, "type": errType, "param": nil, "code": code},
	})
}

var openAITestConversation = []Message{
	{Role: "user", Content: "Is this diff safe?"},
	{Role: "assistant", Content: "Which diff?"},
	{Role: "user", Content: "The one in the envelope."},
}

func TestOpenAIComplete(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		key     string
		baseURL func(wire *openAIWire) string
	}{
		{"key, /v1", openAITestKey, func(w *openAIWire) string { return w.URL + "/v1" }},
		{"key, /v1/", openAITestKey, func(w *openAIWire) string { return w.URL + "/v1/" }},
		{"no key (Ollama), /v1", "", func(w *openAIWire) string { return w.URL + "/v1" }},
		{"no key (Ollama), /v1/", "", func(w *openAIWire) string { return w.URL + "/v1/" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			wire := newOpenAIWire(t, tt.key, func(w http.ResponseWriter, _ *http.Request, _ int, req openAIWireRequest) {
				writeOpenAICompletion(w, req.Model+"-2024-08-06", 31, 9, "It is safe.")
			})
			p, err := NewOpenAI(OpenAIConfig{APIKey: tt.key, BaseURL: tt.baseURL(wire), Model: "gpt-4o"})
			require.NoError(t, err)
			require.Equal(t, "openai", p.Name())

			resp, err := p.Complete(t.Context(), &Request{System: "You are the relay's reviewer.", Messages: openAITestConversation})
			require.NoError(t, err)
			require.Equal(t, &Response{
				Text:  "It is safe.",
				Model: "gpt-4o-2024-08-06",
				Usage: Usage{InputTokens: 31, OutputTokens: 9},
			}, resp)

			reqs := wire.requests()
			require.Len(t, reqs, 1)
			got := reqs[0]
			require.Equal(t, "gpt-4o", got.Model)
			require.Equal(t, append([]Message{{Role: "system", Content: "You are the relay's reviewer."}}, openAITestConversation...), got.Messages)
			require.Equal(t, DefaultProviderMaxTokens, got.MaxTokens)
			require.NotContains(t, got.Fields, "max_completion_tokens")
			if tt.key == "" {
				require.NotContains(t, got.Header, "Authorization")
			} else {
				require.Equal(t, "Bearer "+openAITestKey, got.Header.Get("Authorization"))
			}
		})
	}
}

func TestOpenAIRequestOptions(t *testing.T) {
	t.Parallel()

	wire := newOpenAIWire(t, "", nil)
	p, err := NewOpenAI(OpenAIConfig{BaseURL: wire.URL + "/v1", Model: "llama3.2"})
	require.NoError(t, err)
	reasoning, err := NewOpenAI(OpenAIConfig{BaseURL: wire.URL + "/v1", Model: "o3", UseMaxCompletionTokens: true})
	require.NoError(t, err)

	resp, err := p.Complete(t.Context(), &Request{Model: "qwen2.5-coder", MaxTokens: 300, Messages: openAITestConversation[:1]})
	require.NoError(t, err)
	require.Equal(t, "qwen2.5-coder", resp.Model)
	_, err = reasoning.Complete(t.Context(), &Request{MaxTokens: 5000, Messages: openAITestConversation[:1]})
	require.NoError(t, err)

	reqs := wire.requests()
	require.Len(t, reqs, 2)
	require.Equal(t, "qwen2.5-coder", reqs[0].Model)
	require.Equal(t, 300, reqs[0].MaxTokens)
	require.Equal(t, []Message{{Role: "user", Content: "Is this diff safe?"}}, reqs[0].Messages, "no system message without a system prompt")
	require.Equal(t, "o3", reqs[1].Model)
	require.Equal(t, 5000, reqs[1].MaxCompletionTokens)
	require.NotContains(t, reqs[1].Fields, "max_tokens")
}

func TestNewOpenAIValidates(t *testing.T) {
	t.Parallel()

	_, err := NewOpenAI(OpenAIConfig{})
	require.EqualError(t, err, "openai: Model is required")

	_, err = NewOpenAI(OpenAIConfig{Model: "m", BaseURL: "localhost:11434/v1"})
	require.ErrorContains(t, err, "openai: BaseURL")

	p, err := NewOpenAI(OpenAIConfig{Model: "gpt-4o"})
	require.NoError(t, err)
	require.Equal(t, DefaultOpenAIBaseURL, p.cfg.BaseURL)
	require.Equal(t, DefaultProviderTimeout, p.cfg.Timeout)
	require.Same(t, http.DefaultClient, p.cfg.HTTPClient)
}

func TestOpenAIRejectsBadRequestLocally(t *testing.T) {
	t.Parallel()

	wire := newOpenAIWire(t, "", nil)
	p, err := NewOpenAI(OpenAIConfig{BaseURL: wire.URL + "/v1", Model: "m"})
	require.NoError(t, err)

	_, err = p.Complete(t.Context(), &Request{Messages: []Message{{Role: "tool", Content: "x"}}})
	require.EqualError(t, err, `openai: message 0: unknown role "tool"`)
	_, err = p.Complete(t.Context(), &Request{})
	require.EqualError(t, err, "openai: request has no messages")
	require.Empty(t, wire.requests())
}

func TestOpenAINoChoices(t *testing.T) {
	t.Parallel()

	wire := newOpenAIWire(t, "", func(w http.ResponseWriter, _ *http.Request, _ int, _ openAIWireRequest) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprint(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":0,"total_tokens":1}}`)
	})
	p, err := NewOpenAI(OpenAIConfig{BaseURL: wire.URL + "/v1", Model: "m"})
	require.NoError(t, err)

	_, err = p.Complete(t.Context(), &Request{Messages: openAITestConversation})
	require.EqualError(t, err, "openai: reply has no choices")
}

func TestOpenAIErrorReplies(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name      string
		status    int
		message   string
		errType   string
		code      any
		header    map[string]string
		rawBody   string // instead of the JSON error, if set
		wantErr   string
		wantRetry bool
		wantWait  time.Duration
	}{
		{
			name: "rate limited", status: 429, errType: "requests", code: "rate_limit_exceeded",
			message:   "Rate limit reached for gpt-4o on requests per min (RPM): Limit 500, Used 500, Requested 1.",
			header:    map[string]string{"Retry-After-Ms": "1500", "Retry-After": "2"},
			wantErr:   "openai: 429 Too Many Requests: Rate limit reached for gpt-4o on requests per min (RPM): Limit 500, Used 500, Requested 1.",
			wantRetry: true, wantWait: 1500 * time.Millisecond,
		},
		{
			name: "quota", status: 429, errType: "insufficient_quota", code: "insufficient_quota",
			message:   "You exceeded your current quota, please check your plan and billing details.",
			header:    map[string]string{"X-Should-Retry": "false"},
			wantErr:   "openai: 429 Too Many Requests: You exceeded your current quota, please check your plan and billing details.",
			wantRetry: false,
		},
		{
			name: "server error, numeric code", status: 500, errType: "server_error", code: 500,
			message: "The server had an error while processing your request.",
			wantErr: "openai: 500 Internal Server Error: The server had an error while processing your request.", wantRetry: true,
		},
		{
			name: "unavailable, null code", status: 503, errType: "server_error", code: nil,
			message:   "The engine is currently overloaded, please try again later",
			header:    map[string]string{"Retry-After": "3"},
			wantErr:   "openai: 503 Service Unavailable: The engine is currently overloaded, please try again later",
			wantRetry: true, wantWait: 3 * time.Second,
		},
		{
			name: "unknown model", status: 404, errType: "invalid_request_error", code: "model_not_found",
			message: "The model `gpt-9` does not exist or you do not have access to it.",
			wantErr: "openai: 404 Not Found: The model `gpt-9` does not exist or you do not have access to it.",
		},
		{
			name: "proxy page", status: 504, rawBody: "<html><body><h1>504 Gateway Time-out</h1></body></html>",
			wantErr:   "openai: 504 Gateway Timeout: <html><body><h1>504 Gateway Time-out</h1></body></html>",
			wantRetry: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			wire := newOpenAIWire(t, "", func(w http.ResponseWriter, _ *http.Request, _ int, _ openAIWireRequest) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				if tt.rawBody != "" {
					w.Header().Set("Content-Type", "text/html")
					w.WriteHeader(tt.status)
					_, _ = fmt.Fprint(w, tt.rawBody)
					return
				}
				writeOpenAIError(w, tt.status, tt.message, tt.errType, tt.code)
			})
			p, err := NewOpenAI(OpenAIConfig{BaseURL: wire.URL + "/v1", Model: "gpt-4o"})
			require.NoError(t, err)

			_, err = p.Complete(t.Context(), &Request{Messages: openAITestConversation})
			require.EqualError(t, err, tt.wantErr)
			var pe *ProviderError
			require.ErrorAs(t, err, &pe)
			require.Equal(t, "openai", pe.Provider)
			require.Equal(t, tt.status, pe.StatusCode)
			require.Equal(t, tt.wantRetry, pe.Retryable)
			require.Equal(t, tt.wantWait, pe.RetryAfter)

			require.ErrorContains(t, pe.Err, fmt.Sprint(tt.status), "the cause names the HTTP status")
		})
	}
}

func TestOpenAIWrongKey(t *testing.T) {
	t.Parallel()

	wire := newOpenAIWire(t, openAITestKey, nil)
	p, err := NewOpenAI(OpenAIConfig{APIKey: "sk-wrong", BaseURL: wire.URL + "/v1", Model: "gpt-4o"})
	require.NoError(t, err)

	_, err = p.Complete(t.Context(), &Request{Messages: openAITestConversation})
	require.EqualError(t, err, "openai: 401 Unauthorized: Incorrect API key provided: sk-wro***ong.")
	var pe *ProviderError
	require.ErrorAs(t, err, &pe)
	require.False(t, pe.Retryable)
	require.Empty(t, wire.requests())
}
