package answer_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/answer"
	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// fakeElicitor is an answer.Elicitor whose behaviour is ElicitFunc; it
// records what it was asked.
type fakeElicitor struct {
	ElicitFunc func(ctx context.Context, message string, schema json.RawMessage) (string, map[string]any, error)

	calls   int
	message string
	schema  json.RawMessage
}

func (f *fakeElicitor) Elicit(ctx context.Context, message string, schema json.RawMessage) (string, map[string]any, error) {
	f.calls++
	f.message, f.schema = message, schema
	return f.ElicitFunc(ctx, message, schema)
}

// replies returns an elicitor that answers every form with action and
// content.
func replies(action string, content map[string]any) *fakeElicitor {
	return &fakeElicitor{ElicitFunc: func(context.Context, string, json.RawMessage) (string, map[string]any, error) {
		return action, content, nil
	}}
}

// humanAsk returns a pending ask of type t with a correctly hashed
// envelope.
func humanAsk(t *testing.T, typ relaytype.AskType) *relaytype.AskRecord {
	t.Helper()
	env := relaytype.NewEnvelope("github.com/u/r", "0123456789abcdef0123456789abcdef01234567", "prod", "2.0", "policy_decider",
		map[string]any{"branch": "main", "tickets": []any{"T-1"}}, nil)
	raw, err := json.Marshal(env)
	require.NoError(t, err)
	hash, err := relaytype.ContextHash(raw)
	require.NoError(t, err)
	return &relaytype.AskRecord{
		AskID: "00000000-0000-4000-8000-000000000001", JobID: "job_01", StepID: "step-1",
		AskType: typ, Prompt: "Deploy the migration to prod?", ContextHash: hash, ContextEnvelope: raw,
		Status: relaytype.StatusPending, Route: "human",
	}
}

func newHuman(e answer.Elicitor) *answer.Human {
	return answer.NewHuman(answer.HumanConfig{Elicitor: e, Logger: slog.New(slog.DiscardHandler)})
}

// requireAttested checks the answer's identity fields and attestation.
func requireAttested(t *testing.T, a *relaytype.AskRecord, out *relaytype.Answer) {
	t.Helper()
	require.Equal(t, a.AskID, out.AskID)
	require.Equal(t, a.JobID, out.JobID)
	require.Equal(t, a.StepID, out.StepID)
	require.Equal(t, &relaytype.Attestation{ContextHash: a.ContextHash, AnsweredBy: "human"}, out.Attestation)
}

// requireSchema checks that the schema sent is the JSON want.
func requireSchema(t *testing.T, want string, got json.RawMessage) {
	t.Helper()
	require.JSONEq(t, want, string(got))
}

func TestHumanApprovalApproved(t *testing.T) {
	t.Parallel()
	a := humanAsk(t, relaytype.AskApproval)
	e := replies("accept", map[string]any{"approve": true, "comment": " ship it "})

	out, err := newHuman(e).Answer(context.Background(), a)
	require.NoError(t, err)
	requireAttested(t, a, out)
	require.Equal(t, relaytype.StatusAnswered, out.Status)
	require.Equal(t, "approved: ship it", out.AnswerText)
	require.JSONEq(t, `{"approved":true,"comment":"ship it"}`, string(out.AnswerJSON))
	require.Empty(t, out.Error)

	require.Equal(t, 1, e.calls)
	var schema struct {
		Type       string `json:"type"`
		Properties map[string]struct {
			Type        string `json:"type"`
			Title       string `json:"title"`
			Description string `json:"description"`
		} `json:"properties"`
		Required []string `json:"required"`
	}
	require.NoError(t, json.Unmarshal(e.schema, &schema))
	require.Equal(t, "object", schema.Type)
	require.Equal(t, []string{"approve"}, schema.Required)
	require.Equal(t, "boolean", schema.Properties["approve"].Type)
	require.Equal(t, "Approve?", schema.Properties["approve"].Title)
	require.NotEmpty(t, schema.Properties["approve"].Description)
	require.Equal(t, "string", schema.Properties["comment"].Type)
	require.Equal(t, "Comment", schema.Properties["comment"].Title)
	require.Len(t, schema.Properties, 2)

	// The person sees the question, the job and the envelope's key facts.
	for _, want := range []string{
		"Approval", "job_01", "Deploy the migration to prod?", "github.com/u/r",
		"0123456789abcdef0123456789abcdef01234567", "prod", "2.0", "policy_decider",
		"branch: main", `tickets: ["T-1"]`,
	} {
		require.Contains(t, e.message, want)
	}
}

func TestHumanApprovalApprovedWithoutComment(t *testing.T) {
	t.Parallel()
	a := humanAsk(t, relaytype.AskApproval)
	out, err := newHuman(replies("accept", map[string]any{"approve": true})).Answer(context.Background(), a)
	require.NoError(t, err)
	require.Equal(t, relaytype.StatusAnswered, out.Status)
	require.Equal(t, "approved", out.AnswerText)
	require.JSONEq(t, `{"approved":true}`, string(out.AnswerJSON))
}

