package workspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// repoFixture is a repository with three commits: base and head on main
// (head checked out) and feature, branched from base.
type repoFixture struct {
	dir     string
	base    string
	head    string
	feature string
}

// binaryData returns n bytes of non-text content, varied by seed.
func binaryData(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	b[0] = 0 // a NUL byte makes git treat the file as binary
	return b
}

// testGit runs git in dir with a hermetic configuration and an identity,
// failing the test on error, and returns its trimmed output.
func testGit(t *testing.T, dir string, stdin []byte, args ...string) string {
	t.Helper()
	cmd := exec.Command(DefaultGit, append([]string{"-C", dir}, args...)...)
	cmd.Env = gitEnv(nil,
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
	)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "git %s: %s", strings.Join(args, " "), stderr.String())
	return strings.TrimSpace(string(out))
}

func writeFile(t *testing.T, dir, name string, content []byte) {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, content, 0o644))
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	require.NoError(t, err)
	return string(b)
}

func newRepo(t *testing.T) repoFixture {
	t.Helper()
	dir := t.TempDir()
	testGit(t, dir, nil, "init", "-q", "-b", "main")
	writeFile(t, dir, "a.txt", []byte("line1\nline2\nline3\n"))
	writeFile(t, dir, "b.txt", []byte("bee\n"))
	writeFile(t, dir, "sub/c.txt", []byte("see\n"))
	writeFile(t, dir, "bin.dat", binaryData(4096, 1))
	writeFile(t, dir, ".gitignore", []byte("*.log\n"))
	writeFile(t, dir, "keep.log", []byte("tracked although ignored\n"))
	testGit(t, dir, nil, "add", "-A")
	testGit(t, dir, nil, "add", "-f", "keep.log")
	testGit(t, dir, nil, "commit", "-q", "-m", "base")
	base := testGit(t, dir, nil, "rev-parse", "HEAD")

	writeFile(t, dir, "a.txt", []byte("line1\nLINE2\nline3\n"))
	writeFile(t, dir, "d.txt", []byte("dee\n"))
	testGit(t, dir, nil, "add", "-A")
	testGit(t, dir, nil, "commit", "-q", "-m", "head")
	head := testGit(t, dir, nil, "rev-parse", "HEAD")

	testGit(t, dir, nil, "checkout", "-q", "-b", "feature", base)
	writeFile(t, dir, "f.txt", []byte("eff\n"))
	testGit(t, dir, nil, "add", "-A")
	testGit(t, dir, nil, "commit", "-q", "-m", "feature")
	feature := testGit(t, dir, nil, "rev-parse", "HEAD")
	testGit(t, dir, nil, "checkout", "-q", "main")
	return repoFixture{dir: dir, base: base, head: head, feature: feature}
}

func newManager(t *testing.T) *Manager {
	t.Helper()
	m, err := New(Config{Root: filepath.Join(t.TempDir(), "ws")})
	require.NoError(t, err)
	return m
}

// editWorkspace makes every kind of change an executor might: edits,
// deletions, new text and binary files, an ignored file, a change to a
// tracked-but-ignored file, and a commit of its own.
func editWorkspace(t *testing.T, dir string) {
	t.Helper()
	writeFile(t, dir, "a.txt", []byte("line1\nline2 changed\nline3\n"))
	require.NoError(t, os.Remove(filepath.Join(dir, "b.txt")))
	writeFile(t, dir, "new/n.txt", []byte("new\n"))
	writeFile(t, dir, "spaced name ü.txt", []byte("unicode\n"))
	writeFile(t, dir, "bin.dat", binaryData(4096, 2))
	writeFile(t, dir, "newbin.dat", binaryData(1000, 3))
	writeFile(t, dir, "x.log", []byte("ignored\n"))
	writeFile(t, dir, "keep.log", []byte("tracked and changed\n"))
	writeFile(t, dir, "sub/c.txt", []byte("see, committed\n"))
	testGit(t, dir, nil, "add", "sub/c.txt")
	testGit(t, dir, nil, "commit", "-q", "-m", "executor commit")
}

