package claude

import (
	"path/filepath"
	"testing"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor/executortest"
)

// TestClaudeContract runs the contract every adapter keeps over claude's
// recorded transcripts.
func TestClaudeContract(t *testing.T) {
	t.Parallel()
	executortest.Contract(t, Adapter{}, filepath.Join("testdata", "transcripts"), []executortest.Transcript{
		{File: "api-error.jsonl", ExitCode: 1}, {File: "budget.jsonl", ExitCode: 1}, {File: "edit.jsonl"},
		{File: "followup.jsonl"}, {File: "max-turns.jsonl", ExitCode: 1}, {File: "read-only.jsonl"},
		{File: "relay-ask.jsonl"}, {File: "resume-missing.jsonl", ExitCode: 1},
	})
}
