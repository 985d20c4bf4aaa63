//go:build unix

package workspace

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// killable is a repository whose baseline checks out held.txt through a
// smudge filter that, once armed, SIGKILLs its whole process group: the
// `git worktree add` running it, part-way through its checkout, after git
// registered the worktree locked "initializing" and before it unlocked it.
type killable struct {
	repoFixture
	baseline string
	armFile  string
}

func newKillable(t *testing.T) *killable {
	t.Helper()
	f := newRepo(t)
	writeFile(t, f.dir, ".gitattributes", []byte("held.txt filter=hold\n"))
	writeFile(t, f.dir, "held.txt", []byte("held\n"))
	testGit(t, f.dir, nil, "add", ".gitattributes", "held.txt")
	testGit(t, f.dir, nil, "commit", "-q", "-m", "held")
	k := &killable{repoFixture: f, baseline: testGit(t, f.dir, nil, "rev-parse", "HEAD")}
	dir := t.TempDir()
	k.armFile = filepath.Join(dir, "armed")
	filter := filepath.Join(dir, "filter.sh")
	// Only the run that removes the arm file kills; every other one passes
	// the content through.
	writeFile(t, dir, "filter.sh", []byte(fmt.Sprintf(
		"#!/bin/sh\nif rm %s 2>/dev/null; then kill -KILL 0; fi\nexec cat\n", shellQuote(k.armFile))))
	require.NoError(t, os.Chmod(filter, 0o755))
	testGit(t, f.dir, nil, "config", "filter.hold.smudge", shellQuote(filter))
	testGit(t, f.dir, nil, "config", "filter.hold.required", "true")
	return k
}

