package llm

import "context"

// Message is one turn of a conversation with a provider.
type Message struct {
	// Role is "user" or "assistant".
	Role    string
	Content string
}

// Request is one completion request.
type Request struct {
	// Model names the model; empty means the provider's configured one.
	Model    string
	System   string
	Messages []Message
	// MaxTokens bounds the reply. Zero means the provider's default (1024).
	MaxTokens int
}

// Usage counts the tokens of one completion.
type Usage struct {
	InputTokens  int
	OutputTokens int
}

// Response is a provider's reply.
type Response struct {
	Text string
	// Model is the model that answered, as the provider reports it.
	Model string
	Usage Usage
}

// Provider is an LLM the Answer Runner can ask.
type Provider interface {
	// Name identifies the provider ("anthropic", "openai", "sampling").
	Name() string
	// Complete returns the model's reply to req.
	Complete(ctx context.Context, req *Request) (*Response, error)
}

// ProviderFunc adapts a function to Provider; MCP sampling uses it.
type ProviderFunc struct {
	ProviderName string
	Fn           func(ctx context.Context, req *Request) (*Response, error)
}

// Name implements Provider.
func (p ProviderFunc) Name() string { return p.ProviderName }

// Complete implements Provider.
func (p ProviderFunc) Complete(ctx context.Context, req *Request) (*Response, error) {
	return p.Fn(ctx, req)
}