// userState captures everything about the user's checkout that a
// workspace must leave alone.
func userState(t *testing.T, dir string) string {
	t.Helper()
	return strings.Join([]string{
		testGit(t, dir, nil, "status", "--porcelain", "--untracked-files=all"),
		testGit(t, dir, nil, "rev-parse", "HEAD"),
		testGit(t, dir, nil, "symbolic-ref", "HEAD"),
		testGit(t, dir, nil, "ls-files", "--stage"),
		testGit(t, dir, nil, "for-each-ref"),
		readFile(t, dir, "a.txt"),
	}, "\n--\n")
}

// snapshot maps each file under dir (outside .git, except skipped names)
// to its content.
func snapshot(t *testing.T, dir string, skip ...string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.Name() == ".git" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		for _, s := range skip {
			if rel == s {
				return nil
			}
		}
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files[rel] = string(b)
		}
		return nil
	})
	require.NoError(t, err)
	return files
}

// requireAppliesToFreshClone applies patch with plain `git apply` to a new
// clone of src at base and requires the result to equal the files in want.
func requireAppliesToFreshClone(t *testing.T, src, base string, patch []byte, want string) {
	t.Helper()
	fresh := filepath.Join(t.TempDir(), "fresh")
	testGit(t, src, nil, "clone", "-q", "--", src, fresh)
	testGit(t, fresh, nil, "checkout", "-q", "--detach", base)
	testGit(t, fresh, patch, "apply", "--whitespace=nowarn", "-")
	require.Equal(t, snapshot(t, want, "x.log"), snapshot(t, fresh))
}

func worktreePaths(t *testing.T, repo string) string {
	t.Helper()
	return testGit(t, repo, nil, "worktree", "list", "--porcelain")
}

func requireDiffCoversEdits(t *testing.T, patch []byte) {
	t.Helper()
	p := string(patch)
	for _, want := range []string{
		"diff --git a/a.txt b/a.txt", "+line2 changed",
		"diff --git a/b.txt b/b.txt\ndeleted file mode",
		"b/new/n.txt", "b/spaced name ü.txt",
		"diff --git a/bin.dat b/bin.dat", "GIT binary patch", "b/newbin.dat",
		"+tracked and changed", "+see, committed",
	} {
		require.Contains(t, p, want)
	}
	require.NotContains(t, p, "x.log")
	require.NotContains(t, p, "\x1b[", "no color codes")
}

func TestPrepareLocal(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := newRepo(t)

	// A dirty user checkout: an unstaged edit, a staged edit, an untracked file.
	writeFile(t, f.dir, "a.txt", []byte("user edit, not staged\n"))
	writeFile(t, f.dir, "d.txt", []byte("user edit, staged\n"))
	testGit(t, f.dir, nil, "add", "d.txt")
	writeFile(t, f.dir, "untracked.txt", []byte("mine\n"))
	before := userState(t, f.dir)

	m := newManager(t)
	w, err := m.Prepare(ctx, "job_local", relaytype.Repo{Type: "local", Path: f.dir}, f.base)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(w.MetaDir, "repo"), w.Dir)
	require.Equal(t, f.base, w.Baseline)
	require.Equal(t, f.base, testGit(t, w.Dir, nil, "rev-parse", "HEAD"))
	require.Equal(t, "line1\nline2\nline3\n", readFile(t, w.Dir, "a.txt"))
	require.NoFileExists(t, filepath.Join(w.Dir, "d.txt"))
	require.Contains(t, worktreePaths(t, f.dir), "worktree "+w.Dir+"\n")

	// The relay's own files in MetaDir never show up in the diff.
	writeFile(t, w.MetaDir, "prompt.md", []byte("do things\n"))
	empty, err := w.Diff(ctx)
	require.NoError(t, err)
	require.Empty(t, empty)

	editWorkspace(t, w.Dir)
	status := testGit(t, w.Dir, nil, "status", "--porcelain", "--untracked-files=all")
	patch, err := w.Diff(ctx)
	require.NoError(t, err)
	requireDiffCoversEdits(t, patch)
	again, err := w.Diff(ctx)
	require.NoError(t, err)
	require.Equal(t, string(patch), string(again), "diff is deterministic")
	require.Equal(t, status, testGit(t, w.Dir, nil, "status", "--porcelain", "--untracked-files=all"),
		"diffing changes nothing visible in the workspace")

	require.NoError(t, w.CheckApplies(ctx, patch))
	requireAppliesToFreshClone(t, f.dir, f.base, patch, w.Dir)
	require.Equal(t, before, userState(t, f.dir), "user checkout untouched")

	require.NoError(t, w.Remove(ctx))
	require.NoDirExists(t, w.MetaDir)
	require.NotContains(t, worktreePaths(t, f.dir), w.Dir)
	require.NoError(t, w.Remove(ctx), "second Remove is a no-op")
	require.Equal(t, before, userState(t, f.dir), "user checkout untouched")
}

