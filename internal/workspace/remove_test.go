package workspace

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// TestRemoveDropsRegistration checks what Remove leaves of a local
// workspace: no checkout, no job directory, no registration and no
// administrative directory in the source repository (nor its worktrees
// directory, once empty), also when the executor registered a worktree of
// its own in the job directory, locked its worktree or pointed the
// checkout's .git file elsewhere. It also checks that Config.Trace hears
// of every operation.
func TestRemoveDropsRegistration(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := newRepo(t)
	var (
		mu  sync.Mutex
		ops []Op
	)
	m, err := New(Config{Root: filepath.Join(t.TempDir(), "ws"), Trace: func(op Op, jobID string, start, end time.Time) {
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, "job_rm", jobID)
		require.False(t, end.Before(start))
		ops = append(ops, op)
	}})
	require.NoError(t, err)
	common := filepath.Join(f.dir, ".git")
	for name, executor := range map[string]func(w *Workspace){
		"untouched": func(*Workspace) {},
		"second worktree": func(w *Workspace) {
			testGit(t, w.Dir, nil, "worktree", "add", "--detach", "-q", filepath.Join(w.MetaDir, "other"), f.base)
		},
		"locked": func(w *Workspace) { testGit(t, w.Dir, nil, "worktree", "lock", w.Dir) },
		"git file elsewhere": func(w *Workspace) {
			other := newRepo(t)
			writeFile(t, w.Dir, ".git", []byte("gitdir: "+filepath.Join(other.dir, ".git")+"\n"))
		},
	} {
		w, err := m.Prepare(ctx, "job_rm", relaytype.Repo{Type: "local", Path: f.dir}, f.base)
		require.NoError(t, err, name)
		admin := w.gitDir
		require.DirExists(t, admin, name)
		executor(w)
		patch, err := w.Diff(ctx)
		require.NoError(t, err, name)
		require.NoError(t, w.CheckApplies(ctx, append(patch, []byte("diff --git a/z b/z\nnew file mode 100644\n--- /dev/null\n+++ b/z\n@@ -0,0 +1 @@\n+z\n")...)), name)
		require.NoError(t, w.Remove(ctx), name)
		require.NoDirExists(t, w.MetaDir, name)
		require.NoDirExists(t, admin, name)
		require.NotContains(t, worktreePaths(t, f.dir), w.MetaDir, name)
		require.NoDirExists(t, filepath.Join(common, "worktrees"), "%s: git removes the emptied worktrees directory too", name)
		_, err = os.Stat(filepath.Join(f.dir, "a.txt"))
		require.NoError(t, err, "%s: the user's checkout stays", name)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, op := range []Op{OpPrepare, OpDiff, OpCheckApplies, OpRemove} {
		require.Equal(t, 4, count(ops, op), op)
	}
}

func count(ops []Op, op Op) int {
	n := 0
	for o := range slices.Values(ops) {
		if o == op {
			n++
		}
	}
	return n
}
