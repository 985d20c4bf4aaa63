package gemini

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor/executortest"
)

// TestGeminiContract runs the contract every adapter keeps over gemini's
// recorded transcripts (each starts with a line "exit=N").
func TestGeminiContract(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("testdata", "transcripts")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var list []executortest.Transcript
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		head, _, _ := strings.Cut(string(raw), "\n")
		exit, err := strconv.Atoi(strings.TrimPrefix(head, "exit="))
		require.NoError(t, err, "%s: first line %q", e.Name(), head)
		list = append(list, executortest.Transcript{File: e.Name(), ExitCode: exit, Read: func(b []byte) []byte {
			_, stream, _ := strings.Cut(string(b), "\n")
			return []byte(stream)
		}})
	}
	executortest.Contract(t, Adapter{}, dir, list)
}
