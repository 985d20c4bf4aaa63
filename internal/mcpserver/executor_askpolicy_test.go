package mcpserver

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// A job whose execution.askPolicy is never cannot ask through the
// executor endpoint either: relay_ask fails at once with E_ASK_POLICY,
// relay_approve denies, and nothing is stored.
func TestExecutorAskRefusedByAskPolicy(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := setupExec(t, &relaytype.JobSpec{Repo: relaytype.Repo{Type: "local", Path: "/tmp"},
		Task: relaytype.Task{Title: "t", Description: "d"}, IdempotencyKey: "never",
		Execution: relaytype.Execution{AskPolicy: relaytype.AskPolicyNever}}, ExecutorConfig{}, nil)

	res, err := b.session.CallTool(ctx, &mcp.CallToolParams{Name: "relay_ask",
		Arguments: map[string]any{"type": "CLARIFICATION", "prompt": "Which greeting?"}})
	require.NoError(t, err)
	require.True(t, res.IsError)
	var out struct{ Code, Message string }
	require.NoError(t, json.Unmarshal([]byte(res.Content[0].(*mcp.TextContent).Text), &out))
	require.Equal(t, string(relaytype.CodeAskPolicy), out.Code)
	require.Contains(t, out.Message, "execution.askPolicy")

	res, err = b.session.CallTool(ctx, &mcp.CallToolParams{Name: "relay_approve",
		Arguments: map[string]any{"tool_name": "Bash", "input": map[string]any{"command": "ls"}}})
	require.NoError(t, err)
	var decision struct{ Behavior, Message string }
	require.NoError(t, json.Unmarshal([]byte(res.Content[0].(*mcp.TextContent).Text), &decision))
	require.Equal(t, "deny", decision.Behavior)
	require.Contains(t, decision.Message, "execution.askPolicy")

	asks, err := b.svc.List(ctx, b.job.ID, "")
	require.NoError(t, err)
	require.Empty(t, asks)
}

// TestExecutorToolSchemas pins the input schemas the executor endpoint
// lists (written as JSON text in NewExecutorHandler).
func TestExecutorToolSchemas(t *testing.T) {
	t.Parallel()
	b := setupExec(t, &relaytype.JobSpec{Repo: relaytype.Repo{Type: "local", Path: "/tmp"},
		Task: relaytype.Task{Title: "t", Description: "d"}, IdempotencyKey: "schemas"}, ExecutorConfig{}, nil)
	res, err := b.session.ListTools(t.Context(), nil)
	require.NoError(t, err)
	want := map[string]*jsonschema.Schema{
		"relay_ask": {Type: "object", Required: []string{"type", "prompt"}, Properties: map[string]*jsonschema.Schema{
			"type":   {Type: "string", Enum: []any{"CLARIFICATION", "RESOURCE_FETCH", "POLICY_DECISION", "APPROVAL", "CHOICE"}},
			"prompt": {Type: "string", Description: "The question, self-contained."},
			"role":   {Type: "string", Description: "Answer Runner role, e.g. diff_planner, test_planner (optional)."},
			"schema": {Description: "JSON Schema the answer's JSON must match (optional)."},
		}},
		"relay_approve": {Type: "object", Required: []string{"tool_name"}, Properties: map[string]*jsonschema.Schema{
			"tool_name":   {Type: "string"},
			"input":       {Description: "The tool call's input."},
			"tool_use_id": {Type: "string"},
		}},
	}
	require.Len(t, res.Tools, len(want))
	for _, tool := range res.Tools {
		w, ok := want[tool.Name]
		require.True(t, ok, tool.Name)
		got, err := json.Marshal(tool.InputSchema)
		require.NoError(t, err)
		require.JSONEq(t, string(mustJSON(t, w)), string(got), tool.Name)
	}
}
