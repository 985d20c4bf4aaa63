package workspace

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// markers is a directory where the programs a hostile git configuration
// names leave a file each when they run.
type markers string

// script writes an executable shell script that leaves marker name, then
// runs body, and returns its path.
func (m markers) script(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(string(m), "bin", name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\ntouch '"+filepath.Join(string(m), "ran-"+name)+"'\n"+body+"\n"), 0o755))
	return p
}

// ran lists the markers left so far.
func (m markers) ran(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(string(m))
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "ran-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// installHooks puts a hook script named after each hook in dir.
func (m markers) installHooks(t *testing.T, dir string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for _, h := range []string{"post-index-change", "post-checkout", "pre-commit", "reference-transaction", "pre-auto-gc"} {
		src := m.script(t, "hook-"+filepath.Base(filepath.Dir(dir))+"-"+h, "exit 0")
		if err := os.Symlink(src, filepath.Join(dir, h)); !os.IsExist(err) {
			require.NoError(t, err)
		}
	}
}

// craftGitDir makes a git directory an executor could make: a repository
// holding the baseline, with a linked-worktree entry for checkout, whose
// configuration and hooks run programs: an fsmonitor hook, clean, smudge
// and process filters, an external diff and a textconv driver, and hooks.
// It returns the worktree entry (what a .git file would name) and the
// repository.
func craftGitDir(t *testing.T, src, checkout string, m markers) (admin, common string) {
	t.Helper()
	common = filepath.Join(t.TempDir(), "evil.git")
	testGit(t, src, nil, "clone", "-q", "--bare", "--", src, common)
	for _, kv := range [][2]string{
		{"core.bare", "false"},
		{"core.fsmonitor", m.script(t, "evil-fsmonitor", "exit 0")},
		{"filter.evil.clean", m.script(t, "evil-clean", "tr a-z A-Z")},
		{"filter.evil.smudge", m.script(t, "evil-smudge", "cat")},
		{"filter.evil.required", "true"},
		{"filter.proc.process", m.script(t, "evil-process", "exit 1")},
		{"diff.external", m.script(t, "evil-extdiff", "exit 0")},
		{"diff.evil.command", m.script(t, "evil-diffcmd", "exit 0")},
		{"diff.evil.textconv", m.script(t, "evil-textconv", `cat "$1"`)},
		{"core.sshCommand", m.script(t, "evil-ssh", "exit 1")},
		{"gc.auto", "1"},
	} {
		testGit(t, common, nil, "config", kv[0], kv[1])
	}
	m.installHooks(t, filepath.Join(common, "hooks"))
	admin = filepath.Join(common, "worktrees", "repo")
	require.NoError(t, os.MkdirAll(admin, 0o755))
	head := testGit(t, common, nil, "rev-parse", "HEAD")
	for name, content := range map[string]string{
		"commondir": "../..\n", "HEAD": head + "\n", "gitdir": filepath.Join(checkout, ".git") + "\n",
	} {
		require.NoError(t, os.WriteFile(filepath.Join(admin, name), []byte(content), 0o644))
	}
	return admin, common
}

// sabotage does what a hostile executor can do in its checkout: it makes
// changes, selects filter and diff drivers for its files through
// .gitattributes (those of the crafted git directory, and one the
// repository's own configuration defines), and points the checkout's .git
// at a crafted git directory, as a .git file or as a .git directory.
func sabotage(t *testing.T, w *Workspace, src string, m markers, gitAsDir bool) {
	t.Helper()
	admin, common := craftGitDir(t, src, w.Dir, m)
	writeFile(t, w.Dir, "a.txt", []byte("line1\nline2 changed\nline3\n"))
	writeFile(t, w.Dir, "new.txt", []byte("lower case stays lower\n"))
	writeFile(t, w.Dir, "x.proc", []byte("through the process filter\n"))
	writeFile(t, w.Dir, "y.user", []byte("through the user's filter\n"))
	writeFile(t, w.Dir, ".gitattributes", []byte("* filter=evil diff=evil\n*.proc filter=proc\n*.user filter=userfilter\n"))
	dotGit := filepath.Join(w.Dir, ".git")
	require.NoError(t, os.RemoveAll(dotGit))
	if gitAsDir {
		out, err := exec.Command("cp", "-a", common, dotGit).CombinedOutput()
		require.NoError(t, err, "%s", out)
		return
	}
	require.NoError(t, os.WriteFile(dotGit, []byte("gitdir: "+admin+"\n"), 0o644))
}

// TestExecutorGitConfigNeverRuns reproduces the finding that the relay ran
// git configuration an executor wrote: an executor that points its
// checkout's .git at a git directory of its own got that directory's
// fsmonitor command, hooks and filters run by the relay's own `git add`
// (computing the diff), with the relay's environment. Now computing the
// diff, snapshotting, checking and applying patches, and removing the
// workspace run none of them, nor the filters and hooks of the source
// repository, and the diff is still right.
func TestExecutorGitConfigNeverRuns(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		repo     relaytype.Repo
		gitAsDir bool
	}{
		{"worktree, .git file", relaytype.Repo{Type: "local"}, false},
		{"worktree, .git dir", relaytype.Repo{Type: "local"}, true},
		{"clone, .git file", relaytype.Repo{Type: "git"}, false},
		{"clone, .git dir", relaytype.Repo{Type: "git"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			m := markers(t.TempDir())
			src := newRepo(t) // its own: its configuration and hooks get hostile too
			repo := tc.repo
			if repo.Type == "local" {
				repo.Path = src.dir
			} else {
				repo.URL = "file://" + src.dir
			}
			mgr := newManager(t)
			w, err := mgr.Prepare(ctx, "job_evil", repo, src.head)
			require.NoError(t, err)
			follow, err := mgr.Prepare(ctx, "job_follow", repo, src.head)
			require.NoError(t, err)

			// The repository's own configuration and hooks: the relay's git
			// runs none of them on the executor's files either.
			for _, ws := range []*Workspace{w, follow} {
				testGit(t, ws.Dir, nil, "config", "filter.userfilter.clean", m.script(t, "user-clean", "tr a-z A-Z"))
				testGit(t, ws.Dir, nil, "config", "core.fsmonitor", m.script(t, "user-fsmonitor", "exit 0"))
				m.installHooks(t, filepath.Join(testGit(t, ws.Dir, nil, "rev-parse", "--path-format=absolute", "--git-common-dir"), "hooks"))
			}
			sabotage(t, w, src.dir, m, tc.gitAsDir)
			sabotage(t, follow, src.dir, m, tc.gitAsDir)
			require.Empty(t, m.ran(t), "setting the trap ran nothing")

			patch, diffErr := w.Diff(ctx)
			tree, snapErr := w.Snapshot(ctx)
			_, fromErr := w.DiffFrom(ctx, tree)
			checkErr := w.CheckApplies(ctx, patch)
			applyErr := follow.ApplyPatch(ctx, []byte("diff --git a/b.txt b/b.txt\n--- a/b.txt\n+++ b/b.txt\n@@ -1 +1 @@\n-bee\n+BEE\n"))
			removeErr := w.Remove(ctx)
			removeFollowErr := follow.Remove(ctx)
			require.Empty(t, m.ran(t), "the relay's git ran programs the executor or the repository configured")

			for _, err := range []error{diffErr, snapErr, fromErr, checkErr, applyErr, removeErr, removeFollowErr} {
				require.NoError(t, err)
			}
			p := string(patch)
			for _, want := range []string{"+line2 changed", "+lower case stays lower", "+through the process filter",
				"+through the user's filter", "b/.gitattributes"} {
				require.Contains(t, p, want)
			}
			require.NotContains(t, p, "LOWER CASE", "no clean filter rewrote the content")
			require.NotContains(t, p, ".git/")
			require.NoDirExists(t, w.MetaDir)
			if repo.Type == "local" {
				require.Equal(t, 1, strings.Count(worktreePaths(t, src.dir), "worktree "), "registrations removed")
			}
		})
	}
}

// TestConfinedGitEnv checks the environment and options confined git runs
// with: no credential, no inherited GIT_* variable, no system or global
// configuration, the overrides that disable every program a configuration
// can name, and the recorded git directory and work tree.
func TestConfinedGitEnv(t *testing.T) {
	t.Parallel()
	base := []string{
		"PATH=/usr/bin:/bin", "HOME=/home/u", "KEEP=1",
		"TASK_RELAY_API_TOKEN=operator-secret", "ANTHROPIC_API_KEY=sk-secret", "PGPASSWORD=pg-secret",
		"DATABASE_URL=postgres://u:db-secret@h/d", "GIT_EXTERNAL_DIFF=/evil", "GIT_SSH_COMMAND=/evil",
		"GIT_CONFIG_PARAMETERS='core.fsmonitor'='/evil'", "GIT_CONFIG_GLOBAL=/evil", "GIT_DIR=/evil", "GIT_EXEC_PATH=/evil",
		"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=core.hooksPath", "GIT_CONFIG_VALUE_0=/evil", "SSH_AUTH_SOCK=/agent",
	}
	env := confinedGitEnv(base, "GIT_INDEX_FILE=/idx")
	joined := strings.Join(env, "\n")
	for _, bad := range []string{"secret", "/evil", "/agent", "GIT_CONFIG_COUNT", "GIT_CONFIG_PARAMETERS"} {
		require.NotContains(t, joined, bad)
	}
	for _, want := range []string{"PATH=/usr/bin:/bin", "HOME=/home/u", "KEEP=1", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=" + os.DevNull, "GIT_TERMINAL_PROMPT=0", "GIT_INDEX_FILE=/idx", "LC_ALL=C"} {
		require.Contains(t, env, want)
	}

	args := strings.Join((&confined{gitDir: "/g", workTree: "/w", config: [][2]string{{"filter.x.clean", ""}}}).args(), " ")
	for _, want := range []string{"-c core.fsmonitor=false", "-c core.hooksPath=" + os.DevNull, "-c core.sshCommand=false",
		"-c protocol.allow=never", "-c credential.helper=", "-c filter.x.clean=", "--git-dir=/g", "--work-tree=/w"} {
		require.Contains(t, args, want)
	}
}

// TestUnsafeFilterNameRefused checks that a filter driver no -c option can
// neutralise makes the relay refuse to stage the workspace, without
// running it.
func TestUnsafeFilterNameRefused(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := newRepo(t)
	m := markers(t.TempDir())
	w, err := newManager(t).Prepare(ctx, "job_unsafe", relaytype.Repo{Type: "local", Path: f.dir}, f.head)
	require.NoError(t, err)
	testGit(t, w.Dir, nil, "config", "filter.a=b.clean", m.script(t, "odd-clean", "cat"))
	writeFile(t, w.Dir, ".gitattributes", []byte("* filter=a=b\n"))
	writeFile(t, w.Dir, "n.txt", []byte("new\n"))
	_, err = w.Diff(ctx)
	require.ErrorIs(t, err, ErrUnsafeConfig)
	require.Empty(t, m.ran(t))
	require.NoError(t, w.Remove(ctx))
}

// TestUserGitSeesNoSecret runs the user's own hook (post-checkout, which
// `git worktree add` runs at Prepare) and checks that the environment it
// gets holds none of the relay's credentials.
func TestUserGitSeesNoSecret(t *testing.T) {
	t.Parallel()
	f := newRepo(t)
	out := filepath.Join(t.TempDir(), "hook-env")
	hook := filepath.Join(f.dir, ".git", "hooks", "post-checkout")
	require.NoError(t, os.WriteFile(hook, []byte("#!/bin/sh\nenv > '"+out+"'\n"), 0o755))
	m := newManager(t)
	secrets := []string{"operator-token-0123456789", "other-job-token", "sk-ant-secret", "pg-secret", "mysql-secret",
		"db-secret", "aws-secret"}
	m.environ = append(os.Environ(),
		"TASK_RELAY_API_TOKEN="+secrets[0], "TASK_RELAY_TOKEN="+secrets[1], "ANTHROPIC_API_KEY="+secrets[2],
		"PGPASSWORD="+secrets[3], "MYSQL_PWD="+secrets[4], "DATABASE_URL=postgres://app:"+secrets[5]+"@db/app",
		"AWS_SECRET_ACCESS_KEY="+secrets[6], "VISIBLE_TO_HOOKS=yes")
	w, err := m.Prepare(t.Context(), "job_env", relaytype.Repo{Type: "local", Path: f.dir}, f.head)
	require.NoError(t, err)
	got := readFile(t, filepath.Dir(out), filepath.Base(out))
	require.Contains(t, got, "VISIBLE_TO_HOOKS=yes", "the hook ran, with the relay's environment")
	for _, s := range secrets {
		require.NotContains(t, got, s)
	}
	require.NoError(t, w.Remove(t.Context()))
}
