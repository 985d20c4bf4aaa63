package relay_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// renderSnippet renders a prompt quoting one snippet of the workspace dir
// and returns the quoted part, failing the test if rendering does not end
// within a few seconds (a read that never ends).
func renderSnippet(t *testing.T, dir string, sn relaytype.CodeSnippet) string {
	t.Helper()
	job := &relaytype.Job{BaselineCommit: strings.Repeat("c", 40), Spec: relaytype.JobSpec{
		Repo:    relaytype.Repo{Type: "local", Path: "/src"},
		Task:    relaytype.Task{Title: "T", Description: "D"},
		Context: &relaytype.TaskContext{CodeSnippets: []relaytype.CodeSnippet{sn}},
	}}
	done := make(chan string, 1)
	go func() { done <- relay.RenderPrompt(job, dir, "") }()
	select {
	case p := <-done:
		head := fmt.Sprintf("%s lines %d-%d:\n\n```\n", sn.Path, sn.From, sn.To)
		i := strings.Index(p, head)
		require.GreaterOrEqual(t, i, 0, p)
		quoted, _, ok := strings.Cut(p[i+len(head):], "```\n")
		require.True(t, ok)
		return quoted
	case <-time.After(5 * time.Second):
		t.Fatalf("rendering the snippet %s did not end", sn.Path)
		return ""
	}
}

func TestSnippetStaysInTheWorkspace(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "secret.txt")
	require.NoError(t, os.WriteFile(outside, []byte("TOP-SECRET outside the repository\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "in.go"), []byte("package in\n// fine\n"), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	for name, target := range map[string]string{
		"outside-file":   outside,
		"outside-rel":    filepath.Join("..", filepath.Base(filepath.Dir(outside)), "secret.txt"),
		"urandom":        "/dev/urandom",
		"zero":           "/dev/zero",
		"stdin":          "/proc/self/fd/0",
		"sub/up-and-out": filepath.Join("..", "..", filepath.Base(filepath.Dir(outside)), "secret.txt"),
		"inside":         "in.go",
	} {
		require.NoError(t, os.Symlink(target, filepath.Join(dir, name)), name)
	}
	for _, name := range []string{"outside-file", "outside-rel", "urandom", "zero", "stdin", "sub/up-and-out", "../escape"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := renderSnippet(t, dir, relaytype.CodeSnippet{Path: name, From: 1, To: 1_000_000_000})
			require.Equal(t, "(path outside the repository)\n", got)
		})
	}
	t.Run("inside link", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, "package in\n// fine\n", renderSnippet(t, dir, relaytype.CodeSnippet{Path: "inside", From: 1, To: 5}))
	})
}

func TestSnippetRefusesNonRegularFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, mkfifo(filepath.Join(dir, "fifo")))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "adir"), 0o755))
	require.NoError(t, os.Symlink("fifo", filepath.Join(dir, "to-fifo")))
	for _, name := range []string{"fifo", "to-fifo", "adir"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, "(not a regular file)\n", renderSnippet(t, dir, relaytype.CodeSnippet{Path: name, From: 1, To: 10}))
		})
	}
	require.Equal(t, "(not readable at the baseline)\n", renderSnippet(t, dir, relaytype.CodeSnippet{Path: "missing.go", From: 1, To: 1}))
}

func TestSnippetReadsAreBounded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	// One line of 100 KB is cut, on a character boundary.
	long := strings.Repeat("é", 50_000) + "\nnext\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "long.txt"), []byte(long), 0o644))
	got := renderSnippet(t, dir, relaytype.CodeSnippet{Path: "long.txt", From: 1, To: 2})
	first, rest, _ := strings.Cut(got, "\n")
	require.LessOrEqual(t, len(first), 1000+len("…"))
	require.True(t, strings.HasSuffix(first, "…"))
	require.True(t, strings.HasPrefix(first, "éé"))
	require.NotContains(t, first, "\uFFFD")
	require.Equal(t, "next\n", rest)

	// Lines past the first MiB are never read.
	var b strings.Builder
	for i := 1; b.Len() < 3<<20; i++ {
		fmt.Fprintf(&b, "line %07d\n", i)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "big.txt"), []byte(b.String()), 0o644))
	got = renderSnippet(t, dir, relaytype.CodeSnippet{Path: "big.txt", From: 200_000, To: 200_010})
	require.NotContains(t, got, "line 0200000")
	require.Contains(t, got, "read limit reached")
	got = renderSnippet(t, dir, relaytype.CodeSnippet{Path: "big.txt", From: 3, To: 4})
	require.Equal(t, "line 0000003\nline 0000004\n", got)

	// A sparse file of 1 GiB without a newline ends at the limit too.
	f, err := os.Create(filepath.Join(dir, "sparse.bin"))
	require.NoError(t, err)
	require.NoError(t, f.Truncate(1<<30))
	require.NoError(t, f.Close())
	got = renderSnippet(t, dir, relaytype.CodeSnippet{Path: "sparse.bin", From: 1, To: 1})
	require.LessOrEqual(t, len(got), 1100)
}
