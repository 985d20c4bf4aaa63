package llm

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults shared by the HTTP providers.
const (
	// DefaultAnthropicModel is the model Anthropic answers with when neither
	// the config nor the request names one.
	DefaultAnthropicModel = "claude-sonnet-4-5"
	// DefaultAnthropicBaseURL is Anthropic's own endpoint.
	DefaultAnthropicBaseURL = "https://api.anthropic.com"
	// AnthropicVersion is the Messages API version the provider speaks
	// (the anthropic-version header).
	AnthropicVersion = "2023-06-01"
	// DefaultProviderMaxTokens bounds a reply when the request does not.
	DefaultProviderMaxTokens = 1024
	// DefaultProviderTimeout bounds one HTTP attempt.
	DefaultProviderTimeout = 60 * time.Second
)

// maxReplyBytes bounds the body of a provider's reply that is read.
const maxReplyBytes = 32 << 20

// AnthropicConfig configures the Anthropic provider.
type AnthropicConfig struct {
	// APIKey authenticates with the Messages API (x-api-key). Required.
	APIKey string
	// BaseURL is the API's root, e.g. an httptest server or a proxy; the
	// provider posts to BaseURL + "/v1/messages". A trailing "/v1" is
	// accepted and dropped. Defaults to DefaultAnthropicBaseURL.
	BaseURL string
	// Model is the model used when the request names none. Defaults to
	// DefaultAnthropicModel.
	Model string
	// HTTPClient sends the requests. Defaults to http.DefaultClient.
	HTTPClient *http.Client
	// Timeout bounds each attempt, reading the reply included. Defaults to
	// DefaultProviderTimeout.
	Timeout time.Duration
}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c AnthropicConfig) WithDefaults() AnthropicConfig {
	if c.Model == "" {
		c.Model = DefaultAnthropicModel
	}
	if c.HTTPClient == nil {
		c.HTTPClient = http.DefaultClient
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultProviderTimeout
	}
	return c
}

func (c AnthropicConfig) validate() error {
	if c.APIKey == "" {
		return errors.New("anthropic: APIKey is required")
	}
	if c.BaseURL != "" {
		if err := validateProviderBaseURL(c.BaseURL); err != nil {
			return fmt.Errorf("anthropic: BaseURL: %w", err)
		}
	}
	return nil
}

// Anthropic is a Provider backed by Anthropic's Messages API, spoken over
// net/http. (The official SDK is a large generated package: compiling it
// took most of a first build's time and memory, for this one call.) It
// makes one attempt per Complete (wrap it with WithRetry) and reads
// nothing from the environment: the config is the whole truth.
type Anthropic struct {
	cfg      AnthropicConfig
	endpoint string
}

var _ Provider = (*Anthropic)(nil)

// NewAnthropic returns an Anthropic provider.
func NewAnthropic(cfg AnthropicConfig) (*Anthropic, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Anthropic{cfg: cfg, endpoint: anthropicEndpoint(cmp.Or(cfg.BaseURL, DefaultAnthropicBaseURL))}, nil
}

// anthropicEndpoint is the Messages API's URL under base, which may end
// in "/v1" or a slash.
func anthropicEndpoint(base string) string {
	base = strings.TrimRight(base, "/")
	base = strings.TrimSuffix(base, "/v1")
	return base + "/v1/messages"
}

// Name implements Provider.
func (a *Anthropic) Name() string { return "anthropic" }

// AnthropicError is an error reply of the Messages API, e.g.
// {"type":"error","error":{"type":"rate_limit_error","message":"…"}}.
// It is the Err of the *ProviderError that Complete returns.
type AnthropicError struct {
	// StatusCode is the reply's HTTP status.
	StatusCode int
	// Type is the error's type ("rate_limit_error", "overloaded_error",
	// …), or empty when the body was not the API's JSON.
	Type string
	// Message is the error's message, or a one-line snippet of a body
	// that was not the API's JSON.
	Message string
	// RequestID is the reply's request-id header, if any.
	RequestID string
}

// Error renders "anthropic API: 429 rate_limit_error: message".
func (e *AnthropicError) Error() string {
	var b strings.Builder
	b.WriteString("anthropic API: ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if e.Type != "" {
		b.WriteString(" ")
		b.WriteString(e.Type)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" (request ")
		b.WriteString(e.RequestID)
		b.WriteString(")")
	}
	return b.String()
}

