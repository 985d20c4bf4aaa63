package answer

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/internal/llm"
	"github.com/mcp-task-relay/mcp-task-relay/internal/role"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Defaults of RunnerConfig.
const (
	DefaultCacheTTL   = time.Hour
	DefaultMaxTokens  = 1024
	DefaultMaxRetries = 1
)

// Cache stores decisions by key; the store's decision cache implements it
// through an adapter.
type Cache interface {
	Get(ctx context.Context, key string) (*relaytype.Answer, error)
	Put(ctx context.Context, key string, a *relaytype.Answer, ttl time.Duration) error
}

// RunnerConfig configures the Answer Runner.
type RunnerConfig struct {
	// Provider is the LLM. Required.
	Provider llm.Provider
	// Catalog holds the roles. Required.
	Catalog *role.Catalog
	// Schemata resolves named output schemas. Defaults to an empty set.
	Schemata *role.Schemata
	// Model is asked for by name. Defaults to the provider's own.
	Model string
	// MaxRetries is how often an answer that fails its output schema is
	// asked again, with the validation errors. Defaults to 1; -1 for none.
	MaxRetries int
	// Cache is the decision cache. Defaults to none.
	Cache Cache
	// CacheTTL is how long a decision is reused. Defaults to 1 h.
	CacheTTL time.Duration
	// PolicyVersion is reported in attestations. Defaults to "1.0".
	PolicyVersion string
	// SigningKey signs every attestation. Defaults to unsigned.
	SigningKey ed25519.PrivateKey
	// Metrics counts cache hits, provider calls and tokens. Defaults to a
	// private set.
	Metrics *Metrics
	// Logger receives structured logs. Defaults to slog.Default().
	Logger *slog.Logger
}

// Runner is the Answer Runner: an ask.Answerer backed by an LLM.
type Runner struct {
	cfg RunnerConfig
	log *slog.Logger
}

var _ ask.Answerer = (*Runner)(nil)

