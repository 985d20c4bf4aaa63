package llm

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
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

// OpenAI is a Provider backed by the Chat Completions API, spoken over
// net/http. (The official openai-go SDK doubled the relay's binary and put
// its idle memory over the relay's memory budget; this one call is small and
// stable, and the wire tests pin it.)
type OpenAI struct {
	cfg      OpenAIConfig
	endpoint string
}

// NewOpenAI returns the OpenAI provider.
func NewOpenAI(cfg OpenAIConfig) (*OpenAI, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// The environment's OPENAI_* settings are never read: a stray
	// OPENAI_API_KEY must not reach a local server.
	return &OpenAI{cfg: cfg, endpoint: strings.TrimRight(cfg.BaseURL, "/") + "/chat/completions"}, nil
}

// Name implements Provider.
func (o *OpenAI) Name() string { return "openai" }

type openAIChatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type openAIChatRequest struct {
	Model               string              `json:"model"`
	Messages            []openAIChatMessage `json:"messages"`
	MaxTokens           int                 `json:"max_tokens,omitempty"`
	MaxCompletionTokens int                 `json:"max_completion_tokens,omitempty"`
}

type openAIChatReply struct {
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

// Complete implements Provider with one Chat Completions call.
func (o *OpenAI) Complete(ctx context.Context, req *Request) (*Response, error) {
	body, err := o.body(req)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	if o.cfg.APIKey != "" {
		h.Set("Authorization", "Bearer "+o.cfg.APIKey)
	}
	res, raw, err := postJSON(ctx, o.cfg.HTTPClient, o.Name(), o.endpoint, o.cfg.Timeout, h, body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode >= 300 {
		var e struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		message := ""
		if json.Unmarshal(raw, &e) == nil {
			message = e.Error.Message
		}
		if message == "" {
			message = errorBodySnippet(string(raw))
		}
		return nil, newStatusError(o.Name(), res.StatusCode, res.Header, message,
			fmt.Errorf("POST %s: %s", o.endpoint, res.Status))
	}
	var reply openAIChatReply
	if err := json.Unmarshal(raw, &reply); err != nil {
		return nil, &ProviderError{Provider: o.Name(), Message: "reply is not a chat completion: " + err.Error(), Err: err}
	}
	if len(reply.Choices) == 0 {
		return nil, &ProviderError{Provider: o.Name(), Message: "reply has no choices"}
	}
	return &Response{
		Text:  reply.Choices[0].Message.Content,
		Model: reply.Model,
		Usage: Usage{InputTokens: reply.Usage.PromptTokens, OutputTokens: reply.Usage.CompletionTokens},
	}, nil
}

// body encodes req as a Chat Completions request.
func (o *OpenAI) body(req *Request) ([]byte, error) {
	if req == nil {
		return nil, errors.New("openai: nil request")
	}
	if len(req.Messages) == 0 {
		return nil, errors.New("openai: request has no messages")
	}
	r := openAIChatRequest{Model: cmp.Or(req.Model, o.cfg.Model), Messages: make([]openAIChatMessage, 0, len(req.Messages)+1)}
	if o.cfg.UseMaxCompletionTokens {
		r.MaxCompletionTokens = requestMaxTokens(req)
	} else {
		r.MaxTokens = requestMaxTokens(req)
	}
	if req.System != "" {
		r.Messages = append(r.Messages, openAIChatMessage{Role: "system", Content: req.System})
	}
	for i, m := range req.Messages {
		if m.Role != "user" && m.Role != "assistant" {
			return nil, fmt.Errorf("openai: message %d: unknown role %q", i, m.Role)
		}
		r.Messages = append(r.Messages, openAIChatMessage(m))
	}
	return json.Marshal(r)
}
