package answer

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// DefaultOpenAIBaseURL is OpenAI's own endpoint.
const DefaultOpenAIBaseURL = "https://api.openai.com/v1"

// OpenAIConfig configures the OpenAI provider, which also speaks to
// OpenAI-compatible servers (vLLM, Ollama, llama.cpp, LiteLLM).
type OpenAIConfig struct {
	// APIKey is sent as "Authorization: Bearer …". Local servers such as
	// Ollama need none; empty sends no Authorization header.
	APIKey string
	// BaseURL is the API's root including its version path, e.g.
	// http://localhost:11434/v1; a trailing slash is optional. Defaults to
	// DefaultOpenAIBaseURL.
	BaseURL string
	// Model is the model used when the request names none. Required.
	Model string
	// HTTPClient sends the requests. Defaults to http.DefaultClient.
	HTTPClient *http.Client
	// Timeout bounds each attempt, reading the reply included. Defaults to
	// DefaultProviderTimeout.
	Timeout time.Duration
	// UseMaxCompletionTokens sends the reply bound as max_completion_tokens
	// instead of max_tokens. OpenAI's reasoning models (o-series, gpt-5)
	// reject max_tokens; most compatible servers only know max_tokens.
	// Defaults to false.
	UseMaxCompletionTokens bool
}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c OpenAIConfig) WithDefaults() OpenAIConfig {
	if c.BaseURL == "" {
		c.BaseURL = DefaultOpenAIBaseURL
	}
	if c.HTTPClient == nil {
		c.HTTPClient = http.DefaultClient
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultProviderTimeout
	}
	return c
}

func (c OpenAIConfig) validate() error {
	if c.Model == "" {
		return errors.New("openai: Model is required")
	}
	if err := validateProviderBaseURL(c.BaseURL); err != nil {
		return fmt.Errorf("openai: BaseURL: %w", err)
	}
	return nil
}

// OpenAI is a Provider backed by the Chat Completions API.
type OpenAI struct {
	cfg         OpenAIConfig
	completions openai.ChatCompletionService
}

var _ Provider = (*OpenAI)(nil)

// NewOpenAI returns an OpenAI provider. The SDK's own retries are off (wrap
// the provider with WithRetry), and it reads nothing from the environment:
// an OPENAI_API_KEY meant for OpenAI must not leak to a local server.
func NewOpenAI(cfg OpenAIConfig) (*OpenAI, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// The bare service, unlike openai.NewClient, does not read OPENAI_*.
	opts := []option.RequestOption{
		option.WithHTTPClient(cfg.HTTPClient),
		// WithBaseURL adds the trailing slash that "/v1" needs so that
		// "chat/completions" resolves below it, not beside it.
		option.WithBaseURL(cfg.BaseURL),
		option.WithMaxRetries(0),
	}
	if cfg.APIKey != "" {
		opts = append(opts, option.WithAPIKey(cfg.APIKey))
	}
	return &OpenAI{cfg: cfg, completions: openai.NewChatCompletionService(opts...)}, nil
}

// Name implements Provider.
func (o *OpenAI) Name() string { return "openai" }

// Complete implements Provider with one Chat Completions call.
func (o *OpenAI) Complete(ctx context.Context, req *Request) (*Response, error) {
	params, err := o.params(req)
	if err != nil {
		return nil, err
	}

	attemptCtx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	completion, err := o.completions.New(attemptCtx, params)
	if err != nil {
		return nil, o.classify(ctx, err)
	}
	if len(completion.Choices) == 0 {
		return nil, &ProviderError{Provider: o.Name(), Message: "reply has no choices"}
	}
	return &Response{
		Text:  completion.Choices[0].Message.Content,
		Model: completion.Model,
		Usage: Usage{
			InputTokens:  int(completion.Usage.PromptTokens),
			OutputTokens: int(completion.Usage.CompletionTokens),
		},
	}, nil
}

func (o *OpenAI) params(req *Request) (openai.ChatCompletionNewParams, error) {
	if req == nil {
		return openai.ChatCompletionNewParams{}, errors.New("openai: nil request")
	}
	if len(req.Messages) == 0 {
		return openai.ChatCompletionNewParams{}, errors.New("openai: request has no messages")
	}
	params := openai.ChatCompletionNewParams{
		Model:    cmp.Or(req.Model, o.cfg.Model),
		Messages: make([]openai.ChatCompletionMessageParamUnion, 0, len(req.Messages)+1),
	}
	maxTokens := openai.Int(int64(requestMaxTokens(req)))
	if o.cfg.UseMaxCompletionTokens {
		params.MaxCompletionTokens = maxTokens
	} else {
		params.MaxTokens = maxTokens
	}
	if req.System != "" {
		params.Messages = append(params.Messages, openai.SystemMessage(req.System))
	}
	for i, m := range req.Messages {
		switch m.Role {
		case "user":
			params.Messages = append(params.Messages, openai.UserMessage(m.Content))
		case "assistant":
			params.Messages = append(params.Messages, openai.AssistantMessage(m.Content))
		default:
			return openai.ChatCompletionNewParams{}, fmt.Errorf("openai: message %d: unknown role %q", i, m.Role)
		}
	}
	return params, nil
}

// classify turns an SDK error into a *ProviderError.
func (o *OpenAI) classify(callerCtx context.Context, err error) error {
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		return newTransportError(o.Name(), callerCtx, o.cfg.Timeout, err)
	}
	var header http.Header
	message := apiErr.Message
	if apiErr.Response != nil {
		header = apiErr.Response.Header
		if message == "" {
			message = openAIErrorBody(apiErr.Response)
		}
	}
	return newStatusError(o.Name(), apiErr.StatusCode, header, message, err)
}

// openAIErrorBody is the body of an error reply that carried no
// {"error":{"message":…}}, such as a proxy's HTML page. The SDK has already
// read the body and put a copy back, which this puts back again.
func openAIErrorBody(res *http.Response) string {
	if res.Body == nil {
		return ""
	}
	body, err := io.ReadAll(res.Body) // already in memory
	res.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return ""
	}
	return errorBodySnippet(string(body))
}