func TestPrepareClone(t *testing.T) {
	t.Parallel()
	f := newRepo(t)
	for name, url := range map[string]string{
		"file url":   "file://" + f.dir,
		"plain path": f.dir,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			m := newManager(t)
			w, err := m.Prepare(ctx, "job_clone", relaytype.Repo{Type: "git", URL: url}, f.base)
			require.NoError(t, err)
			require.Equal(t, f.base, testGit(t, w.Dir, nil, "rev-parse", "HEAD"))
			require.NoFileExists(t, filepath.Join(w.Dir, "d.txt"))

			editWorkspace(t, w.Dir)
			patch, err := w.Diff(ctx)
			require.NoError(t, err)
			requireDiffCoversEdits(t, patch)
			require.NoError(t, w.CheckApplies(ctx, patch))
			requireAppliesToFreshClone(t, f.dir, f.base, patch, w.Dir)

			require.NoError(t, w.Remove(ctx))
			require.NoDirExists(t, w.MetaDir)
			require.NoError(t, w.Remove(ctx))
		})
	}
}

func TestPrepareCloneFetchesUnadvertisedBaseline(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := newRepo(t)
	// A commit reachable only from a ref that clone does not copy.
	testGit(t, f.dir, nil, "checkout", "-q", "--detach", f.base)
	writeFile(t, f.dir, "hidden.txt", []byte("hidden\n"))
	testGit(t, f.dir, nil, "add", "hidden.txt")
	testGit(t, f.dir, nil, "commit", "-q", "-m", "hidden")
	hidden := testGit(t, f.dir, nil, "rev-parse", "HEAD")
	testGit(t, f.dir, nil, "update-ref", "refs/hidden/x", hidden)
	testGit(t, f.dir, nil, "checkout", "-q", "main")
	testGit(t, f.dir, nil, "config", "uploadpack.allowAnySHA1InWant", "true")

	w, err := newManager(t).Prepare(ctx, "job_hidden", relaytype.Repo{Type: "git", URL: "file://" + f.dir}, hidden)
	require.NoError(t, err)
	require.Equal(t, "hidden\n", readFile(t, w.Dir, "hidden.txt"))
	require.NoError(t, w.Remove(ctx))
}

func TestCheckAppliesConflict(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := newRepo(t)
	m := newManager(t)
	repo := relaytype.Repo{Type: "local", Path: f.dir}

	atBase, err := m.Prepare(ctx, "job_atbase", repo, f.base)
	require.NoError(t, err)
	writeFile(t, atBase.Dir, "a.txt", []byte("line1\nline2 edited\nline3\n"))
	patch, err := atBase.Diff(ctx)
	require.NoError(t, err)
	require.NoError(t, atBase.CheckApplies(ctx, patch))

	// At head, line2 reads LINE2: the same patch conflicts.
	atHead, err := m.Prepare(ctx, "job_athead", repo, f.head)
	require.NoError(t, err)
	err = atHead.CheckApplies(ctx, patch)
	require.ErrorIs(t, err, ErrConflict)
	require.Contains(t, err.Error(), "a.txt")

	require.ErrorIs(t, atHead.CheckApplies(ctx, []byte("this is not a patch\n")), ErrConflict)
	require.NoError(t, atHead.CheckApplies(ctx, nil))
	require.NoError(t, atHead.CheckApplies(ctx, []byte("\n")))
	// Checking left nothing staged in the workspace.
	require.Empty(t, testGit(t, atHead.Dir, nil, "status", "--porcelain"))
}

func TestPrepareConcurrent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := newRepo(t)
	before := userState(t, f.dir)
	m := newManager(t)
	const n = 8
	var wg sync.WaitGroup
	ws := make([]*Workspace, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			ws[i], errs[i] = m.Prepare(ctx, fmt.Sprintf("job_c%d", i), relaytype.Repo{Type: "local", Path: f.dir}, f.base)
		})
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, "bee\n", readFile(t, ws[i].Dir, "b.txt"))
	}
	for i := range n {
		wg.Go(func() { errs[i] = ws[i].Remove(ctx) })
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
	}
	require.Equal(t, "worktree "+f.dir, strings.SplitN(worktreePaths(t, f.dir), "\n", 2)[0])
	require.Equal(t, 1, strings.Count(worktreePaths(t, f.dir), "worktree "))
	require.Equal(t, before, userState(t, f.dir))
}