// NewRunner returns a Runner.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	if cfg.Provider == nil {
		return nil, errors.New("answer runner: Provider is required")
	}
	if cfg.Catalog == nil {
		return nil, errors.New("answer runner: Catalog is required")
	}
	if cfg.Schemata == nil {
		s, err := role.LoadSchemata("")
		if err != nil {
			return nil, err
		}
		cfg.Schemata = s
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = DefaultMaxRetries
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = 0
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.PolicyVersion == "" {
		cfg.PolicyVersion = relaytype.DefaultPolicyVersion
	}
	if cfg.Metrics == nil {
		cfg.Metrics = &Metrics{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Runner{cfg: cfg, log: cfg.Logger}, nil
}

// Metrics returns the runner's counters.
func (r *Runner) Metrics() *Metrics { return r.cfg.Metrics }

// Answer implements ask.Answerer. Provider failures (after the provider's
// own retries, or when the provider is still busy shortly before the
// ask's deadline) return an error wrapping ask.ErrDeferred: the ask then
// waits for the orchestrator, with the orchestrator's deadline, rather
// than fail the job.
func (r *Runner) Answer(ctx context.Context, a *relaytype.AskRecord) (*relaytype.Answer, error) {
	att := &relaytype.Attestation{ContextHash: a.ContextHash, PolicyVersion: r.cfg.PolicyVersion, AnsweredBy: relaytype.AnsweredByRunner}
	finish := func(ans *relaytype.Answer) (*relaytype.Answer, error) {
		ans.AskID, ans.JobID, ans.StepID = a.AskID, a.JobID, a.StepID
		ans.Attestation = att
		if r.cfg.SigningKey != nil {
			if err := relaytype.SignAttestation(r.cfg.SigningKey, a.AskID, ans.Status, ans.AnswerText, ans.AnswerJSON, att); err != nil {
				return nil, err
			}
		}
		return ans, nil
	}

	// Verification first: nothing is sent anywhere for a tampered ask.
	got, err := relaytype.ContextHash(a.ContextEnvelope)
	if err != nil || got != a.ContextHash {
		return finish(&relaytype.Answer{Status: relaytype.StatusError,
			Error: fmt.Sprintf("%s: the envelope hashes to %s, not %s", relaytype.CodeContextMismatch, got, a.ContextHash)})
	}

	roleRef := a.RoleID
	if roleRef == "" {
		roleRef = role.DefaultRole(a.AskType)
	}
	rl, err := r.cfg.Catalog.Resolve(roleRef)
	if err != nil {
		return finish(&relaytype.Answer{Status: relaytype.StatusError, Error: fmt.Sprintf("role_id: %v", err)})
	}
	att.RoleID, att.RoleVersion = rl.ID, rl.Version
	att.ToolsUsed = []string{}

	if bad := capsViolations(a, rl); len(bad) > 0 {
		return finish(&relaytype.Answer{Status: relaytype.StatusRejected,
			Error: fmt.Sprintf("%s: role %s does not allow %s (allowed: %s)", relaytype.CodeCapsViolation,
				rl.Ref(), strings.Join(bad, ", "), strings.Join(rl.ToolWhitelist, ", "))})
	}

	schemaRaw := rl.OutputSchema
	if a.Meta != nil && a.Meta.PromptOverrides != nil && len(a.Meta.PromptOverrides.OutputSchema) > 0 {
		schemaRaw = a.Meta.PromptOverrides.OutputSchema
	}
	var schemaDoc json.RawMessage
	var schema *compiledSchema
	if len(schemaRaw) > 0 {
		schema, schemaDoc, err = r.compile(schemaRaw)
		if err != nil {
			return finish(&relaytype.Answer{Status: relaytype.StatusError, Error: fmt.Sprintf("output_schema: %v", err)})
		}
	}

	key, err := decisionKey(a, rl, schemaDoc)
	if err != nil {
		return nil, err
	}
	if r.cfg.Cache != nil {
		if hit, err := r.cfg.Cache.Get(ctx, key); err != nil {
			r.log.Warn("decision cache", "err", err)
		} else if hit != nil {
			r.cfg.Metrics.CacheHits.Add(1)
			if hit.Attestation != nil {
				att.Model, att.PromptFingerprint = hit.Attestation.Model, hit.Attestation.PromptFingerprint
			}
			att.CacheHit = true
			r.log.Info("runner answered from cache", "ask_id", a.AskID, "role", rl.Ref())
			return finish(&relaytype.Answer{Status: relaytype.StatusAnswered, AnswerText: hit.AnswerText,
				AnswerJSON: hit.AnswerJSON, AskBack: hit.AskBack, Cacheable: hit.Cacheable})
		}
		r.cfg.Metrics.CacheMisses.Add(1)
	}

	prompt := role.BuildPrompt(role.PromptInput{Role: rl, Ask: a, OutputSchema: schemaDoc, PolicyVersion: r.cfg.PolicyVersion})
	att.PromptFingerprint = prompt.Fingerprint
	maxTokens := DefaultMaxTokens
	if rl.Limits.MaxTokens > 0 {
		maxTokens = rl.Limits.MaxTokens
	}
	if a.Constraints != nil && a.Constraints.MaxTokens > 0 {
		maxTokens = min(maxTokens, a.Constraints.MaxTokens)
	}
	req := &llm.Request{Model: r.cfg.Model, System: prompt.System, Messages: []llm.Message{{Role: "user", Content: prompt.User}}, MaxTokens: maxTokens}

	pctx, cancel := providerContext(ctx)
	defer cancel()
	var usage relaytype.Usage
	for attempt := 0; ; attempt++ {
		t0 := time.Now()
		resp, err := r.cfg.Provider.Complete(pctx, req)
		r.cfg.Metrics.ObserveCall(time.Since(t0), usageOf(resp), err)
		if err != nil {
			r.log.Warn("runner provider failed; the orchestrator will answer", "ask_id", a.AskID, "provider", r.cfg.Provider.Name(), "err", err)
			return nil, fmt.Errorf("%w: %s: %w", ask.ErrDeferred, r.cfg.Provider.Name(), err)
		}
		usage.InputTokens += resp.Usage.InputTokens
		usage.OutputTokens += resp.Usage.OutputTokens
		att.Model = resp.Model
		if att.Model == "" {
			att.Model = r.cfg.Model
		}
		reply, perr := role.ParseReply(resp.Text)
		problem := ""
		switch {
		case schema != nil && len(reply.AnswerJSON) == 0 && reply.AskBack == "":
			problem = "the reply has no answer_json object"
			if perr != nil {
				problem = "the reply is not a JSON object"
			}
		case schema != nil && len(reply.AnswerJSON) > 0:
			if err := r.cfg.Schemata.Validate(schema.schema, reply.AnswerJSON); err != nil {
				problem = err.Error()
			}
		}
		if problem == "" {
			ans := &relaytype.Answer{Status: relaytype.StatusAnswered, AnswerText: reply.AnswerText, AnswerJSON: reply.AnswerJSON,
				AskBack: reply.AskBack, Usage: &usage}
			if ans.AnswerText == "" && len(ans.AnswerJSON) == 0 {
				ans.AnswerText = "More information is needed: " + reply.AskBack
			}
			cacheable := reply.AskBack == ""
			ans.Cacheable = &cacheable
			if cacheable && r.cfg.Cache != nil {
				stored := *ans
				stored.Usage = nil
				stored.Attestation = &relaytype.Attestation{Model: att.Model, PromptFingerprint: att.PromptFingerprint}
				if err := r.cfg.Cache.Put(ctx, key, &stored, r.cfg.CacheTTL); err != nil {
					r.log.Warn("decision cache put", "err", err)
				}
			}
			r.log.Info("runner answered", "ask_id", a.AskID, "role", rl.Ref(), "model", att.Model,
				"attempts", attempt+1, "input_tokens", usage.InputTokens, "output_tokens", usage.OutputTokens)
			return finish(ans)
		}
		if attempt >= r.cfg.MaxRetries {
			return finish(&relaytype.Answer{Status: relaytype.StatusError, Usage: &usage,
				Error: fmt.Sprintf("the answer does not match the output schema after %d attempts: %s", attempt+1, problem)})
		}
		r.cfg.Metrics.SchemaRetries.Add(1)
		r.log.Info("runner reply failed its schema; asking again", "ask_id", a.AskID, "problem", problem)
		req.Messages = append(req.Messages,
			llm.Message{Role: "assistant", Content: resp.Text},
			llm.Message{Role: "user", Content: "Your reply does not satisfy the output schema:\n" + problem +
				"\nReply again with one JSON object whose answer_json matches the schema exactly."})
	}
}

// deferMargin is the most time the runner keeps, before an ask's
// deadline, to hand the ask to the orchestrator when its provider fails.
const deferMargin = 2 * time.Second

// providerContext bounds the provider calls of one ask: they end a tenth
// of the time left (at most deferMargin) before ctx's deadline, so that a
// provider still failing or hanging at the end is reported as a deferral
// before the ask's deadline, not as a timeout at it.
func providerContext(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	margin := min(time.Until(deadline)/10, deferMargin)
	return context.WithDeadline(ctx, deadline.Add(-margin))
}

func usageOf(r *llm.Response) llm.Usage {
	if r == nil {
		return llm.Usage{}
	}
	return r.Usage
}

// capsViolations lists the tools an ask requests (constraints.allowed_tools
// and the envelope's tool_caps) that its role does not whitelist.
func capsViolations(a *relaytype.AskRecord, rl *role.Role) []string {
	requested := map[string]bool{}
	if a.Constraints != nil {
		for _, t := range a.Constraints.AllowedTools {
			requested[t] = true
		}
	}
	var env struct {
		ToolCaps map[string]json.RawMessage `json:"tool_caps"`
	}
	_ = json.Unmarshal(a.ContextEnvelope, &env)
	for t := range env.ToolCaps {
		requested[t] = true
	}
	allowed := map[string]bool{}
	for _, t := range rl.ToolWhitelist {
		allowed[t] = true
	}
	var bad []string
	for t := range requested {
		if !allowed[t] {
			bad = append(bad, t)
		}
	}
	sort.Strings(bad)
	return bad
}

// decisionKey is the SHA-256 over (ask type, role@version, prompt,
// context hash, output schema) in canonical JSON.
func decisionKey(a *relaytype.AskRecord, rl *role.Role, schema json.RawMessage) (string, error) {
	doc := map[string]any{"ask_type": a.AskType, "role": rl.Ref(), "prompt": a.Prompt, "context_hash": a.ContextHash}
	if len(schema) > 0 {
		doc["output_schema"] = schema
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return "", err
	}
	return relaytype.ContextHash(raw)
}

// compiledSchema is an output schema ready to validate answers.
type compiledSchema struct {
	schema *jsonschema.Schema
}

// compile resolves an output schema (an object, or the name of one in
// schemata/) and compiles it; it returns the resolved document too, for
// the prompt and the cache key.
func (r *Runner) compile(raw json.RawMessage) (*compiledSchema, json.RawMessage, error) {
	doc, err := r.cfg.Schemata.Resolve(raw)
	if err != nil {
		return nil, nil, err
	}
	s, err := r.cfg.Schemata.Compile(raw)
	if err != nil {
		return nil, nil, err
	}
	return &compiledSchema{schema: s}, doc, nil
}
