package codex

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// TestCodexTranscripts parses what the real Codex CLI printed in the
// end-to-end tests (cmd/mcp-task-relay/agent_codex_test.go, which rewrites
// these files with CODEX_UPDATE_TRANSCRIPTS=1): its JSONL events on
// stdout and its warnings and errors on stderr, with the workspace
// written as /ws.
// codexTranscriptSession is the thread id the stored transcripts carry
// (the e2e tests write codex's real one as this).
const codexTranscriptSession = "01a21d97-0000-7000-8000-00000000c0de"

func TestCodexTranscripts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		// baseline, when set, is what PrepareResume recorded: the thread's
		// usage before the run.
		baseline *codexUsage
		exitCode int
		want     executor.AgentOutput
	}{
		{
			file: "edit.jsonl",
			want: executor.AgentOutput{
				SessionID:    codexTranscriptSession,
				FinalMessage: "Added a line to hello.txt.\n\n### TEST_PLAN\n- cat hello.txt\n\n### NOTES\n- nothing else",
				// The fake model reported 1000+1100+1200 input tokens.
				Usage: executor.AgentUsage{InputTokens: 3300, CachedInputTokens: 2000, OutputTokens: 130},
				Log: "changed: update hello.txt, add notes/codex.md\n" +
					"$ cat hello.txt (exit 0)\n" +
					"message: Added a line to hello.txt. …",
			},
		},
		{
			file: "followup-parent.jsonl",
			want: executor.AgentOutput{
				SessionID:    codexTranscriptSession,
				FinalMessage: "First line added.\n\n### TEST_PLAN\n- none\n\n### NOTES\n- parent",
				Usage:        executor.AgentUsage{InputTokens: 10200, CachedInputTokens: 6000, OutputTokens: 400},
				Log:          "changed: update hello.txt\nmessage: First line added. …",
			},
		},
		{
			// The resumed thread's turn.completed states its total, the
			// parent's run included; less the baseline it is this run's.
			file:     "followup-resumed.jsonl",
			baseline: &codexUsage{InputTokens: 10200, CachedInputTokens: 6000, OutputTokens: 400},
			want: executor.AgentOutput{
				SessionID:    codexTranscriptSession,
				FinalMessage: "Second line added.\n\n### TEST_PLAN\n- none\n\n### NOTES\n- follow-up",
				Usage:        executor.AgentUsage{InputTokens: 14100, CachedInputTokens: 13000, OutputTokens: 90},
				Log:          "changed: update hello.txt\nmessage: Second line added. …",
			},
		},
		{
			// Without a baseline (no session file found) the total stands.
			file: "followup-resumed.jsonl",
			want: executor.AgentOutput{
				SessionID:    codexTranscriptSession,
				FinalMessage: "Second line added.\n\n### TEST_PLAN\n- none\n\n### NOTES\n- follow-up",
				Usage:        executor.AgentUsage{InputTokens: 24300, CachedInputTokens: 19000, OutputTokens: 490},
				Log:          "changed: update hello.txt\nmessage: Second line added. …",
			},
		},
		{
			file: "read-only.jsonl",
			want: executor.AgentOutput{
				SessionID:    codexTranscriptSession,
				FinalMessage: "Could not write: the sandbox is read-only.\n\n### TEST_PLAN\n- none\n\n### NOTES\n- read-only",
				Usage:        executor.AgentUsage{InputTokens: 300, CachedInputTokens: 60, OutputTokens: 30},
				Log: "refused: patch rejected: writing is blocked by read-only sandbox; rejected by user approval settings\n" +
					"$ echo not allowed >> hello.txt (exit 1)\n" +
					"message: Could not write: the sandbox is read-only. …",
			},
		},
		{
			file: "ask.jsonl",
			want: executor.AgentOutput{
				SessionID:    codexTranscriptSession,
				FinalMessage: "Wrote the greeting I was given.\n\n### TEST_PLAN\n- cat hello.txt\n\n### NOTES\n- asked",
				Usage:        executor.AgentUsage{InputTokens: 400, CachedInputTokens: 80, OutputTokens: 40},
				Log: "mcp: task-relay-job/relay_ask (completed)\n" +
					"changed: update hello.txt\n" +
					"message: Wrote the greeting I was given. …",
			},
		},
		{
			file:     "model-failure.jsonl",
			exitCode: 1,
			want: executor.AgentOutput{
				SessionID:      codexTranscriptSession,
				Failed:         true,
				FailureSummary: "stream disconnected before completion: the fake model is overloaded",
				Log: "error: stream disconnected before completion: the fake model is overloaded\n" +
					"turn failed: stream disconnected before completion: the fake model is overloaded",
			},
		},
		{
			file:     "start-error.jsonl",
			exitCode: 1,
			want: executor.AgentOutput{
				Failed:         true,
				FailureSummary: `codex exited with code 1: Error: approval_policy = "untrusted" is no longer supported; remove this setting`,
			},
		},
	}
	for _, tt := range tests {
		name := tt.file
		if tt.baseline != nil {
			name += " with baseline"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			stdout, err := os.ReadFile(filepath.Join("testdata", "transcripts", tt.file))
			require.NoError(t, err)
			req := &executor.Request{Workdir: "/ws", MetaDir: t.TempDir()}
			if tt.baseline != nil {
				b, err := json.Marshal(tt.baseline)
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(filepath.Join(req.MetaDir, CodexUsageBaselineFile), b, 0o600))
			}
			got := Adapter{}.Parse(&executor.AgentConfig{}, req, stdout, tt.exitCode)
			require.Equal(t, tt.want, got)
		})
	}
}