func TestPrepareReplacesLeftover(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := newRepo(t)
	root := filepath.Join(t.TempDir(), "ws")
	m1, err := New(Config{Root: root})
	require.NoError(t, err)
	repo := relaytype.Repo{Type: "local", Path: f.dir}
	w1, err := m1.Prepare(ctx, "job_retry", repo, f.base)
	require.NoError(t, err)
	writeFile(t, w1.Dir, "half-done.txt", []byte("from the crashed attempt\n"))
	writeFile(t, w1.MetaDir, "prompt.md", []byte("old prompt\n"))

	// The relay crashed; a new one retries the job at another commit.
	m2, err := New(Config{Root: root})
	require.NoError(t, err)
	w2, err := m2.Prepare(ctx, "job_retry", repo, f.head)
	require.NoError(t, err)
	require.Equal(t, w1.Dir, w2.Dir)
	require.NoFileExists(t, filepath.Join(w2.Dir, "half-done.txt"))
	require.NoFileExists(t, filepath.Join(w2.MetaDir, "prompt.md"))
	require.Equal(t, f.head, testGit(t, w2.Dir, nil, "rev-parse", "HEAD"))
	list := worktreePaths(t, f.dir)
	require.Equal(t, 1, strings.Count(list, "worktree "+w2.Dir+"\n"), list)
	require.NotContains(t, list, "prunable")
	require.NoError(t, w2.Remove(ctx))
}

func TestSweep(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := newRepo(t)
	m := newManager(t)
	local := relaytype.Repo{Type: "local", Path: f.dir}
	gone, err := m.Prepare(ctx, "job_gone", local, f.base)
	require.NoError(t, err)
	kept, err := m.Prepare(ctx, "job_kept", local, f.base)
	require.NoError(t, err)
	cloned, err := m.Prepare(ctx, "job_cloned", relaytype.Repo{Type: "git", URL: "file://" + f.dir}, f.base)
	require.NoError(t, err)
	bare := filepath.Join(m.root, "job_bare")
	writeFile(t, bare, "prompt.md", []byte("only meta\n"))
	other := filepath.Join(m.root, "not-a-job")
	writeFile(t, other, "x", []byte("x\n"))

	require.NoError(t, m.Sweep(ctx, func(id string) bool { return id == "job_kept" }))
	require.NoDirExists(t, gone.MetaDir)
	require.NoDirExists(t, cloned.MetaDir)
	require.NoDirExists(t, bare)
	require.DirExists(t, kept.Dir)
	require.DirExists(t, other)
	list := worktreePaths(t, f.dir)
	require.NotContains(t, list, gone.Dir)
	require.Contains(t, list, kept.Dir)
	require.NoError(t, kept.Remove(ctx))
}

func TestKeep(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := newRepo(t)
	m, err := New(Config{Root: t.TempDir(), Keep: true})
	require.NoError(t, err)
	w, err := m.Prepare(ctx, "job_keep", relaytype.Repo{Type: "local", Path: f.dir}, f.base)
	require.NoError(t, err)
	require.NoError(t, w.Remove(ctx))
	require.DirExists(t, w.Dir)
	require.NoError(t, m.Sweep(ctx, nil))
	require.DirExists(t, w.Dir)
	testGit(t, f.dir, nil, "worktree", "remove", "--force", w.Dir)
}

