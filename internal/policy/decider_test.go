package policy_test

import (
	"encoding/json"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/internal/policy"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// askOf returns an ask of type typ with prompt, from a prod envelope.
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

func TestDecider(t *testing.T) {
	t.Parallel()
	pol, err := policy.ParsePolicy("policy.yaml", []byte(`policy_version: "4"
rules:
  - name: deny-prod
    match: {facts: {env_profile: prod}, prompt: "(?i)drop"}
    decision: DENY
    reason: never in prod
  - name: allow-reads
    match: {prompt_glob: "*read*"}
    decision: ALLOW
  - name: escalate-approvals
    match: {ask_type: [APPROVAL]}
    decision: ESCALATE
  - name: choices-to-humans
    match: {ask_type: [CHOICE]}
    route: human
`))
	require.NoError(t, err)
	d := policy.Decider{Policy: pol}

	ans, route := d.Decide(askOf(t, relaytype.AskPolicyDecision, "DROP the table", nil))
	require.Equal(t, relaytype.StatusRejected, ans.Status)
	require.Contains(t, ans.Error, "deny-prod")
	require.Empty(t, route)
	var trace map[string]any
	require.NoError(t, json.Unmarshal(ans.PolicyTrace, &trace))
	require.Equal(t, "deny-prod", trace["rule"])
	require.Equal(t, "4", ans.Attestation.PolicyVersion)

	ans, _ = d.Decide(askOf(t, relaytype.AskPolicyDecision, "may I read the logs", nil))
	require.Equal(t, relaytype.StatusAnswered, ans.Status)
	require.JSONEq(t, `{"decision":"ALLOW","rules":["allow-reads"],"reason":""}`, string(ans.AnswerJSON))

	ans, route = d.Decide(askOf(t, relaytype.AskApproval, "ship it?", nil))
	require.Nil(t, ans)
	require.Equal(t, ask.RouteRunner, route)
	ans, route = d.Decide(askOf(t, relaytype.AskChoice, "a or b?", nil))
	require.Nil(t, ans)
	require.Equal(t, ask.RouteHuman, route)
	ans, route = d.Decide(askOf(t, relaytype.AskClarification, "what?", nil))
	require.Nil(t, ans)
	require.Empty(t, route)
}
