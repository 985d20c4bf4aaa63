package app

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/answer"
	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
	"github.com/mcp-task-relay/mcp-task-relay/internal/llm"
	"github.com/mcp-task-relay/mcp-task-relay/internal/mcpserver"
	"github.com/mcp-task-relay/mcp-task-relay/internal/policy"
	"github.com/mcp-task-relay/mcp-task-relay/internal/role"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// clientMCP reaches the clients of one project's MCP server: elicitation
// for humans, sampling for the runner.
type clientMCP struct {
	srv *mcpserver.Server
}

// Elicit implements answer.Elicitor.
func (l clientMCP) Elicit(ctx context.Context, message string, schema json.RawMessage) (string, map[string]any, error) {
	srv := l.srv
	action, content, err := srv.Elicit(ctx, message, schema)
	if errors.Is(err, mcpserver.ErrNoCapableClient) {
		return "", nil, fmt.Errorf("%w: %v", answer.ErrNoElicitor, err)
	}
	return action, content, err
}

// sample implements the sampling provider through the MCP client.
func (l clientMCP) sample(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	srv := l.srv
	msgs := make([]mcpserver.SampleMessage, len(req.Messages))
	for i, m := range req.Messages {
		msgs[i] = mcpserver.SampleMessage{Role: m.Role, Content: m.Content}
	}
	res, err := srv.Sample(ctx, req.System, msgs, req.MaxTokens)
	if err != nil {
		return nil, err
	}
	return &llm.Response{Text: res.Text, Model: res.Model,
		Usage: llm.Usage{InputTokens: res.InputTokens, OutputTokens: res.OutputTokens}}, nil
}

// storeCache adapts the store's decision cache to answer.Cache.
type storeCache struct{ st store.Store }

func (c storeCache) Get(ctx context.Context, key string) (*relaytype.Answer, error) {
	return c.st.DecisionGet(ctx, &store.DecisionGetParams{Key: key, Now: time.Now()})
}

func (c storeCache) Put(ctx context.Context, key string, a *relaytype.Answer, ttl time.Duration) error {
	now := time.Now()
	return c.st.DecisionPut(ctx, &store.DecisionPutParams{Key: key, Answer: a, Now: now, ExpiresAt: now.Add(ttl)})
}

// answerers is what buildAnswerers wires for the ask service.
type answerers struct {
	byRoute       map[ask.Route]ask.Answerer
	decider       ask.Decider
	policyVersion string
	signingKey    ed25519.PublicKey
	runner        *answer.Runner
}

// buildProvider returns the configured LLM provider, or nil with a
// warning when it cannot be used (no key): asks routed to the runner then
// go to the orchestrator.
func buildProvider(cfg *config.Config, getenv func(string) (string, bool), mcp clientMCP, log *slog.Logger) (llm.Provider, error) {
	r := cfg.AskAnswer.Runner
	key := ""
	if r.APIKeyEnv != "" {
		key, _ = getenv(r.APIKeyEnv)
	}
	var (
		p   llm.Provider
		err error
	)
	switch r.Provider {
	case config.ProviderNone:
		return nil, nil
	case config.ProviderSampling:
		return llm.ProviderFunc{ProviderName: "sampling", Fn: mcp.sample}, nil
	case config.ProviderAnthropic:
		if key == "" {
			log.Warn("answer runner off: no API key", "provider", r.Provider, "env", r.APIKeyEnv,
				"fix", "export "+r.APIKeyEnv+" or set askAnswer.runner.provider; asks go to the orchestrator meanwhile")
			return nil, nil
		}
		p, err = llm.NewAnthropic(llm.AnthropicConfig{APIKey: key, BaseURL: r.BaseURL, Model: r.Model, Timeout: r.Timeout()})
	case config.ProviderOpenAI:
		if key == "" && r.BaseURL == "" {
			log.Warn("answer runner off: no API key and no baseURL", "provider", r.Provider, "env", r.APIKeyEnv,
				"fix", "export "+r.APIKeyEnv+" or set askAnswer.runner.baseURL to a local OpenAI-compatible server")
			return nil, nil
		}
		p, err = llm.NewOpenAI(llm.OpenAIConfig{APIKey: key, BaseURL: r.BaseURL, Model: r.Model, Timeout: r.Timeout()})
	default:
		return nil, fmt.Errorf("askAnswer.runner.provider: unknown provider %q", r.Provider)
	}
	if err != nil {
		return nil, fmt.Errorf("askAnswer.runner: %w", err)
	}
	return llm.WithRetry(p, llm.RetryPolicy{MaxRetries: max(r.Retries(), 1)}), nil
}

// buildAnswerers loads roles, schemata, the policy and the signing key,
// and builds the runner (when enabled and usable), the policy decider and
// the human answerer.
func buildAnswerers(cfg *config.Config, getenv func(string) (string, bool), st store.Store, mcp clientMCP, log *slog.Logger) (*answerers, error) {
	pol, err := policy.LoadPolicy(cfg.PolicyFile)
	if err != nil {
		return nil, err
	}
	out := &answerers{
		byRoute:       map[ask.Route]ask.Answerer{ask.RouteHuman: answer.NewHuman(answer.HumanConfig{Elicitor: mcp, Logger: log})},
		decider:       policy.Decider{Policy: pol},
		policyVersion: pol.Version,
	}
	if !cfg.AskAnswer.Runner.IsEnabled() {
		return out, nil
	}
	catalog, err := role.LoadCatalog(cfg.PromptsDir)
	if err != nil {
		return nil, err
	}
	schemata, err := role.LoadSchemata(cfg.SchemataDir)
	if err != nil {
		return nil, err
	}
	if err := catalog.CheckSchemas(schemata); err != nil {
		return nil, err
	}
	provider, err := buildProvider(cfg, getenv, mcp, log)
	if err != nil || provider == nil {
		return out, err
	}
	priv, err := answer.LoadSigningKey(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	var cache answer.Cache
	if ttl := cfg.AskAnswer.Runner.CacheTTL(); ttl > 0 {
		cache = storeCache{st}
	}
	runner, err := answer.NewRunner(answer.RunnerConfig{
		Provider:      provider,
		Catalog:       catalog,
		Schemata:      schemata,
		Model:         cfg.AskAnswer.Runner.Model,
		MaxRetries:    cfg.AskAnswer.Runner.MaxRetries,
		Cache:         cache,
		CacheTTL:      cfg.AskAnswer.Runner.CacheTTL(),
		PolicyVersion: pol.Version,
		SigningKey:    priv,
		Logger:        log,
	})
	if err != nil {
		return nil, err
	}
	out.byRoute[ask.RouteRunner] = runner
	out.runner = runner
	out.signingKey = priv.Public().(ed25519.PublicKey)
	log.Info("answer runner on", "provider", provider.Name(), "model", cfg.AskAnswer.Runner.Model, "roles", len(catalog.Roles()))
	return out, nil
}
