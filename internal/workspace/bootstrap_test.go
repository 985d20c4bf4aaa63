package workspace

import (
	"context"
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
