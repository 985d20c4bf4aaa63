package relay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// TestSnippetBudget checks that all the snippets of one prompt together
// read no more than maxSnippetsReadBytes, however many there are.
func TestSnippetBudget(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	content := strings.Repeat(strings.Repeat("x", 99)+"\n", (maxSnippetReadBytes/100)+100)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "big.txt"), []byte(content), 0o644))
	budget := int64(maxSnippetsReadBytes)
	// Lines past the first MiB: reading stops at the limit before them.
	sn := relaytype.CodeSnippet{Path: "big.txt", From: maxSnippetReadBytes/100 + 50, To: maxSnippetReadBytes/100 + 60}
	n := 0
	for budget > 0 {
		got := snippet(dir, sn, &budget)
		require.Equal(t, "… (read limit reached)\n", got)
		n++
		require.LessOrEqual(t, n, maxSnippetsReadBytes/maxSnippetReadBytes, "each snippet reads its share of the budget")
	}
	require.Zero(t, budget)
	got := snippet(dir, sn, &budget)
	require.Equal(t, "… (read limit reached)\n", got, "an exhausted budget reads nothing more")
	require.Zero(t, budget)
}
