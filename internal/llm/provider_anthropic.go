package llm

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"
)

// Defaults shared by the HTTP providers.
const (
	// DefaultAnthropicModel is the model Anthropic answers with when neither
	// the config nor the request names one.
	DefaultAnthropicModel = "claude-sonnet-4-5"
	// DefaultProviderMaxTokens bounds a reply when the request does not.
	DefaultProviderMaxTokens = 1024
	// DefaultProviderTimeout bounds one HTTP attempt.
	DefaultProviderTimeout = 60 * time.Second
)

// AnthropicConfig configures the Anthropic provider.
type AnthropicConfig struct {
	// APIKey authenticates with the Messages API (x-api-key). Required.
	APIKey string
	// BaseURL is the API's root, e.g. an httptest server or a proxy. A
	// trailing "/v1" is accepted and dropped, since the SDK adds it to every
	// path. Defaults to https://api.anthropic.com.
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

// Anthropic is a Provider backed by Anthropic's Messages API.
type Anthropic struct {
	cfg    AnthropicConfig
	client anthropic.Client
}

var _ Provider = (*Anthropic)(nil)

// NewAnthropic returns an Anthropic provider. The SDK's own retries are off
// (wrap the provider with WithRetry) and it reads nothing from the
// environment: the config is the whole truth.
func NewAnthropic(cfg AnthropicConfig) (*Anthropic, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	opts := []option.RequestOption{
		option.WithoutEnvironmentDefaults(),
		option.WithAPIKey(cfg.APIKey),
		option.WithHTTPClient(cfg.HTTPClient),
		option.WithMaxRetries(0),
	}
	if cfg.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(anthropicBaseURL(cfg.BaseURL)))
	}
	return &Anthropic{cfg: cfg, client: anthropic.NewClient(opts...)}, nil
}

// anthropicBaseURL drops a trailing "/v1": the SDK requests "v1/messages"
// relative to the base, so "http://host/v1" would become /v1/v1/messages.
func anthropicBaseURL(base string) string {
	trimmed := strings.TrimSuffix(base, "/")
	if strings.HasSuffix(trimmed, "/v1") {
		return strings.TrimSuffix(trimmed, "v1")
	}
	return base
}

// Name implements Provider.
func (a *Anthropic) Name() string { return "anthropic" }

// Complete implements Provider with one Messages API call.
func (a *Anthropic) Complete(ctx context.Context, req *Request) (*Response, error) {
	params, err := a.params(req)
	if err != nil {
		return nil, err
	}

	attemptCtx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	// The explicit request timeout also tells the SDK not to insist on
	// streaming for a large max_tokens: the caller chose how long to wait.
	msg, err := a.client.Messages.New(attemptCtx, params, option.WithRequestTimeout(a.cfg.Timeout))
	if err != nil {
		return nil, a.classify(ctx, err)
	}

	var text strings.Builder
	for _, block := range msg.Content {
		if block.Type == "text" {
			text.WriteString(block.Text)
		}
	}
	return &Response{
		Text:  text.String(),
		Model: string(msg.Model),
		Usage: Usage{
			InputTokens:  int(msg.Usage.InputTokens),
			OutputTokens: int(msg.Usage.OutputTokens),
		},
	}, nil
}

func (a *Anthropic) params(req *Request) (anthropic.MessageNewParams, error) {
	if req == nil {
		return anthropic.MessageNewParams{}, errors.New("anthropic: nil request")
	}
	if len(req.Messages) == 0 {
		return anthropic.MessageNewParams{}, errors.New("anthropic: request has no messages")
	}
	params := anthropic.MessageNewParams{
		Model:     anthropic.Model(cmp.Or(req.Model, a.cfg.Model)),
		MaxTokens: int64(requestMaxTokens(req)),
		Messages:  make([]anthropic.MessageParam, 0, len(req.Messages)),
	}
	if req.System != "" {
		params.System = []anthropic.TextBlockParam{{Text: req.System}}
	}
	for i, m := range req.Messages {
		block := anthropic.NewTextBlock(m.Content)
		switch m.Role {
		case "user":
			params.Messages = append(params.Messages, anthropic.NewUserMessage(block))
		case "assistant":
			params.Messages = append(params.Messages, anthropic.NewAssistantMessage(block))
		default:
			return anthropic.MessageNewParams{}, fmt.Errorf("anthropic: message %d: unknown role %q", i, m.Role)
		}
	}
	return params, nil
}

// classify turns an SDK error into a *ProviderError.
func (a *Anthropic) classify(callerCtx context.Context, err error) error {
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) {
		return newTransportError(a.Name(), callerCtx, a.cfg.Timeout, err)
	}
	var header http.Header
	if apiErr.Response != nil {
		header = apiErr.Response.Header
	}
	return newStatusError(a.Name(), apiErr.StatusCode, header, anthropicErrorMessage(apiErr.RawJSON()), err)
}

// anthropicErrorMessage extracts the message of an error reply,
// {"type":"error","error":{"type":"rate_limit_error","message":"…"}}.
func anthropicErrorMessage(body string) string {
	var reply struct {
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal([]byte(body), &reply) == nil && reply.Error.Message != "" {
		return reply.Error.Message
	}
	return errorBodySnippet(body)
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
