package relay_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/workspace"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// gitIn runs git in dir.
func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	c := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.invalid"}, args...)...)
	c.Dir = dir
	out, err := c.CombinedOutput()
	require.NoError(t, err, "git %v: %s", args, out)
	return strings.TrimSpace(string(out))
}

// workspacePatch commits files to a new repository, lets change edit a
// workspace of it, and returns the patch the relay computes (the real
// `git diff` of the workspace package).
func workspacePatch(t *testing.T, files map[string]string, change func(dir string)) []byte {
	t.Helper()
	repo := t.TempDir()
	gitIn(t, repo, "init", "--quiet", "--initial-branch=main")
	for name, body := range files {
		p := filepath.Join(repo, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	}
	gitIn(t, repo, "add", ".")
	gitIn(t, repo, "commit", "--quiet", "-m", "base")
	base := gitIn(t, repo, "rev-parse", "HEAD")
	wm, err := workspace.New(workspace.Config{Root: filepath.Join(t.TempDir(), "ws")})
	require.NoError(t, err)
	ctx := context.Background()
	ws, err := wm.Prepare(ctx, relay.NewJobID(), relaytype.Repo{Type: "local", Path: repo}, base)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ws.Remove(context.Background()) })
	change(ws.Dir)
	patch, err := ws.Diff(ctx)
	require.NoError(t, err)
	return patch
}

func TestPatchPathsOfARealPatch(t *testing.T) {
	t.Parallel()
	moved := strings.Repeat("a line that makes the rename detectable\n", 20)
	patch := workspacePatch(t, map[string]string{
		"keep.txt":          "one\n",
		"del.txt":           "gone\n",
		"old name.txt":      moved,
		"mode.sh":           "#!/bin/sh\n",
		"tricky.txt":        "-- a/not-a-file.txt\n++ b/nor-this.txt\nrest\n",
		"src/edit me.go":    "package x\n",
		"renamed/source.md": moved + "x\n",
	}, func(dir string) {
		w := func(name, body string) {
			p := filepath.Join(dir, filepath.FromSlash(name))
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
			require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		}
		w("keep.txt", "one\ntwo\n")
		require.NoError(t, os.Remove(filepath.Join(dir, "del.txt")))
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "new dir"), 0o755))
		require.NoError(t, os.Rename(filepath.Join(dir, "old name.txt"), filepath.Join(dir, "new dir", "new name.txt")))
		require.NoError(t, os.Chmod(filepath.Join(dir, "mode.sh"), 0o755))
		// Hunk lines that look like file headers.
		w("tricky.txt", "rest\n")
		w("src/edit me.go", "package x\n\nfunc F() {}\n")
		w("bin.dat", "\x00\x01\x02binary\xff")
		w("tab\tname.txt", "t\n")
		w(`quo"te.txt`, "q\n")
		w("ünï.txt", "u\n")
		w("back\\slash.txt", "b\n")
		// A rename with an edit: a/ and b/ names differ.
		require.NoError(t, os.Rename(filepath.Join(dir, "renamed", "source.md"), filepath.Join(dir, "renamed", "dest.md")))
		w("renamed/dest.md", moved+"y\n")
	})
	require.Contains(t, string(patch), "rename from old name.txt", "git saw the rename")
	require.Contains(t, string(patch), "GIT binary patch")
	require.Equal(t, []string{
		"back\\slash.txt", "bin.dat", "del.txt", "keep.txt", "mode.sh", "new dir/new name.txt", "old name.txt",
		`quo"te.txt`, "renamed/dest.md", "renamed/source.md", "src/edit me.go", "tab\tname.txt", "tricky.txt", "ünï.txt",
	}, relay.PatchPaths(patch))
}

func TestPatchPathsHandWritten(t *testing.T) {
	t.Parallel()
	// A quoted name on one side only, octal escapes, and a new empty
	// file (no ---/+++ lines).
	patch := "diff --git a/plain.txt \"b/\\303\\274n\\\"i.txt\"\n" +
		"similarity index 100%\nrename from plain.txt\nrename to \"\\303\\274n\\\"i.txt\"\n" +
		"diff --git a/empty b/empty\nnew file mode 100644\nindex 0000000..e69de29\n" +
		"diff --git a/x y b/x y\n--- a/x y\t\n+++ b/x y\t\n@@ -1 +1 @@\n-diff --git a/evil b/evil\n+ok\n"
	require.Equal(t, []string{"empty", "plain.txt", "x y", "ün\"i.txt"}, relay.PatchPaths([]byte(patch)))
	require.Empty(t, relay.PatchPaths(nil))
}