// killedAdd leaves job id of m exactly as a relay killed in the middle of
// its `git worktree add` does: the job directory with its source record,
// a partial checkout, and the registration locked "initializing" in the
// repository. It returns the job directory.
func (k *killable) killedAdd(t *testing.T, m *Manager, id string) string {
	t.Helper()
	jobDir := filepath.Join(m.root, id)
	require.NoError(t, os.MkdirAll(jobDir, 0o700))
	common, err := commonDirOf(t.Context(), DefaultGit, k.dir)
	require.NoError(t, err)
	require.NoError(t, m.writeSourceRecord(jobDir, common))
	writeFile(t, filepath.Dir(k.armFile), filepath.Base(k.armFile), nil)
	cmd := exec.Command(DefaultGit, "-C", k.dir, "worktree", "add", "--detach", "--quiet", filepath.Join(jobDir, checkoutName), k.baseline)
	cmd.Env = gitEnv(nil, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	// Its own process group: the filter kills that group, not the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "%s", out)
	require.False(t, ee.Exited(), "git was killed, not failed: %s", out)
	require.Contains(t, underRoot(t, m, k.dir), filepath.Join(m.rootReal, id, checkoutName)+" locked",
		"the killed add left its registration locked")
	return jobDir
}

// underRoot lists the registrations of repo inside m's root, each as its
// path, followed by " locked" when it is locked.
func underRoot(t *testing.T, m *Manager, repo string) []string {
	t.Helper()
	var got []string
	for _, r := range registrationsOf(t, repo) {
		if !strings.HasPrefix(r.path, m.rootReal+"/") && !strings.HasPrefix(r.path, m.root+"/") {
			continue
		}
		if r.locked {
			got = append(got, r.path+" locked")
		} else {
			got = append(got, r.path)
		}
	}
	return got
}

func registrationsOf(t *testing.T, repo string) []registration {
	t.Helper()
	var regs []registration
	for _, rec := range strings.Split(worktreePaths(t, repo), "\n\n") {
		var r registration
		for _, line := range strings.Split(rec, "\n") {
			if p, ok := strings.CutPrefix(line, "worktree "); ok {
				r.path = p
			}
			if line == "locked" || strings.HasPrefix(line, "locked ") {
				r.locked = true
			}
		}
		regs = append(regs, r)
	}
	return regs
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// within runs fn and fails the test if it does not return within a few
// seconds (fn is left running then).
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestSweepRecoversKilledWorktreeAdds(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	k := newKillable(t)
	m := newManager(t)
	killed := k.killedAdd(t, m, "job_killed")
	// Killed before git wrote the checkout's .git file: only the source
	// record tells which repository holds the registration.
	noGitFile := k.killedAdd(t, m, "job_nogit")
	require.NoError(t, removeAll(filepath.Join(noGitFile, checkoutName)))
	require.NoError(t, os.Mkdir(filepath.Join(noGitFile, checkoutName), 0o700))
	// Killed before git registered anything: the record alone.
	recordOnly := filepath.Join(m.root, "job_record")
	require.NoError(t, os.MkdirAll(recordOnly, 0o700))
	require.NoError(t, m.writeSourceRecord(recordOnly, canonical(filepath.Join(k.dir, ".git"))))
	kept := k.killedAdd(t, m, "job_kept")
	require.Len(t, underRoot(t, m, k.dir), 3)

	require.NoError(t, m.Sweep(ctx, func(id string) bool { return id == "job_kept" }))
	require.NoDirExists(t, killed)
	require.NoDirExists(t, noGitFile)
	require.NoDirExists(t, recordOnly)
	// A kept job's directory is left to its next Prepare.
	require.DirExists(t, kept)
	require.Equal(t, []string{filepath.Join(m.rootReal, "job_kept", checkoutName) + " locked"}, underRoot(t, m, k.dir))

	// The kept job runs again.
	w, err := m.Prepare(ctx, "job_kept", relaytype.Repo{Type: "local", Path: k.dir}, k.baseline)
	require.NoError(t, err)
	require.Equal(t, k.baseline, testGit(t, w.Dir, nil, "rev-parse", "HEAD"))
	require.Equal(t, "held\n", readFile(t, w.Dir, "held.txt"))
	require.NotContains(t, worktreePaths(t, k.dir), "locked")
	require.Equal(t, canonical(filepath.Join(k.dir, ".git"))+"\n", readFile(t, w.MetaDir, sourceRecord))
	require.NoError(t, w.Remove(ctx))
	require.Empty(t, underRoot(t, m, k.dir))
	require.Len(t, registrationsOf(t, k.dir), 1)
}

func TestPrepareAfterKilledWorktreeAdd(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	k := newKillable(t)
	local := relaytype.Repo{Type: "local", Path: k.dir}
	for _, tc := range []struct {
		name  string
		after func(t *testing.T, jobDir string)
	}{
		{"job directory left", func(*testing.T, string) {}},
		{"no .git file", func(t *testing.T, jobDir string) {
			require.NoError(t, removeAll(filepath.Join(jobDir, checkoutName)))
			require.NoError(t, os.Mkdir(filepath.Join(jobDir, checkoutName), 0o700))
		}},
		// Nothing tells Prepare about the registration: `git worktree add`
		// refuses the path as "a missing but locked worktree", and is
		// retried once it is cleared.
		{"job directory gone", func(t *testing.T, jobDir string) { require.NoError(t, removeAll(jobDir)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newManager(t)
			jobDir := k.killedAdd(t, m, "job_retry")
			tc.after(t, jobDir)
			w, err := m.Prepare(ctx, "job_retry", local, k.baseline)
			require.NoError(t, err)
			require.Equal(t, k.baseline, testGit(t, w.Dir, nil, "rev-parse", "HEAD"))
			require.Equal(t, "held\n", readFile(t, w.Dir, "held.txt"))
			require.Equal(t, []string{w.Dir}, underRoot(t, m, k.dir))
			require.NotContains(t, worktreePaths(t, k.dir), "locked")
			require.NoError(t, w.Remove(ctx))
			require.Empty(t, underRoot(t, m, k.dir))
		})
	}
}

func TestRecoverRemovesRegistrationsOfGoneJobDirs(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	k := newKillable(t)
	m := newManager(t)
	local := relaytype.Repo{Type: "local", Path: k.dir}
	require.NoError(t, removeAll(k.killedAdd(t, m, "job_locked")))
	done, err := m.Prepare(ctx, "job_done", local, k.baseline)
	require.NoError(t, err)
	require.NoError(t, removeAll(done.MetaDir))
	require.Len(t, underRoot(t, m, k.dir), 2)

	// No job directory records the repository: Sweep cannot know it.
	require.NoError(t, m.Sweep(ctx, nil))
	require.Len(t, underRoot(t, m, k.dir), 2)

	live, err := m.Prepare(ctx, "job_live", local, k.baseline)
	require.NoError(t, err)
	require.NoError(t, m.Recover(ctx, []string{filepath.Join(k.dir, "sub"), filepath.Join(t.TempDir(), "gone")}))
	require.Equal(t, []string{live.Dir}, underRoot(t, m, k.dir), "the registration of an existing job directory stays")
	require.NotContains(t, worktreePaths(t, k.dir), "locked")

	// Sweep recovers the repositories that job directories record.
	require.NoError(t, removeAll(k.killedAdd(t, m, "job_locked_again")))
	require.NoError(t, m.Sweep(ctx, func(string) bool { return true }))
	require.Equal(t, []string{live.Dir}, underRoot(t, m, k.dir))
	require.NoError(t, live.Remove(ctx))
	require.Empty(t, underRoot(t, m, k.dir))

	require.ErrorContains(t, m.Recover(ctx, []string{t.TempDir()}), "not a git repository")
}

func TestUserWorktreesUntouched(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	k := newKillable(t)
	m := newManager(t)
	outside := t.TempDir()
	add := func(path, lockReason string) {
		testGit(t, k.dir, nil, "worktree", "add", "--detach", "--quiet", path, k.base)
		if lockReason != "" {
			testGit(t, k.dir, nil, "worktree", "lock", "--reason", lockReason, path)
		}
	}
	add(filepath.Join(outside, "locked"), "mine")
	add(filepath.Join(outside, "usb"), "on a USB disk")
	require.NoError(t, removeAll(filepath.Join(outside, "usb"))) // unplugged: missing but locked
	add(filepath.Join(outside, "gone"), "")
	require.NoError(t, removeAll(filepath.Join(outside, "gone"))) // prunable
	// Under Root, but not in a job directory.
	add(filepath.Join(m.root, "not-a-job", "wt"), "initializing")
	mine := func() []string {
		var recs []string
		for _, rec := range strings.Split(worktreePaths(t, k.dir), "\n\n") {
			if !strings.Contains(rec, "/job_") {
				recs = append(recs, rec)
			}
		}
		slices.Sort(recs)
		return recs
	}
	before := mine()
	require.Len(t, before, 5)
	require.Contains(t, strings.Join(before, "\n"), "prunable")

	require.NoError(t, removeAll(k.killedAdd(t, m, "job_gone")))
	k.killedAdd(t, m, "job_swept")
	k.killedAdd(t, m, "job_retried")
	require.NoError(t, m.Sweep(ctx, func(id string) bool { return id == "job_retried" }))
	require.NoError(t, m.Recover(ctx, []string{k.dir}))
	w, err := m.Prepare(ctx, "job_retried", relaytype.Repo{Type: "local", Path: k.dir}, k.baseline)
	require.NoError(t, err)
	require.NoError(t, w.Remove(ctx))
	require.NoError(t, m.Sweep(ctx, nil))

	require.Equal(t, []string{filepath.Join(m.rootReal, "not-a-job", "wt") + " locked"}, underRoot(t, m, k.dir))
	require.Equal(t, before, mine())
	require.DirExists(t, filepath.Join(m.root, "not-a-job", "wt"))
	require.DirExists(t, filepath.Join(outside, "locked"))
}

func TestPrepareCanceledDuringWorktreeAdd(t *testing.T) {
	t.Parallel()
	f := newRepo(t)
	realGit, err := exec.LookPath(DefaultGit)
	require.NoError(t, err)
	dir := t.TempDir()
	started, proceed, done := filepath.Join(dir, "started"), filepath.Join(dir, "proceed"), filepath.Join(dir, "done")
	require.NoError(t, syscall.Mkfifo(started, 0o600))
	require.NoError(t, syscall.Mkfifo(proceed, 0o600))
	// A git that, for `worktree add`, reports that it started and waits
	// for the test (both through FIFOs) before running the real add.
	writeFile(t, dir, "git", []byte(fmt.Sprintf(`#!/bin/sh
case " $* " in
*" worktree add "*)
	echo started > %[1]s
	read _ < %[2]s
	%[4]s "$@"
	rc=$?
	echo $rc > %[3]s
	exit $rc ;;
esac
exec %[4]s "$@"
`, shellQuote(started), shellQuote(proceed), shellQuote(done), shellQuote(realGit))))
	require.NoError(t, os.Chmod(filepath.Join(dir, "git"), 0o755))
	m, err := New(Config{Root: filepath.Join(t.TempDir(), "ws"), Git: filepath.Join(dir, "git")})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := m.Prepare(ctx, "job_cancel", relaytype.Repo{Type: "local", Path: f.dir}, f.base)
		errc <- err
	}()
	within(t, "worktree add to start", func() { _, _ = os.ReadFile(started) })
	cancel()
	within(t, "worktree add to go on", func() { _ = os.WriteFile(proceed, []byte("go\n"), 0) })
	within(t, "Prepare to return", func() { err = <-errc })

	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, "0\n", readFile(t, dir, "done"), "the add was not cut short")
	require.NoDirExists(t, filepath.Join(m.root, "job_cancel"))
	require.Len(t, registrationsOf(t, f.dir), 1, "no registration left")
}

// TestHalfWrittenRegistration: a `git worktree add` killed after it wrote
// the gitdir file but before commondir leaves an entry on which `git
// worktree list` fails for the whole repository; the next Prepare of the
// job and Sweep clear it, and a user's entry in the same state is kept.
func TestHalfWrittenRegistration(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newRepo(t)
	m := newManager(t)
	local := relaytype.Repo{Type: "local", Path: r.dir}
	halfMade := func(name, checkout string) string {
		admin := filepath.Join(r.dir, ".git", "worktrees", name)
		require.NoError(t, os.MkdirAll(admin, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(admin, "locked"), []byte("initializing"), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(admin, "gitdir"), []byte(filepath.Join(checkout, ".git")+"\n"), 0o644))
		// Killed between creating commondir and writing it.
		require.NoError(t, os.WriteFile(filepath.Join(admin, "commondir"), nil, 0o644))
		require.NoError(t, os.MkdirAll(checkout, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(checkout, ".git"), []byte("gitdir: "+admin+"\n"), 0o644))
		return admin
	}
	jobDir := filepath.Join(m.root, "job_half")
	require.NoError(t, os.MkdirAll(jobDir, 0o700))
	require.NoError(t, m.writeSourceRecord(jobDir, canonical(filepath.Join(r.dir, ".git"))))
	ours := halfMade("repo", filepath.Join(jobDir, checkoutName))
	cmd := exec.Command("git", "-C", r.dir, "worktree", "list", "--porcelain")
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "git cannot list a half-written entry: %s", out)

	w, err := m.Prepare(ctx, "job_half", local, r.base)
	require.NoError(t, err)
	// The entry of the new checkout may reuse the name; it is whole.
	require.FileExists(t, filepath.Join(ours, "commondir"))
	require.True(t, nonEmptyFile(filepath.Join(ours, "commondir")))
	require.Equal(t, r.base, testGit(t, w.Dir, nil, "rev-parse", "HEAD"))
	require.NotContains(t, worktreePaths(t, r.dir), "locked")
	require.NoError(t, w.Remove(ctx))

	// A sweep after a kill that left only the job directory clears it too.
	jobDir = filepath.Join(m.root, "job_half2")
	require.NoError(t, os.MkdirAll(jobDir, 0o700))
	require.NoError(t, m.writeSourceRecord(jobDir, canonical(filepath.Join(r.dir, ".git"))))
	ours = halfMade("repo", filepath.Join(jobDir, checkoutName))
	require.NoError(t, m.Sweep(ctx, nil))
	require.NoDirExists(t, ours)
	require.NoDirExists(t, jobDir)

	// The same state of a checkout outside Root is the user's business.
	theirs := halfMade("mine", filepath.Join(t.TempDir(), "mine"))
	require.NoError(t, m.Sweep(ctx, nil))
	require.DirExists(t, theirs)
}

