package answer_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/answer"
	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/internal/llm"
	"github.com/mcp-task-relay/mcp-task-relay/internal/role"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// scripted is a Provider that replies from a list and records requests.
type scripted struct {
	mu      sync.Mutex
	replies []string
	err     error
	reqs    []*llm.Request
}

func (s *scripted) provider() llm.Provider {
	return llm.ProviderFunc{ProviderName: "fake", Fn: func(_ context.Context, req *llm.Request) (*llm.Response, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.reqs = append(s.reqs, req)
		if s.err != nil {
			return nil, s.err
		}
		text := s.replies[0]
		if len(s.replies) > 1 {
			s.replies = s.replies[1:]
		}
		return &llm.Response{Text: text, Model: "fake-1", Usage: llm.Usage{InputTokens: 10, OutputTokens: 3}}, nil
	}}
}

func (s *scripted) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

type mapCache struct {
	mu sync.Mutex
	m  map[string]*relaytype.Answer
}

func (c *mapCache) Get(_ context.Context, k string) (*relaytype.Answer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[k], nil
}

func (c *mapCache) Put(_ context.Context, k string, a *relaytype.Answer, _ time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[k] = a
	return nil
}

func newRunner(t *testing.T, p *scripted, mutate func(*answer.RunnerConfig)) (*answer.Runner, ed25519.PublicKey) {
	t.Helper()
	cat, err := role.LoadCatalog()
	require.NoError(t, err)
	pub, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	cfg := answer.RunnerConfig{Provider: p.provider(), Catalog: cat, Cache: &mapCache{m: map[string]*relaytype.Answer{}},
		SigningKey: priv, PolicyVersion: "2.0", MaxRetries: 1}
	if mutate != nil {
		mutate(&cfg)
	}
	r, err := answer.NewRunner(cfg)
	require.NoError(t, err)
	return r, pub
}

func askOf(t *testing.T, typ relaytype.AskType, prompt string, tools map[string]any) *relaytype.AskRecord {
	t.Helper()
	env := relaytype.NewEnvelope("github.com/u/r", "abc123", "prod", "2.0", "policy_decider", map[string]any{"branch": "main"}, tools)
	raw, err := json.Marshal(env)
	require.NoError(t, err)
	h, err := env.Hash()
	require.NoError(t, err)
	return &relaytype.AskRecord{AskID: uuid.NewString(), JobID: "job_x", StepID: "s", AskType: typ, Prompt: prompt,
		ContextHash: h, ContextEnvelope: raw}
}

const validDecision = `{"answer_json":{"decision":"ALLOW","rules":["r1"]}}`

func TestRunnerAnswersSignsAndCaches(t *testing.T) {
	t.Parallel()
	p := &scripted{replies: []string{validDecision}}
	r, pub := newRunner(t, p, nil)
	a := askOf(t, relaytype.AskPolicyDecision, "May I?", nil)
	ans, err := r.Answer(context.Background(), a)
	require.NoError(t, err)
	require.Equal(t, relaytype.StatusAnswered, ans.Status)
	require.JSONEq(t, `{"decision":"ALLOW","rules":["r1"]}`, string(ans.AnswerJSON))
	require.Equal(t, &relaytype.Usage{InputTokens: 10, OutputTokens: 3}, ans.Usage)
	att := ans.Attestation
	require.Equal(t, a.ContextHash, att.ContextHash)
	require.Equal(t, "policy_decider", att.RoleID)
	require.Equal(t, "v1", att.RoleVersion)
	require.Equal(t, "fake-1", att.Model)
	require.Equal(t, "2.0", att.PolicyVersion)
	require.Len(t, att.PromptFingerprint, 64)
	rec := &relaytype.AnswerRecord{AskID: a.AskID, Status: ans.Status, AnswerJSON: ans.AnswerJSON, Attestation: att}
	require.NoError(t, relaytype.VerifyAttestation(pub, rec))
	require.Contains(t, p.reqs[0].System, "policy")
	require.Contains(t, p.reqs[0].Messages[0].Content, "May I?")

	// The same decision for another ask comes from the cache: no call.
	b := askOf(t, relaytype.AskPolicyDecision, "May I?", nil)
	hit, err := r.Answer(context.Background(), b)
	require.NoError(t, err)
	require.Equal(t, 1, p.calls())
	require.True(t, hit.Attestation.CacheHit)
	require.Equal(t, att.PromptFingerprint, hit.Attestation.PromptFingerprint)
	require.JSONEq(t, string(ans.AnswerJSON), string(hit.AnswerJSON))
	require.Nil(t, hit.Usage, "a cache hit spends no tokens")
	require.NoError(t, relaytype.VerifyAttestation(pub, &relaytype.AnswerRecord{AskID: b.AskID, Status: hit.Status, AnswerJSON: hit.AnswerJSON, Attestation: hit.Attestation}))
	require.Equal(t, int64(1), r.Metrics().CacheHits.Load())
	require.Equal(t, int64(1), r.Metrics().CacheMisses.Load())

	// Another prompt is another decision.
	_, err = r.Answer(context.Background(), askOf(t, relaytype.AskPolicyDecision, "May I not?", nil))
	require.NoError(t, err)
	require.Equal(t, 2, p.calls())
}

