package relay_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
)

func TestGlobMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern string
		yes     []string
		no      []string
	}{
		{"*.go", []string{"main.go", ".go", "a.b.go", "ünï.go"}, []string{"cmd/main.go", "main.gox", "main.go/x"}},
		{"src/*.go", []string{"src/a.go", "src/.hidden.go"}, []string{"src/x/a.go", "src/a.txt", "a.go", "srcx/a.go"}},
		{"src/**", []string{"src/a", "src/x/y/z.go", "src"}, []string{"srcx/a", "a/src/b"}},
		{"src/", []string{"src/a", "src/x/y.go"}, []string{"srcx/a", "other"}},
		{"./src/**/*.go", []string{"src/a.go", "src/x/a.go", "src/x/y/a.go"}, []string{"src/a.txt", "a.go"}},
		{"**/*.go", []string{"a.go", "x/a.go", "x/y/z/a.go"}, []string{"a.txt", "x/a.go/b"}},
		{"**", []string{"a", "a/b/c"}, nil},
		{"a/**/b", []string{"a/b", "a/x/b", "a/x/y/b"}, []string{"a/x/c", "b", "x/a/b"}},
		{"a/**/b/**/c", []string{"a/b/c", "a/1/b/2/3/c"}, []string{"a/c", "a/b/d"}},
		{"a**b", []string{"ab", "axxb"}, []string{"a/b", "ax/xb"}},
		{"file?.txt", []string{"file1.txt", "fileé.txt"}, []string{"file.txt", "file12.txt", "file/.txt"}},
		{"[abc].md", []string{"a.md", "c.md"}, []string{"d.md", "ab.md"}},
		{"[a-c]*", []string{"apple", "cat"}, []string{"dog", "Apple"}},
		{"[!a-c]*", []string{"dog", "Apple"}, []string{"apple", "cat"}},
		{"[^a-c]*", []string{"dog"}, []string{"bat"}},
		{"[]x]", []string{"]", "x"}, []string{"y"}},
		{"[a-]", []string{"a", "-"}, []string{"b"}},
		{`\*.go`, []string{"*.go"}, []string{"a.go"}},
		{`[\]]`, []string{"]"}, []string{`\`}},
		{"*a*b*c*", []string{"abc", "xaxbxcx", "aabbcc"}, []string{"acb", "ab"}},
		{"docs/*.md", []string{"docs/a.md"}, []string{"Docs/a.md"}},
	} {
		g, err := relay.CompileGlob(tc.pattern)
		require.NoError(t, err, tc.pattern)
		for _, p := range tc.yes {
			require.True(t, g.Match(p), "%q should match %q", tc.pattern, p)
		}
		for _, p := range tc.no {
			require.False(t, g.Match(p), "%q should not match %q", tc.pattern, p)
		}
	}
}

func TestGlobMatchRefusesOddPaths(t *testing.T) {
	t.Parallel()
	g, err := relay.CompileGlob("**")
	require.NoError(t, err)
	for _, p := range []string{"", "/etc/passwd", "a//b", "a/../b", "./a", "a/"} {
		require.False(t, g.Match(p), p)
	}
}

func TestCompileGlobErrors(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", "  ", "/abs/*.go", "a//b", "../x", "a/../b", "a/./b", "[abc", "a/[", `x\`, "./"} {
		_, err := relay.CompileGlob(p)
		require.ErrorIs(t, err, relay.ErrBadGlob, "%q", p)
	}
}

// Many "**" segments and stars must not backtrack exponentially.
func TestGlobMatchIsNotExponential(t *testing.T) {
	t.Parallel()
	g, err := relay.CompileGlob(strings.Repeat("**/", 20) + "x")
	require.NoError(t, err)
	require.False(t, g.Match(strings.Repeat("a/", 200)+"y"))
	g, err = relay.CompileGlob(strings.Repeat("*a", 30) + "b")
	require.NoError(t, err)
	require.False(t, g.Match(strings.Repeat("a", 200)))
}

func TestGlobMatchDirOrBelow(t *testing.T) {
	t.Parallel()
	g, err := relay.CompileGlob("src/*")
	require.NoError(t, err)
	require.True(t, g.MatchDirOrBelow("src/a/b/c.go"))
	require.True(t, g.MatchDirOrBelow("src/a"))
	require.False(t, g.MatchDirOrBelow("lib/a/b.go"))
	require.False(t, g.MatchDirOrBelow("src"))
}
