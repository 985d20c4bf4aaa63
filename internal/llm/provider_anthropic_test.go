package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const anthropicTestKey = "sk-ant-test"

// anthropicWire is an httptest server speaking Anthropic's Messages API:
// it checks the headers and body the way the API does and records every
// request it accepted.
type anthropicWire struct {
	URL string

	mu   sync.Mutex
	reqs []anthropicWireRequest
}

// anthropicWireRequest is what one POST /v1/messages carried.
type anthropicWireRequest struct {
	Header    http.Header
	Model     string
	MaxTokens int
	System    string
	Messages  []Message
}

// anthropicReply answers the n-th (1-based) accepted request; req is its
// decoded body.
type anthropicReply func(w http.ResponseWriter, r *http.Request, n int, req anthropicWireRequest)

// newAnthropicWire starts the fake. A nil reply answers every request with
// anthropicMessage.
func newAnthropicWire(t *testing.T, reply anthropicReply) *anthropicWire {
	t.Helper()
	wire := &anthropicWire{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/messages", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Key") != anthropicTestKey {
			writeAnthropicError(w, http.StatusUnauthorized, "authentication_error", "invalid x-api-key")
			return
		}
		if r.Header.Get("Anthropic-Version") == "" {
			writeAnthropicError(w, http.StatusBadRequest, "invalid_request_error", "anthropic-version: header is required")
			return
		}
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
			writeAnthropicError(w, http.StatusBadRequest, "invalid_request_error", "content-type must be application/json")
			return
		}
		var body struct {
			Model     string          `json:"model"`
			MaxTokens int             `json:"max_tokens"`
			System    json.RawMessage `json:"system"`
			Messages  []struct {
				Role    string          `json:"role"`
				Content json.RawMessage `json:"content"`
			} `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeAnthropicError(w, http.StatusBadRequest, "invalid_request_error", "body: "+err.Error())
			return
		}
		switch {
		case body.Model == "":
			writeAnthropicError(w, http.StatusBadRequest, "invalid_request_error", "model: Field required")
			return
		case body.MaxTokens <= 0:
			writeAnthropicError(w, http.StatusBadRequest, "invalid_request_error", "max_tokens: Field required")
			return
		case len(body.Messages) == 0:
			writeAnthropicError(w, http.StatusBadRequest, "invalid_request_error", "messages: Field required")
			return
		}
		req := anthropicWireRequest{
			Header:    r.Header.Clone(),
			Model:     body.Model,
			MaxTokens: body.MaxTokens,
			System:    anthropicWireText(body.System),
		}
		for _, m := range body.Messages {
			req.Messages = append(req.Messages, Message{Role: m.Role, Content: anthropicWireText(m.Content)})
		}
		wire.mu.Lock()
		wire.reqs = append(wire.reqs, req)
		n := len(wire.reqs)
		wire.mu.Unlock()

		if reply == nil {
			writeAnthropicMessage(w, body.Model, 12, 5, "Hello from Claude.")
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
func (w *anthropicWire) requests() []anthropicWireRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]anthropicWireRequest(nil), w.reqs...)
}

// anthropicWireText reads the API's two shapes of text: a plain string,
// or an array of content blocks whose text blocks it concatenates.
func anthropicWireText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var blocks []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &blocks) != nil {
		return "<unparseable: " + string(raw) + ">"
	}
	var text string
	for _, b := range blocks {
		if b.Type == "text" {
			text += b.Text
		}
	}
	return text
}

// writeAnthropicMessage writes a successful reply shaped like the API's,
// one text block per texts element.
func writeAnthropicMessage(w http.ResponseWriter, model string, inputTokens, outputTokens int, texts ...string) {
	content := make([]map[string]any, 0, len(texts))
	for _, text := range texts {
		content = append(content, map[string]any{"type": "text", "text": text})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", "req_011CTestRequest")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id":            "msg_01XFDUDYJgAACzvnptvVoYEL",
		"type":          "message",
		"role":          "assistant",
		"model":         model,
		"content":       content,
		"stop_reason":   "end_turn",
		"stop_sequence": nil,
		"usage": map[string]any{
			"input_tokens":                inputTokens,
			"output_tokens":               outputTokens,
			"cache_creation_input_tokens": 0,
			"cache_read_input_tokens":     0,
			"service_tier":                "standard",
		},
	})
}

// writeAnthropicError writes an error reply shaped like the API's.
func writeAnthropicError(w http.ResponseWriter, status int, errType, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", "req_011CTestError")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type":       "error",
		"error":      map[string]any{"type": errType, "message": message},
		"request_id": "req_011CTestError",
	})
}

func newTestAnthropic(t *testing.T, baseURL string) *Anthropic {
	t.Helper()
	p, err := NewAnthropic(AnthropicConfig{APIKey: anthropicTestKey, BaseURL: baseURL})
	require.NoError(t, err)
	return p
}

func TestAnthropicComplete(t *testing.T) {
	t.Parallel()

	wire := newAnthropicWire(t, func(w http.ResponseWriter, _ *http.Request, _ int, req anthropicWireRequest) {
		writeAnthropicMessage(w, req.Model+"-20250929", 42, 7, "The answer ", "is 42.")
	})
	p := newTestAnthropic(t, wire.URL)
	require.Equal(t, "anthropic", p.Name())

	resp, err := p.Complete(t.Context(), &Request{
		System: "You are the relay's reviewer.",
		Messages: []Message{
			{Role: "user", Content: "Is this diff safe?"},
			{Role: "assistant", Content: "Which diff?"},
			{Role: "user", Content: "The one in the envelope."},
		},
	})
	require.NoError(t, err)
	require.Equal(t, &Response{
		Text:  "The answer is 42.",
		Model: "claude-sonnet-4-5-20250929",
		Usage: Usage{InputTokens: 42, OutputTokens: 7},
	}, resp)

	reqs := wire.requests()
	require.Len(t, reqs, 1)
	got := reqs[0]
	require.Equal(t, DefaultAnthropicModel, got.Model)
	require.Equal(t, DefaultProviderMaxTokens, got.MaxTokens)
	require.Equal(t, "You are the relay's reviewer.", got.System)
	require.Equal(t, []Message{
		{Role: "user", Content: "Is this diff safe?"},
		{Role: "assistant", Content: "Which diff?"},
		{Role: "user", Content: "The one in the envelope."},
	}, got.Messages)
	require.Equal(t, anthropicTestKey, got.Header.Get("X-Api-Key"))
	require.Equal(t, "2023-06-01", got.Header.Get("Anthropic-Version"))
	require.Empty(t, got.Header.Get("Authorization"))
}

func TestAnthropicRequestOverridesConfig(t *testing.T) {
	t.Parallel()

	wire := newAnthropicWire(t, nil)
	p, err := NewAnthropic(AnthropicConfig{APIKey: anthropicTestKey, BaseURL: wire.URL, Model: "claude-haiku-4-5"})
	require.NoError(t, err)

	resp, err := p.Complete(t.Context(), &Request{Messages: []Message{{Role: "user", Content: "hi"}}})
	require.NoError(t, err)
	require.Equal(t, "claude-haiku-4-5", resp.Model)

	// A large max_tokens is sent as it is: the provider sets its own
	// per-request timeout and never switches to streaming.
	_, err = p.Complete(t.Context(), &Request{
		Model:     "claude-opus-4-1",
		MaxTokens: 32000,
		Messages:  []Message{{Role: "user", Content: "hi"}},
	})
	require.NoError(t, err)

	reqs := wire.requests()
	require.Len(t, reqs, 2)
	require.Equal(t, "claude-haiku-4-5", reqs[0].Model)
	require.Empty(t, reqs[0].System, "no system prompt was given")
	require.Equal(t, "claude-opus-4-1", reqs[1].Model)
	require.Equal(t, 32000, reqs[1].MaxTokens)
}

func TestAnthropicBaseURLForms(t *testing.T) {
	t.Parallel()

	wire := newAnthropicWire(t, nil)
	for _, base := range []string{wire.URL, wire.URL + "/", wire.URL + "/v1", wire.URL + "/v1/"} {
		p := newTestAnthropic(t, base)
		resp, err := p.Complete(t.Context(), &Request{Messages: []Message{{Role: "user", Content: "hi"}}})
		require.NoError(t, err, "BaseURL %q", base)
		require.Equal(t, "Hello from Claude.", resp.Text)
	}
	require.Len(t, wire.requests(), 4)
}

func TestNewAnthropicValidates(t *testing.T) {
	t.Parallel()

	_, err := NewAnthropic(AnthropicConfig{})
	require.EqualError(t, err, "anthropic: APIKey is required")

	_, err = NewAnthropic(AnthropicConfig{APIKey: "k", BaseURL: "localhost:8080"})
	require.ErrorContains(t, err, "anthropic: BaseURL")

	p, err := NewAnthropic(AnthropicConfig{APIKey: "k"})
	require.NoError(t, err)
	require.Equal(t, DefaultAnthropicModel, p.cfg.Model)
	require.Equal(t, DefaultProviderTimeout, p.cfg.Timeout)
	require.Same(t, http.DefaultClient, p.cfg.HTTPClient)
}

func TestAnthropicRejectsBadRequestLocally(t *testing.T) {
	t.Parallel()

	wire := newAnthropicWire(t, nil)
	p := newTestAnthropic(t, wire.URL)

	_, err := p.Complete(t.Context(), &Request{Messages: []Message{{Role: "system", Content: "x"}}})
	require.EqualError(t, err, `anthropic: message 0: unknown role "system"`)
	_, err = p.Complete(t.Context(), &Request{System: "only a system prompt"})
	require.EqualError(t, err, "anthropic: request has no messages")
	require.Empty(t, wire.requests())
}

func TestAnthropicErrorReplies(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name      string
		status    int
		errType   string
		message   string
		header    map[string]string
		rawBody   string // instead of the JSON error, if set
		wantErr   string
		wantRetry bool
		wantWait  time.Duration
	}{
		{
			name: "rate limited", status: 429, errType: "rate_limit_error",
			message:   "Number of request tokens has exceeded your per-minute rate limit",
			header:    map[string]string{"Retry-After": "1"},
			wantErr:   "anthropic: 429 Too Many Requests: Number of request tokens has exceeded your per-minute rate limit",
			wantRetry: true, wantWait: time.Second,
		},
		{
			name: "overloaded", status: 529, errType: "overloaded_error", message: "Overloaded",
			wantErr: "anthropic: 529 Overloaded: Overloaded", wantRetry: true,
		},
		{
			name: "api error", status: 500, errType: "api_error", message: "Internal server error",
			header:  map[string]string{"Retry-After-Ms": "250"},
			wantErr: "anthropic: 500 Internal Server Error: Internal server error", wantRetry: true,
			wantWait: 250 * time.Millisecond,
		},
		{
			name: "server says do not retry", status: 500, errType: "api_error", message: "nope",
			header:  map[string]string{"X-Should-Retry": "false"},
			wantErr: "anthropic: 500 Internal Server Error: nope",
		},
		{
			name: "invalid request", status: 400, errType: "invalid_request_error",
			message: "max_tokens: 100000 > 64000, which is the maximum allowed",
			wantErr: "anthropic: 400 Bad Request: max_tokens: 100000 > 64000, which is the maximum allowed",
		},
		{
			name: "permission", status: 403, errType: "permission_error",
			message: "Your API key does not have permission to use the specified resource.",
			wantErr: "anthropic: 403 Forbidden: Your API key does not have permission to use the specified resource.",
		},
		{
			name: "proxy page", status: 502, rawBody: "<html>\n<body>502 Bad Gateway</body>\n</html>",
			wantErr:   "anthropic: 502 Bad Gateway: <html> <body>502 Bad Gateway</body> </html>",
			wantRetry: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			wire := newAnthropicWire(t, func(w http.ResponseWriter, _ *http.Request, _ int, _ anthropicWireRequest) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				if tt.rawBody != "" {
					w.Header().Set("Content-Type", "text/html")
					w.WriteHeader(tt.status)
					_, _ = fmt.Fprint(w, tt.rawBody)
					return
				}
				writeAnthropicError(w, tt.status, tt.errType, tt.message)
			})
			p := newTestAnthropic(t, wire.URL)

			_, err := p.Complete(t.Context(), &Request{Messages: []Message{{Role: "user", Content: "hi"}}})
			require.EqualError(t, err, tt.wantErr)
			var pe *ProviderError
			require.ErrorAs(t, err, &pe)
			require.Equal(t, "anthropic", pe.Provider)
			require.Equal(t, tt.status, pe.StatusCode)
			require.Equal(t, tt.wantRetry, pe.Retryable)
			require.Equal(t, tt.wantWait, pe.RetryAfter)

			// The API's error stays reachable, with its status, type and
			// request id.
			var apiErr *AnthropicError
			require.ErrorAs(t, err, &apiErr)
			require.Equal(t, tt.status, apiErr.StatusCode)
			require.Equal(t, tt.errType, apiErr.Type)
			if tt.rawBody == "" {
				require.Equal(t, "req_011CTestError", apiErr.RequestID)
			}
		})
	}
}

func TestAnthropicWrongKey(t *testing.T) {
	t.Parallel()

	wire := newAnthropicWire(t, nil)
	p, err := NewAnthropic(AnthropicConfig{APIKey: "sk-ant-wrong", BaseURL: wire.URL})
	require.NoError(t, err)

	_, err = p.Complete(t.Context(), &Request{Messages: []Message{{Role: "user", Content: "hi"}}})
	require.EqualError(t, err, "anthropic: 401 Unauthorized: invalid x-api-key")
	var pe *ProviderError
	require.ErrorAs(t, err, &pe)
	require.False(t, pe.Retryable)
}

func TestAnthropicCallerCancel(t *testing.T) {
	t.Parallel()

	ctx, cancel := context.WithCancel(t.Context())
	wire := newAnthropicWire(t, func(w http.ResponseWriter, r *http.Request, _ int, _ anthropicWireRequest) {
		cancel()
		<-r.Context().Done()
	})
	p := newTestAnthropic(t, wire.URL)

	_, err := p.Complete(ctx, &Request{Messages: []Message{{Role: "user", Content: "hi"}}})
	require.ErrorIs(t, err, context.Canceled)
	var pe *ProviderError
	require.ErrorAs(t, err, &pe)
	require.False(t, pe.Retryable, "the caller gave up; retrying would be wrong")
	require.False(t, errors.Is(err, context.DeadlineExceeded))
}

func TestAnthropicEndpoint(t *testing.T) {
	t.Parallel()

	p, err := NewAnthropic(AnthropicConfig{APIKey: "k"})
	require.NoError(t, err)
	require.Equal(t, "https://api.anthropic.com/v1/messages", p.endpoint)
	for _, base := range []string{"http://proxy:8080/llm", "http://proxy:8080/llm/", "http://proxy:8080/llm/v1", "http://proxy:8080/llm/v1/"} {
		require.Equal(t, "http://proxy:8080/llm/v1/messages", anthropicEndpoint(base), base)
	}
}

func TestAnthropicReplyShapes(t *testing.T) {
	t.Parallel()

	wire := newAnthropicWire(t, func(w http.ResponseWriter, _ *http.Request, n int, req anthropicWireRequest) {
		w.Header().Set("Content-Type", "application/json")
		if n == 1 {
			// Blocks other than text (a thinking block, say) are not the answer.
			_, _ = fmt.Fprintf(w, `{"type":"message","role":"assistant","model":%q,
				"content":[{"type":"thinking","thinking":"hmm","signature":"x"},{"type":"text","text":"yes"}],
				"usage":{"input_tokens":9,"output_tokens":2}}`, req.Model)
			return
		}
		_, _ = fmt.Fprint(w, "not json")
	})
	p := newTestAnthropic(t, wire.URL)

	resp, err := p.Complete(t.Context(), &Request{Messages: []Message{{Role: "user", Content: "ok?"}}})
	require.NoError(t, err)
	require.Equal(t, &Response{Text: "yes", Model: DefaultAnthropicModel, Usage: Usage{InputTokens: 9, OutputTokens: 2}}, resp)

	_, err = p.Complete(t.Context(), &Request{Messages: []Message{{Role: "user", Content: "ok?"}}})
	require.ErrorContains(t, err, "anthropic: reply is not a message: ")
	var pe *ProviderError
	require.ErrorAs(t, err, &pe)
	require.False(t, pe.Retryable)
}
