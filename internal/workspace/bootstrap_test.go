package workspace

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

func TestCopyFilesStayOutOfThePatch(t *testing.T) {
	t.Parallel()
	repo := newRepo(t)
	writeFile(t, repo.dir, ".env", []byte("SECRET=1\n"))
	writeFile(t, repo.dir, "conf/local.yaml", []byte("x: 1\n"))
	ctx := context.Background()
	ws, err := newManager(t).Prepare(ctx, "job_copy", relaytype.Repo{Type: "local", Path: repo.dir}, repo.head)
	require.NoError(t, err)
	copied, err := ws.CopyFiles([]string{".env", "conf/*.yaml", "b.txt", "nothing-*"})
	require.NoError(t, err)
	require.Equal(t, []string{".env", "conf/local.yaml", "b.txt"}, copied)
	require.Equal(t, "SECRET=1\n", readFile(t, ws.Dir, ".env"))

	writeFile(t, ws.Dir, "b.txt", []byte("changed by the relay's copy, not the agent\n"))
	writeFile(t, ws.Dir, "new.txt", []byte("agent work\n"))
	patch, err := ws.Diff(ctx)
	require.NoError(t, err)
	require.Contains(t, string(patch), "new.txt")
	require.NotContains(t, string(patch), ".env")
	require.NotContains(t, string(patch), "local.yaml")
	require.NotContains(t, string(patch), "b.txt", "a copied tracked file keeps its baseline state in the patch")

	_, err = ws.CopyFiles([]string{"../outside"})
	require.Error(t, err)
}

func TestApplyPatchSnapshotAndDiffFrom(t *testing.T) {
	t.Parallel()
	repo := newRepo(t)
	ctx := context.Background()
	m := newManager(t)
	parent, err := m.Prepare(ctx, "job_parent", relaytype.Repo{Type: "local", Path: repo.dir}, repo.head)
	require.NoError(t, err)
	writeFile(t, parent.Dir, "a.txt", []byte("line1\nparent\nline3\n"))
	parentPatch, err := parent.Diff(ctx)
	require.NoError(t, err)

	child, err := m.Prepare(ctx, "job_child", relaytype.Repo{Type: "local", Path: repo.dir}, repo.head)
	require.NoError(t, err)
	require.NoError(t, child.ApplyPatch(ctx, parentPatch))
	start, err := child.Snapshot(ctx)
	require.NoError(t, err)
	writeFile(t, child.Dir, "child.txt", []byte("child\n"))

	full, err := child.Diff(ctx)
	require.NoError(t, err)
	require.Contains(t, string(full), "+parent")
	require.Contains(t, string(full), "child.txt")
	inc, err := child.DiffFrom(ctx, start)
	require.NoError(t, err)
	require.Contains(t, string(inc), "child.txt")
	require.False(t, strings.Contains(string(inc), "+parent"), "the incremental diff leaves out the parent's change")
	require.NoError(t, child.CheckApplies(ctx, full))

	bad := []byte("diff --git a/nope.txt b/nope.txt\n--- a/nope.txt\n+++ b/nope.txt\n@@ -1 +1 @@\n-x\n+y\n")
	require.ErrorIs(t, child.ApplyPatch(ctx, bad), ErrConflict)
}

// TestCopyFilesNeverLeaveTheTrees checks that symbolic links committed to
// the repository lead CopyFiles neither to read outside the source
// repository nor to write outside the workspace.
func TestCopyFilesNeverLeaveTheTrees(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	repo := newRepo(t)
	outside := t.TempDir()
	writeFile(t, outside, "a.yaml", []byte("precious\n"))

	// At the baseline, conf is a link to a directory outside; in the
	// user's checkout it has since become a directory with a local file.
	require.NoError(t, os.Symlink(outside, filepath.Join(repo.dir, "conf")))
	require.NoError(t, os.Symlink(outside, filepath.Join(repo.dir, "linked")))
	testGit(t, repo.dir, nil, "add", "conf", "linked")
	testGit(t, repo.dir, nil, "commit", "-q", "-m", "links")
	baseline := testGit(t, repo.dir, nil, "rev-parse", "HEAD")
	require.NoError(t, os.Remove(filepath.Join(repo.dir, "conf")))
	writeFile(t, repo.dir, "conf/a.yaml", []byte("local settings\n"))

	ws, err := newManager(t).Prepare(ctx, "job_links", relaytype.Repo{Type: "local", Path: repo.dir}, baseline)
	require.NoError(t, err)

	// linked/a.yaml reads outside the source repository: not copied (and
	// its destination, the same file, not truncated).
	copied, err := ws.CopyFiles([]string{"linked/*.yaml"})
	require.NoError(t, err)
	require.Empty(t, copied)
	require.Equal(t, "precious\n", readFile(t, outside, "a.yaml"))

	// conf/a.yaml would be written through the workspace's conf link.
	_, err = ws.CopyFiles([]string{"conf/*.yaml"})
	require.Error(t, err)
	require.Equal(t, "precious\n", readFile(t, outside, "a.yaml"), "nothing written outside the workspace")
	require.NoError(t, ws.Remove(ctx))
}