func TestCheckFileGlobs(t *testing.T) {
	t.Parallel()
	patch := workspacePatch(t, map[string]string{"src/a.go": "package a\n", "docs/x.md": "x\n"}, func(dir string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "src", "a.go"), []byte("package a\n\n// edited\n"), 0o644))
		require.NoError(t, os.Rename(filepath.Join(dir, "docs", "x.md"), filepath.Join(dir, "src", "x.md")))
	})
	require.NoError(t, relay.CheckFileGlobs(nil, patch), "no globs, no limit")
	require.NoError(t, relay.CheckFileGlobs([]string{"src/**", "docs/*.md"}, patch))
	err := relay.CheckFileGlobs([]string{"src/**/*.go"}, patch)
	require.ErrorIs(t, err, relay.ErrOutOfScope)
	require.EqualError(t, err, "scope.fileGlobs: the patch touches 2 paths outside src/**/*.go: docs/x.md, src/x.md")
	// Renamed from outside counts, even into the globs.
	err = relay.CheckFileGlobs([]string{"src/**"}, patch)
	require.EqualError(t, err, "scope.fileGlobs: the patch touches 1 path outside src/**: docs/x.md")

	_, err = relay.CompileGlob("[")
	require.Error(t, err)
	require.ErrorIs(t, relay.CheckFileGlobs([]string{"["}, patch), relay.ErrBadGlob)
}

func TestCheckFileGlobsCapsTheNames(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for i := range 25 {
		fmt.Fprintf(&b, "diff --git a/f%02d b/f%02d\nnew file mode 100644\n", i, i)
	}
	err := relay.CheckFileGlobs([]string{"src/**"}, []byte(b.String()))
	var se *relay.ScopeError
	require.ErrorAs(t, err, &se)
	require.Len(t, se.Outside, 25)
	msg := err.Error()
	require.Contains(t, msg, "touches 25 paths outside src/**: f00, f01,")
	require.Contains(t, msg, "f19 and 5 more")
	require.NotContains(t, msg, "f20")
}

func TestCheckScope(t *testing.T) {
	t.Parallel()
	field := func(s relaytype.Scope) string {
		err := relay.CheckScope(&s)
		if err == nil {
			return ""
		}
		var se *relaytype.SpecError
		require.ErrorAs(t, err, &se)
		return se.Field
	}
	require.Equal(t, "", field(relaytype.Scope{FileGlobs: []string{"src/**", "*.md"}, ReadPaths: []string{"src/", ".", "a/b.go", "lib/*"}}))
	require.Equal(t, "scope.fileGlobs[1]", field(relaytype.Scope{FileGlobs: []string{"ok", "/abs"}}))
	require.Equal(t, "scope.fileGlobs[0]", field(relaytype.Scope{FileGlobs: []string{"src/[a"}}))
	require.Equal(t, "scope.readPaths[0]", field(relaytype.Scope{ReadPaths: []string{"/etc"}}))
	require.Equal(t, "scope.readPaths[1]", field(relaytype.Scope{ReadPaths: []string{"a", "../b"}}))
	require.Equal(t, "scope.readPaths[0]", field(relaytype.Scope{ReadPaths: []string{"src/**/[x"}}))
}

func TestInReadPaths(t *testing.T) {
	t.Parallel()
	rp := []string{"src/", "docs/guide.md", "lib/*/api"}
	for p, want := range map[string]bool{
		"src/a.go":            true,
		"src/x/y.go":          true,
		"./src/a.go":          true,
		"docs/guide.md":       true,
		"lib/v1/api/h.go":     true,
		"srcx/a.go":           false,
		"docs/other.md":       false,
		"src/../secret.txt":   false,
		"src/../../etc/x":     false,
		"/etc/passwd":         false,
		"lib/v1/other/h.go":   false,
		"docs/guide.md/extra": true,
	} {
		require.Equal(t, want, relay.InReadPaths(rp, p), p)
	}
	require.True(t, relay.InReadPaths(nil, "anything"))
	require.True(t, relay.InReadPaths([]string{"."}, "a/b"))
}