func TestRunnerVerifiesBeforeCalling(t *testing.T) {
	t.Parallel()
	p := &scripted{replies: []string{validDecision}}
	r, _ := newRunner(t, p, nil)
	a := askOf(t, relaytype.AskPolicyDecision, "May I?", nil)
	a.ContextEnvelope = json.RawMessage(`{"job_snapshot":{"repo":"github.com/evil/r"},"role":"policy_decider"}`)
	ans, err := r.Answer(context.Background(), a)
	require.NoError(t, err)
	require.Equal(t, relaytype.StatusError, ans.Status)
	require.Contains(t, ans.Error, "E_CONTEXT_MISMATCH")

	caps := askOf(t, relaytype.AskPolicyDecision, "May I?", map[string]any{"shell.exec": map[string]any{}})
	ans, err = r.Answer(context.Background(), caps)
	require.NoError(t, err)
	require.Equal(t, relaytype.StatusRejected, ans.Status)
	require.Contains(t, ans.Error, "E_CAPS_VIOLATION")
	require.Contains(t, ans.Error, "shell.exec")
	require.Zero(t, p.calls(), "no provider call for a tampered or over-privileged ask")
}

func TestRunnerSchemaRetries(t *testing.T) {
	t.Parallel()
	p := &scripted{replies: []string{`{"answer_json":{"decision":"PERHAPS"}}`, "no json at all", validDecision}}
	r, _ := newRunner(t, p, func(c *answer.RunnerConfig) { c.MaxRetries = 2 })
	ans, err := r.Answer(context.Background(), askOf(t, relaytype.AskPolicyDecision, "May I?", nil))
	require.NoError(t, err)
	require.Equal(t, relaytype.StatusAnswered, ans.Status)
	require.Equal(t, 3, p.calls())
	require.Equal(t, &relaytype.Usage{InputTokens: 30, OutputTokens: 9}, ans.Usage, "usage of every attempt counts")
	last := p.reqs[2].Messages
	require.Len(t, last, 5)
	require.Contains(t, last[2].Content, "/decision")

	bad := &scripted{replies: []string{`{"answer_json":{"decision":"PERHAPS"}}`}}
	r, _ = newRunner(t, bad, func(c *answer.RunnerConfig) { c.MaxRetries = 1 })
	ans, err = r.Answer(context.Background(), askOf(t, relaytype.AskPolicyDecision, "May I?", nil))
	require.NoError(t, err)
	require.Equal(t, relaytype.StatusError, ans.Status, "not downgraded to text")
	require.Contains(t, ans.Error, "after 2 attempts")
	require.Equal(t, 2, bad.calls())
}

func TestRunnerPlainTextAndAskBack(t *testing.T) {
	t.Parallel()
	p := &scripted{replies: []string{`{"answer_text":"Use the v2 endpoint."}`, `{"ask_back":"Which service?"}`}}
	r, _ := newRunner(t, p, nil)
	ans, err := r.Answer(context.Background(), askOf(t, relaytype.AskClarification, "Which endpoint?", nil))
	require.NoError(t, err)
	require.Equal(t, "Use the v2 endpoint.", ans.AnswerText)
	require.Equal(t, "clarifier", ans.Attestation.RoleID)

	ans, err = r.Answer(context.Background(), askOf(t, relaytype.AskClarification, "Which port?", nil))
	require.NoError(t, err)
	require.Equal(t, "Which service?", ans.AskBack)
	require.False(t, *ans.Cacheable, "a follow-up question is not a decision to reuse")
	_, err = r.Answer(context.Background(), askOf(t, relaytype.AskClarification, "Which port?", nil))
	require.NoError(t, err)
	require.Equal(t, 3, p.calls())
}

func TestRunnerDefersOnProviderFailure(t *testing.T) {
	t.Parallel()
	p := &scripted{err: errors.New("503 overloaded")}
	r, _ := newRunner(t, p, nil)
	_, err := r.Answer(context.Background(), askOf(t, relaytype.AskPolicyDecision, "May I?", nil))
	require.ErrorIs(t, err, ask.ErrDeferred)
}

func TestRunnerDefersBeforeDeadlineWhenProviderHangs(t *testing.T) {
	t.Parallel()
	hung := llm.ProviderFunc{ProviderName: "hung", Fn: func(ctx context.Context, _ *llm.Request) (*llm.Response, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	r, _ := newRunner(t, &scripted{}, func(c *answer.RunnerConfig) { c.Provider = hung })
	deadline := time.Now().Add(500 * time.Millisecond)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	_, err := r.Answer(ctx, askOf(t, relaytype.AskPolicyDecision, "May I?", nil))
	require.ErrorIs(t, err, ask.ErrDeferred)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.True(t, time.Now().Before(deadline), "deferred before the ask's deadline, leaving time to hand it over")
}