func TestHumanApprovalRejected(t *testing.T) {
	t.Parallel()
	a := humanAsk(t, relaytype.AskApproval)
	out, err := newHuman(replies("accept", map[string]any{"approve": false, "comment": "not on a Friday"})).Answer(context.Background(), a)
	require.NoError(t, err)
	requireAttested(t, a, out)
	require.Equal(t, relaytype.StatusRejected, out.Status)
	require.Equal(t, "declined by a human: not on a Friday", out.Error)
	require.Empty(t, out.AnswerText)
	require.JSONEq(t, `{"approved":false,"comment":"not on a Friday"}`, string(out.AnswerJSON))
}

func TestHumanDecline(t *testing.T) {
	t.Parallel()
	for _, typ := range relaytype.AskTypes {
		t.Run(string(typ), func(t *testing.T) {
			t.Parallel()
			a := humanAsk(t, typ)
			out, err := newHuman(replies("decline", nil)).Answer(context.Background(), a)
			require.NoError(t, err)
			requireAttested(t, a, out)
			require.Equal(t, relaytype.StatusRejected, out.Status)
			require.Equal(t, "declined by a human", out.Error)
		})
	}
}

func TestHumanCancelDefers(t *testing.T) {
	t.Parallel()
	for _, typ := range relaytype.AskTypes {
		t.Run(string(typ), func(t *testing.T) {
			t.Parallel()
			out, err := newHuman(replies("cancel", nil)).Answer(context.Background(), humanAsk(t, typ))
			require.ErrorIs(t, err, ask.ErrDeferred)
			require.Nil(t, out)
		})
	}
}

func TestHumanChoiceWithEnum(t *testing.T) {
	t.Parallel()
	a := humanAsk(t, relaytype.AskChoice)
	a.Prompt = "Which database?"
	a.Meta = &relaytype.AskMeta{PromptOverrides: &relaytype.PromptOverrides{
		OutputSchema: json.RawMessage(`{"type":"object","properties":{"db":{"type":"string","enum":["sqlite","postgres"]}},"required":["db"]}`),
	}}
	e := replies("accept", map[string]any{"choice": "postgres"})

	out, err := newHuman(e).Answer(context.Background(), a)
	require.NoError(t, err)
	requireAttested(t, a, out)
	require.Equal(t, relaytype.StatusAnswered, out.Status)
	require.Equal(t, "postgres", out.AnswerText)
	require.JSONEq(t, `{"choice":"postgres"}`, string(out.AnswerJSON))
	requireSchema(t, `{"type":"object","properties":{"choice":{"type":"string","title":"Choice","enum":["sqlite","postgres"]}},"required":["choice"]}`, e.schema)
	require.Contains(t, e.message, "Which database?")
}

func TestHumanChoiceOutsideEnumIsAnError(t *testing.T) {
	t.Parallel()
	a := humanAsk(t, relaytype.AskChoice)
	a.Meta = &relaytype.AskMeta{PromptOverrides: &relaytype.PromptOverrides{
		OutputSchema: json.RawMessage(`{"type":"object","properties":{"db":{"enum":["sqlite","postgres"]}}}`),
	}}
	_, err := newHuman(replies("accept", map[string]any{"choice": "mysql"})).Answer(context.Background(), a)
	require.Error(t, err)
	require.NotErrorIs(t, err, ask.ErrDeferred)
}

func TestHumanChoiceFree(t *testing.T) {
	t.Parallel()
	for name, schema := range map[string]string{
		"no schema":       ``,
		"two properties":  `{"type":"object","properties":{"a":{"enum":["x"]},"b":{"enum":["y"]}}}`,
		"no enum":         `{"type":"object","properties":{"a":{"type":"string"}}}`,
		"not strings":     `{"type":"object","properties":{"a":{"enum":[1,2]}}}`,
		"not an object":   `{"type":"array","properties":{"a":{"enum":["x"]}}}`,
		"not json schema": `[1,2]`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := humanAsk(t, relaytype.AskChoice)
			if schema != "" {
				a.Meta = &relaytype.AskMeta{PromptOverrides: &relaytype.PromptOverrides{OutputSchema: json.RawMessage(schema)}}
			}
			e := replies("accept", map[string]any{"choice": "blue"})
			out, err := newHuman(e).Answer(context.Background(), a)
			require.NoError(t, err)
			require.Equal(t, relaytype.StatusAnswered, out.Status)
			require.Equal(t, "blue", out.AnswerText)
			require.JSONEq(t, `{"choice":"blue"}`, string(out.AnswerJSON))
			requireSchema(t, `{"type":"object","properties":{"choice":{"type":"string","title":"Choice","minLength":1}},"required":["choice"]}`, e.schema)
		})
	}
}

