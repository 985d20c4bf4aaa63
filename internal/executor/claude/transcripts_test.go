package claude

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// transcriptSession is the session id in the recorded transcripts (the
// e2e tests' claudeTranscriptSession).
const transcriptSession = "00000000-0000-4000-8000-00000000c1a0"

// The transcripts are real stdout of claude 2.1.197 run by the e2e tests
// (cmd/mcp-task-relay/agent_claude_test.go, CLAUDE_UPDATE_TRANSCRIPTS=1)
// against the fake API, with the workspace written as /ws.
func TestClaudeParseTranscripts(t *testing.T) {
	t.Parallel()
	const report = "Greeted the relay.\n### TEST_PLAN\n- cat hello.txt\n### NOTES\n- nothing else"
	for _, tt := range []struct {
		file     string
		exitCode int
		want     executor.AgentOutput // Log and CostUSD aside
		cost     float64
		log      []string // what Log has
	}{
		{
			file: "edit.jsonl",
			want: executor.AgentOutput{SessionID: transcriptSession, FinalMessage: report,
				Usage: executor.AgentUsage{InputTokens: 2600, CachedInputTokens: 7000, OutputTokens: 210}},
			cost: 0.01365,
			log: []string{"session: " + transcriptSession + " model claude-sonnet-4-5 mode acceptEdits", "tool: Read hello.txt",
				"message: Editing.", "tool: Edit hello.txt", "tool: Write notes/claude.md", "result: success after 4 turns, $0.0136"},
		},
		{
			file: "followup.jsonl",
			want: executor.AgentOutput{SessionID: transcriptSession, FinalMessage: "Added a second line.\n### TEST_PLAN\n- cat greeting.txt\n### NOTES\n- none",
				Usage: executor.AgentUsage{InputTokens: 610, CachedInputTokens: 5500, OutputTokens: 60}},
			cost: 0.00438,
			log:  []string{"tool: Edit greeting.txt"},
		},
		{
			file: "read-only.jsonl",
			want: executor.AgentOutput{SessionID: transcriptSession, FinalMessage: "This job is read-only; I would change hello.txt.",
				Usage: executor.AgentUsage{InputTokens: 4000, CachedInputTokens: 800, OutputTokens: 200}},
			cost: 0.01524,
			log: []string{"session: " + transcriptSession + " model claude-sonnet-4-5 mode dontAsk",
				"tool error: <tool_use_error>Error: No such tool available: Write. Write exists but is not enabled in this context.",
				"denied: Bash echo changed > hello.txt", "tool: Bash git status --short"},
		},
		{
			file: "relay-ask.jsonl",
			want: executor.AgentOutput{SessionID: transcriptSession, FinalMessage: "Asked the relay.\n### TEST_PLAN\n- none\n### NOTES\n- none",
				Usage: executor.AgentUsage{InputTokens: 2000, CachedInputTokens: 400, OutputTokens: 100}},
			cost: 0.00762,
			log:  []string{"tool: mcp__task-relay__relay_ask"},
		},
		{
			file:     "budget.jsonl",
			exitCode: 1,
			want: executor.AgentOutput{SessionID: transcriptSession, OverBudget: true, Failed: true,
				FailureSummary: "error_max_budget_usd after 2 turns: Reached maximum budget ($0.005)",
				Usage:          executor.AgentUsage{InputTokens: 2000, CachedInputTokens: 400, OutputTokens: 100}},
			cost: 0.00762,
			log:  []string{"tool: Bash git status", "tool: Bash git log --oneline", "result: error_max_budget_usd after 2 turns, $0.0076"},
		},
		{
			file:     "max-turns.jsonl",
			exitCode: 1,
			want: executor.AgentOutput{SessionID: transcriptSession, Failed: true,
				FailureSummary: "error_max_turns after 2 turns: Reached maximum number of turns (1)",
				Usage:          executor.AgentUsage{InputTokens: 1000, CachedInputTokens: 200, OutputTokens: 50}},
			cost: 0.00381,
		},
		{
			file:     "api-error.jsonl",
			exitCode: 1,
			want: executor.AgentOutput{SessionID: transcriptSession,
				FinalMessage: "Prompt is too long · the request is ~250000 tokens (limit 200000) but this conversation is only ~1983 tokens — the rest is system prompt, " +
					"tool definitions, and attachment content. A single-exchange conversation cannot be compacted; reduce attached files/tools or start with less context.",
				Failed: true,
				FailureSummary: "error after 1 turns (API status 400): Prompt is too long · the request is ~250000 tokens (limit 200000) but this conversation is only ~1983 tokens — " +
					"the rest is system prompt, tool definitions, and attachment content. A single-exchange co…"},
		},
		{
			file:     "resume-missing.jsonl",
			exitCode: 1,
			want: executor.AgentOutput{SessionID: "0c2f6a8e-1111-4222-8333-444455556666", Failed: true,
				FailureSummary: "error_during_execution: No conversation found with session ID: 0c2f6a8e-1111-4222-8333-444455556666"},
		},
	} {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			stdout, err := os.ReadFile(filepath.Join("testdata", "transcripts", tt.file))
			require.NoError(t, err)
			got := Adapter{}.Parse(&executor.AgentConfig{}, &executor.Request{Workdir: "/ws"}, stdout, tt.exitCode)
			require.InDelta(t, tt.cost, got.CostUSD, 1e-9)
			for _, l := range tt.log {
				require.Contains(t, got.Log, l)
			}
			got.CostUSD, got.Log = 0, ""
			require.Equal(t, tt.want, got)
		})
	}
}
