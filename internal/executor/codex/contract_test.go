package codex

import (
	"path/filepath"
	"testing"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor/executortest"
)

// TestCodexContract runs the contract every adapter keeps over codex's
// recorded transcripts.
func TestCodexContract(t *testing.T) {
	t.Parallel()
	executortest.Contract(t, Adapter{}, filepath.Join("testdata", "transcripts"), []executortest.Transcript{
		{File: "ask.jsonl"}, {File: "edit.jsonl"}, {File: "followup-parent.jsonl"}, {File: "followup-resumed.jsonl"},
		{File: "model-failure.jsonl", ExitCode: 1}, {File: "read-only.jsonl"}, {File: "start-error.jsonl", ExitCode: 1},
	})
}