type anthropicTextBlock struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type anthropicMessage struct {
	Role    string               `json:"role"`
	Content []anthropicTextBlock `json:"content"`
}

type anthropicRequest struct {
	Model     string               `json:"model"`
	MaxTokens int                  `json:"max_tokens"`
	System    []anthropicTextBlock `json:"system,omitempty"`
	Messages  []anthropicMessage   `json:"messages"`
}

type anthropicMessageReply struct {
	Type    string `json:"type"`
	Model   string `json:"model"`
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	Usage struct {
		InputTokens  int `json:"input_tokens"`
		OutputTokens int `json:"output_tokens"`
	} `json:"usage"`
}

// Complete implements Provider with one Messages API call.
func (a *Anthropic) Complete(ctx context.Context, req *Request) (*Response, error) {
	body, err := a.body(req)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("X-Api-Key", a.cfg.APIKey)
	h.Set("Anthropic-Version", AnthropicVersion)
	res, raw, err := postJSON(ctx, a.cfg.HTTPClient, a.Name(), a.endpoint, a.cfg.Timeout, h, body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode >= 300 {
		apiErr := anthropicReplyError(res, raw)
		return nil, newStatusError(a.Name(), res.StatusCode, res.Header, apiErr.Message, apiErr)
	}
	var reply anthropicMessageReply
	if err := json.Unmarshal(raw, &reply); err != nil {
		return nil, &ProviderError{Provider: a.Name(), Message: "reply is not a message: " + err.Error(), Err: err}
	}
	var text strings.Builder
	for _, block := range reply.Content {
		if block.Type == "text" {
			text.WriteString(block.Text)
		}
	}
	return &Response{
		Text:  text.String(),
		Model: reply.Model,
		Usage: Usage{InputTokens: reply.Usage.InputTokens, OutputTokens: reply.Usage.OutputTokens},
	}, nil
}

// body encodes req as a Messages API request.
func (a *Anthropic) body(req *Request) ([]byte, error) {
	if req == nil {
		return nil, errors.New("anthropic: nil request")
	}
	if len(req.Messages) == 0 {
		return nil, errors.New("anthropic: request has no messages")
	}
	r := anthropicRequest{
		Model:     cmp.Or(req.Model, a.cfg.Model),
		MaxTokens: requestMaxTokens(req),
		Messages:  make([]anthropicMessage, 0, len(req.Messages)),
	}
	if req.System != "" {
		r.System = []anthropicTextBlock{{Type: "text", Text: req.System}}
	}
	for i, m := range req.Messages {
		if m.Role != "user" && m.Role != "assistant" {
			return nil, fmt.Errorf("anthropic: message %d: unknown role %q", i, m.Role)
		}
		r.Messages = append(r.Messages, anthropicMessage{Role: m.Role, Content: []anthropicTextBlock{{Type: "text", Text: m.Content}}})
	}
	return json.Marshal(r)
}

// anthropicReplyError reads an error reply: the API's JSON error, or
// a snippet of whatever else came back (an HTML page from a proxy, say).
func anthropicReplyError(res *http.Response, raw []byte) *AnthropicError {
	e := &AnthropicError{StatusCode: res.StatusCode, RequestID: res.Header.Get("Request-Id")}
	var reply struct {
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
		RequestID string `json:"request_id"`
	}
	if json.Unmarshal(raw, &reply) == nil && reply.Error.Message != "" {
		e.Type, e.Message = reply.Error.Type, reply.Error.Message
		e.RequestID = cmp.Or(e.RequestID, reply.RequestID)
		return e
	}
	e.Message = errorBodySnippet(string(raw))
	return e
}

// requestMaxTokens is req's reply bound, or DefaultProviderMaxTokens.
func requestMaxTokens(req *Request) int {
	if req.MaxTokens > 0 {
		return req.MaxTokens
	}
	return DefaultProviderMaxTokens
}

// validateProviderBaseURL checks that base is an absolute http(s) URL.
func validateProviderBaseURL(base string) error {
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", base)
	}
	return nil
}