// TestPrepareOverBrokenRegistration: a retry's Prepare replaces a
// registration git itself no longer accepts (`git worktree remove` says
// "is not a working tree"): its checkout is gone or broken, its
// administrative files are incomplete.
func TestPrepareOverBrokenRegistration(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	for name, breakIt := range map[string]func(t *testing.T, admin, checkout string){
		"no HEAD, checkout gone": func(t *testing.T, admin, checkout string) {
			require.NoError(t, os.Remove(filepath.Join(admin, "HEAD")))
			require.NoError(t, removeAll(checkout))
		},
		"no HEAD, checkout left": func(t *testing.T, admin, _ string) {
			require.NoError(t, os.WriteFile(filepath.Join(admin, "HEAD"), nil, 0o644))
		},
		"checkout .git gone": func(t *testing.T, _, checkout string) {
			require.NoError(t, os.Remove(filepath.Join(checkout, ".git")))
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := newRepo(t)
			m := newManager(t)
			local := relaytype.Repo{Type: "local", Path: r.dir}
			w, err := m.Prepare(ctx, "job_broken", local, r.base)
			require.NoError(t, err)
			admin := filepath.Join(r.dir, ".git", "worktrees", filepath.Base(w.Dir))
			require.DirExists(t, admin)
			require.NoError(t, os.WriteFile(filepath.Join(admin, "locked"), []byte("initializing"), 0o644))
			breakIt(t, admin, w.Dir)

			w2, err := m.Prepare(ctx, "job_broken", local, r.base)
			require.NoError(t, err)
			require.Equal(t, r.base, testGit(t, w2.Dir, nil, "rev-parse", "HEAD"))
			require.NoError(t, w2.Remove(ctx))
			list := worktreePaths(t, r.dir)
			require.NotContains(t, list, "locked")
			require.NotContains(t, list, "job_broken")
		})
	}
}