func TestPrepareErrors(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := newRepo(t)
	m := newManager(t)
	notRepo := t.TempDir()
	missing := "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		name, jobID, baseline string
		repo                  relaytype.Repo
		want                  string
	}{
		{"bad job id", "../etc", f.base, relaytype.Repo{Type: "local", Path: f.dir}, "invalid job id"},
		{"short baseline", "job_e1", "abc123", relaytype.Repo{Type: "local", Path: f.dir}, "not a full 40-character"},
		{"option url", "job_e2", f.base, relaytype.Repo{Type: "git", URL: "--upload-pack=touch /tmp/pwned"}, "must not start with '-'"},
		{"not a repo", "job_e3", f.base, relaytype.Repo{Type: "local", Path: notRepo}, "is not a git repository"},
		{"missing path", "job_e4", f.base, relaytype.Repo{Type: "local", Path: filepath.Join(notRepo, "nope")}, "no such file"},
		{"unknown commit", "job_e5", missing, relaytype.Repo{Type: "local", Path: f.dir}, "worktree add"},
		{"unknown commit clone", "job_e6", missing, relaytype.Repo{Type: "git", URL: f.dir}, "not found in"},
		{"bad type", "job_e7", f.base, relaytype.Repo{Type: "svn", URL: f.dir}, "repo.type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Prepare(ctx, tc.jobID, tc.repo, tc.baseline)
			require.ErrorContains(t, err, tc.want)
			if relaytype.ValidJobID(tc.jobID) {
				require.NoDirExists(t, filepath.Join(m.root, tc.jobID), "failed Prepare leaves nothing")
			}
		})
	}
	require.Equal(t, 1, strings.Count(worktreePaths(t, f.dir), "worktree "))
}

func TestResolveBaseline(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := newRepo(t)
	testGit(t, f.dir, nil, "tag", "-a", "-m", "release", "v1", f.feature)
	url := "file://" + f.dir
	notRepo := t.TempDir()
	pinned := strings.ToUpper(f.feature)
	for _, tc := range []struct {
		name string
		repo relaytype.Repo
		want string // commit, or an error substring after "error: "
	}{
		{"local head", relaytype.Repo{Type: "local", Path: f.dir}, f.head},
		{"local branch", relaytype.Repo{Type: "local", Path: f.dir, BaseBranch: "feature"}, f.feature},
		{"local tag", relaytype.Repo{Type: "local", Path: f.dir, BaseBranch: "v1"}, f.feature},
		{"local bad branch", relaytype.Repo{Type: "local", Path: f.dir, BaseBranch: "nope"}, `error: branch "nope" not found`},
		{"local not a repo", relaytype.Repo{Type: "local", Path: notRepo}, "error: is not a git repository"},
		{"local missing", relaytype.Repo{Type: "local", Path: filepath.Join(notRepo, "x")}, "error: no such file"},
		{"git head", relaytype.Repo{Type: "git", URL: url}, f.head},
		{"git branch", relaytype.Repo{Type: "git", URL: url, BaseBranch: "feature"}, f.feature},
		{"git full ref", relaytype.Repo{Type: "git", URL: url, BaseBranch: "refs/heads/feature"}, f.feature},
		{"git annotated tag", relaytype.Repo{Type: "git", URL: url, BaseBranch: "v1"}, f.feature},
		{"git bad branch", relaytype.Repo{Type: "git", URL: url, BaseBranch: "nope"}, `error: branch "nope" not found`},
		{"git not a repo", relaytype.Repo{Type: "git", URL: "file://" + notRepo}, "error: list refs"},
		{"git option url", relaytype.Repo{Type: "git", URL: "-oProxyCommand=x"}, "error: must not start with '-'"},
		{"option branch", relaytype.Repo{Type: "local", Path: f.dir, BaseBranch: "--all"}, "error: must not start with '-'"},
		{"pinned", relaytype.Repo{Type: "git", URL: "unused", BaselineCommit: pinned}, f.feature},
		{"pinned bad", relaytype.Repo{Type: "local", Path: f.dir, BaselineCommit: "abc"}, "error: repo.baselineCommit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ResolveBaseline(ctx, "", tc.repo)
			if msg, ok := strings.CutPrefix(tc.want, "error: "); ok {
				require.ErrorContains(t, err, msg)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestGitEnvDropsRepositoryVariables(t *testing.T) {
	t.Parallel()
	env := strings.Join(gitEnv(nil, "EXTRA=1"), "\n") + "\n"
	require.Contains(t, env, "GIT_TERMINAL_PROMPT=0\n")
	require.Contains(t, env, "LC_ALL=C\n")
	require.Contains(t, env, "EXTRA=1\n")
	for _, k := range []string{"GIT_DIR=", "GIT_INDEX_FILE=", "GIT_WORK_TREE="} {
		require.False(t, strings.HasPrefix(env, k) || strings.Contains(env, "\n"+k), k)
	}
	require.True(t, errors.Is(&gitError{err: context.Canceled}, context.Canceled))
}