func TestHumanFreeText(t *testing.T) {
	t.Parallel()
	for _, typ := range []relaytype.AskType{relaytype.AskClarification, relaytype.AskResourceFetch, relaytype.AskPolicyDecision} {
		t.Run(string(typ), func(t *testing.T) {
			t.Parallel()
			a := humanAsk(t, typ)
			e := replies("accept", map[string]any{"answer": "use the v2 API"})
			out, err := newHuman(e).Answer(context.Background(), a)
			require.NoError(t, err)
			requireAttested(t, a, out)
			require.Equal(t, relaytype.StatusAnswered, out.Status)
			require.Equal(t, "use the v2 API", out.AnswerText)
			require.Empty(t, out.AnswerJSON)
			requireSchema(t, `{"type":"object","properties":{"answer":{"type":"string","title":"Answer","minLength":1}},"required":["answer"]}`, e.schema)
		})
	}
}

func TestHumanMalformedContentIsAnError(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		typ     relaytype.AskType
		content map[string]any
	}{
		"approval without approve": {relaytype.AskApproval, map[string]any{"comment": "hm"}},
		"approve not a boolean":    {relaytype.AskApproval, map[string]any{"approve": "yes"}},
		"empty answer":             {relaytype.AskClarification, map[string]any{"answer": " "}},
		"no choice":                {relaytype.AskChoice, nil},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := newHuman(replies("accept", tc.content)).Answer(context.Background(), humanAsk(t, tc.typ))
			require.Error(t, err)
			require.NotErrorIs(t, err, ask.ErrDeferred)
		})
	}
}

func TestHumanNoElicitorDefers(t *testing.T) {
	t.Parallel()
	out, err := newHuman(nil).Answer(context.Background(), humanAsk(t, relaytype.AskApproval))
	require.ErrorIs(t, err, ask.ErrDeferred)
	require.Nil(t, out)

	// An elicitor with no capable client says so with ErrNoElicitor.
	e := &fakeElicitor{ElicitFunc: func(context.Context, string, json.RawMessage) (string, map[string]any, error) {
		return "", nil, errors.Join(errors.New("elicitation: no capable client"), answer.ErrNoElicitor)
	}}
	out, err = newHuman(e).Answer(context.Background(), humanAsk(t, relaytype.AskApproval))
	require.ErrorIs(t, err, ask.ErrDeferred)
	require.Nil(t, out)
	require.Equal(t, 1, e.calls)
}

func TestHumanElicitationErrorIsReturned(t *testing.T) {
	t.Parallel()
	boom := errors.New("client said no such method")
	e := &fakeElicitor{ElicitFunc: func(context.Context, string, json.RawMessage) (string, map[string]any, error) {
		return "", nil, boom
	}}
	out, err := newHuman(e).Answer(context.Background(), humanAsk(t, relaytype.AskClarification))
	require.ErrorIs(t, err, boom)
	require.NotErrorIs(t, err, ask.ErrDeferred)
	require.Nil(t, out)
}

func TestHumanDeadlineDefers(t *testing.T) {
	t.Parallel()
	// The ask's deadline passing is left to the ask service, which answers
	// TIMEOUT; the human answerer must not race it with an ERROR.
	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	e := &fakeElicitor{ElicitFunc: func(ctx context.Context, _ string, _ json.RawMessage) (string, map[string]any, error) {
		<-ctx.Done()
		return "", nil, ctx.Err()
	}}
	out, err := newHuman(e).Answer(ctx, humanAsk(t, relaytype.AskClarification))
	require.ErrorIs(t, err, ask.ErrDeferred)
	require.Nil(t, out)
}

func TestHumanTamperedEnvelope(t *testing.T) {
	t.Parallel()
	a := humanAsk(t, relaytype.AskApproval)
	a.ContextEnvelope = json.RawMessage(`{"job_snapshot":{"repo":"github.com/evil/r"},"role":"policy_decider"}`)
	e := replies("accept", map[string]any{"approve": true})

	out, err := newHuman(e).Answer(context.Background(), a)
	require.NoError(t, err)
	requireAttested(t, a, out)
	require.Equal(t, relaytype.StatusError, out.Status)
	require.Contains(t, out.Error, "E_CONTEXT_MISMATCH: ")
	require.Empty(t, out.AnswerText)
	require.Zero(t, e.calls, "the person was shown a tampered context")

	a.ContextEnvelope = json.RawMessage(`not json`)
	out, err = newHuman(e).Answer(context.Background(), a)
	require.NoError(t, err)
	require.Equal(t, relaytype.StatusError, out.Status)
	require.Contains(t, out.Error, "E_CONTEXT_MISMATCH: ")
	require.Zero(t, e.calls)
}
