// Package workspace owns the per-job git workspaces: a checkout of the
// job's repository at its baseline commit (a linked worktree of a local
// repository, or a fresh clone of a URL), the diff of what the executor did
// there, the check that this diff applies to the baseline, and cleanup,
// including of workspaces a crash left behind.
//
// Every job gets Root/<jobID>/: the checkout is Root/<jobID>/repo and the
// directory around it is the job's MetaDir, where the relay keeps files the
// executor reads (its prompt) without them showing up in the diff. Nothing
// here ever changes the user's own checkout, index or branches; a local
// repository only gains a worktree registration while a job runs, and the
// objects of what its jobs staged or committed.
package workspace

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// DefaultGit is the git binary used when Config.Git is empty.
const DefaultGit = "git"

// checkoutName is the name of the checkout inside a job's directory.
const checkoutName = "repo"

// Worktree creation retries: concurrent `git worktree add` on one
// repository can trip over each other's half-registered worktrees and lock
// files.
const (
	worktreeAttempts = 8
	worktreeBackoff  = 25 * time.Millisecond
)

// removeTimeout bounds cleanup, which runs even when the caller's context
// is already canceled.
const removeTimeout = 2 * time.Minute

// addTimeout bounds a `git worktree add`, which once started runs to its
// end even when the caller's context is canceled (see addOnce).
const addTimeout = 2 * time.Minute

// Config configures a Manager.
type Config struct {
	// Root is the directory holding one subdirectory per job. Required;
	// created if missing.
	Root string
	// Keep leaves workspaces on disk after Remove and Sweep, for debugging.
	// Defaults to false.
	Keep bool
	// Git is the git binary. Defaults to DefaultGit.
	Git string
	// Trace, when set, is called at the end of each operation on a job's
	// workspace (one of the Op constants) with the job's id and when the
	// operation started and ended, whether it succeeded or not; it must
	// be safe for concurrent use. Benchmarks use it to account for where
	// a job's time goes. Defaults to none.
	Trace func(op Op, jobID string, start, end time.Time)
}

// Op names a workspace operation for Config.Trace.
type Op string

// The operations Config.Trace reports.
const (
	// OpPrepare is Manager.Prepare: the checkout is created.
	OpPrepare Op = "prepare"
	// OpDiff is Workspace.Diff or DiffFrom: the patch is computed.
	OpDiff Op = "diff"
	// OpCheckApplies is Workspace.CheckApplies.
	OpCheckApplies Op = "check-applies"
	// OpRemove is Workspace.Remove.
	OpRemove Op = "remove"
)

// Manager creates and removes the workspaces under one root directory.
// It is safe for concurrent use.
type Manager struct {
	root     string
	rootReal string // root with symbolic links resolved, as git records worktree paths
	keep     bool
	git      string
	environ  []string // the environment git starts from; nil: the relay's
	trace    func(op Op, jobID string, start, end time.Time)

	mu sync.Mutex
	// repoLocks holds one lock per source repository (by git common
	// directory). Creating worktrees takes it shared; removing and pruning
	// them takes it exclusively, because `git worktree prune` deletes the
	// registration of a worktree another `worktree add` is still writing.
	repoLocks map[string]*sync.RWMutex
}

// New returns a Manager for cfg, creating cfg.Root if needed.
func New(cfg Config) (*Manager, error) {
	if strings.TrimSpace(cfg.Root) == "" {
		return nil, errors.New("workspace: root is required")
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("workspace: root: %w", err)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("workspace: create root: %w", err)
	}
	git := cfg.Git
	if git == "" {
		git = DefaultGit
	}
	return &Manager{root: root, rootReal: canonical(root), keep: cfg.Keep, git: git, trace: cfg.Trace,
		repoLocks: map[string]*sync.RWMutex{}}, nil
}

// traced returns the function that reports the end of operation op of job
// jobID, begun now, to Config.Trace (nothing when there is none).
func (m *Manager) traced(op Op, jobID string) func() {
	if m.trace == nil {
		return func() {}
	}
	start := time.Now()
	return func() { m.trace(op, jobID, start, time.Now()) }
}

// CheckoutPath returns where the checkout of job jobID is (or was, or
// will be): Root/<jobID>/repo.
func (m *Manager) CheckoutPath(jobID string) string {
	return filepath.Join(m.root, jobID, checkoutName)
}

// Workspace is one job's checkout at its baseline commit.
type Workspace struct {
	// JobID is the job the workspace belongs to.
	JobID string
	// Dir is the checkout, Root/<jobID>/repo: the executor's working
	// directory.
	Dir string
	// MetaDir is Root/<jobID>, the directory around the checkout, for files
	// the relay writes for the executor (prompt.md) that must stay out of
	// the diff.
	MetaDir string
	// Baseline is the full commit id the checkout started from.
	Baseline string
	// Exclude lists paths (relative to Dir) that Diff and Snapshot leave
	// at their baseline state: files copied in to bootstrap the workspace.
	Exclude []string

	m         *Manager
	repoPath  string // absolute path of the source repository, for type local
	commonDir string // its git common directory, for type local
	// gitDir is the checkout's git directory, recorded at Prepare before
	// any executor ran: the worktree's administrative directory in the
	// source repository, or a clone's git directory in MetaDir. Every git
	// command on the checkout names it (and the checkout as work tree)
	// explicitly: the .git file in the checkout is the executor's to
	// rewrite, and is never read again.
	gitDir string
	// excludesFile is the core.excludesFile of the user's configuration,
	// which confined git does not read.
	excludesFile string
}

// Prepare creates the workspace of job jobID: a checkout of repo at the
// commit baseline (see ResolveBaseline), detached from any branch. A
// directory left for the same job by an earlier attempt is removed first,
// with its registration in the source repository, even one a killed
// `git worktree add` left locked.
//
// A `git worktree add` that has started runs to its end even if ctx is
// canceled (cut short, it would leave a locked registration in the user's
// repository); Prepare then removes what it made and returns an error
// wrapping ctx's. Whatever fails, Prepare leaves nothing behind.
func (m *Manager) Prepare(ctx context.Context, jobID string, repo relaytype.Repo, baseline string) (*Workspace, error) {
	if !relaytype.ValidJobID(jobID) {
		return nil, fmt.Errorf("prepare workspace: invalid job id %q", jobID)
	}
	if !relaytype.ValidCommit(baseline) {
		return nil, fmt.Errorf("prepare workspace %s: baseline %q is not a full 40-character hex commit id", jobID, baseline)
	}
	defer m.traced(OpPrepare, jobID)()
	w := &Workspace{
		JobID:    jobID,
		MetaDir:  filepath.Join(m.root, jobID),
		Dir:      filepath.Join(m.root, jobID, checkoutName),
		Baseline: strings.ToLower(baseline),
		m:        m,
	}
	if err := w.prepare(ctx, repo); err != nil {
		// Leave nothing half-made behind, whatever the state of ctx.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), removeTimeout)
		defer cancel()
		_ = m.removeJobDir(cctx, w.MetaDir, w.commonDir)
		return nil, fmt.Errorf("prepare workspace %s: %w", jobID, err)
	}
	return w, nil
}

func (w *Workspace) prepare(ctx context.Context, repo relaytype.Repo) error {
	switch repo.Type {
	case "local":
		abs, err := localDir(repo.Path)
		if err != nil {
			return err
		}
		common, err := commonDirOf(ctx, w.m.git, abs)
		if err != nil {
			if nerr := notRepo(ctx, w.m.git, repo.Path, err); nerr != nil {
				return nerr
			}
			return err
		}
		w.repoPath, w.commonDir = abs, common
	case "git":
		if strings.TrimSpace(repo.URL) == "" {
			return errors.New("repo.url is required for a git repository")
		}
		if strings.HasPrefix(repo.URL, "-") {
			return fmt.Errorf("repo.url %q must not start with '-'", repo.URL)
		}
	default:
		return fmt.Errorf("repo.type must be local or git, not %q", repo.Type)
	}
	if _, err := os.Lstat(w.MetaDir); err == nil {
		if err := w.removeLeftover(ctx); err != nil {
			return fmt.Errorf("remove leftover workspace: %w", err)
		}
	}
	if err := os.MkdirAll(w.MetaDir, 0o700); err != nil {
		return fmt.Errorf("create job directory: %w", err)
	}
	if repo.Type == "local" {
		if err := w.m.writeSourceRecord(w.MetaDir, w.commonDir); err != nil {
			return fmt.Errorf("record source repository: %w", err)
		}
		if err := w.addWorktree(ctx); err != nil {
			return err
		}
		admin, err := adminDirOf(w.Dir, w.commonDir)
		if err != nil {
			return err
		}
		w.gitDir = admin
	} else {
		// A clone is left cancelable: it writes nothing outside Root, and
		// a relay shutting down should not wait for a large fetch.
		if err := w.clone(ctx, repo.URL); err != nil {
			return err
		}
		w.gitDir = filepath.Join(w.MetaDir, cloneGitDir)
	}
	excludes, err := excludesFileOf(ctx, gitRun{git: w.m.git, dir: w.Dir, environ: w.m.environ})
	if err != nil {
		return fmt.Errorf("read core.excludesFile: %w", err)
	}
	w.excludesFile = excludes
	return nil
}

// leftoverAttempts and leftoverBackoff bound the removal of a workspace an
// earlier attempt left: a git of a killed relay (the checkout `git
// worktree add` runs in a child of its own, which the relay's death does
// not stop) may still be writing there for a moment.
const (
	leftoverAttempts = 8
	leftoverBackoff  = 250 * time.Millisecond
)

// removeLeftover removes the job directory an earlier attempt left,
// trying again while a dead relay's git may still be at work in it.
func (w *Workspace) removeLeftover(ctx context.Context) error {
	var err error
	for attempt := 1; attempt <= leftoverAttempts; attempt++ {
		if err = w.m.removeJobDir(ctx, w.MetaDir, w.commonDir); err == nil {
			return nil
		}
		t := time.NewTimer(time.Duration(attempt) * leftoverBackoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (after %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
	return err
}

// addWorktree creates Dir as a detached linked worktree of the local
// repository. It only adds an entry under the repository's
// .git/worktrees; the user's checkout, index and refs are untouched.
func (w *Workspace) addWorktree(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		err := w.addOnce(ctx)
		if ctxErr := ctx.Err(); ctxErr != nil {
			if err != nil {
				return fmt.Errorf("%w (worktree add: %w)", ctxErr, err)
			}
			return fmt.Errorf("interrupted during worktree add: %w", ctxErr)
		}
		if err == nil {
			return nil
		}
		if attempt == worktreeAttempts {
			return err
		}
		switch {
		case isStaleRegistration(err):
			// An interrupted earlier attempt registered this path: a
			// killed add leaves it locked "initializing", which nothing
			// else ever clears. Clear it and add again.
			if n, cerr := w.m.clearJobRegistrations(ctx, w.commonDir, w.JobID); cerr != nil || n == 0 {
				return errors.Join(err, cerr)
			}
			continue
		case isContention(err):
			// git removes what a failed add created; make sure of it.
			_ = removeAll(w.Dir)
		default:
			return err
		}
		backoff := time.Duration(attempt)*worktreeBackoff + rand.N(worktreeBackoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (after %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// addOnce runs `git worktree add` for Dir once. Once started, the add runs
// to its end whatever happens to ctx: killed part-way it would leave its
// registration locked "initializing", which `git worktree prune` never
// removes and which stops the path from being added again. addTimeout
// still bounds a git that hangs.
func (w *Workspace) addOnce(ctx context.Context) error {
	l := w.m.repoLock(w.commonDir)
	l.RLock()
	defer l.RUnlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), addTimeout)
	defer cancel()
	_, err := (gitRun{git: w.m.git, dir: w.repoPath, environ: w.m.environ}).run(actx, "worktree", "add", "--detach", "--quiet", w.Dir, w.Baseline)
	return err
}

// clearJobRegistrations removes the registrations of job id in the
// repository with git common directory commonDir, and returns how many
// there were.
func (m *Manager) clearJobRegistrations(ctx context.Context, commonDir, id string) (int, error) {
	l := m.repoLock(commonDir)
	l.Lock()
	defer l.Unlock()
	return m.unregisterJob(ctx, commonDir, id)
}

// isStaleRegistration reports whether a failed `git worktree add` was
// refused because the path is still registered ("is a missing but locked
// worktree", "is a missing but already registered worktree").
func isStaleRegistration(err error) bool {
	msg := err.Error()
	for _, s := range []string{"missing but locked", "missing but already registered", "already registered", "is locked"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// isContention reports whether a failed `git worktree add` looks like it
// lost a race with another one: for a lock file, or reading a worktree that
// was still being registered.
func isContention(err error) bool {
	msg := err.Error()
	for _, s := range []string{".lock", "could not lock", "Unable to create", "File exists", "failed to read"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// clone creates Dir as a clone of url with the baseline checked out. A
// baseline no branch or tag reaches is fetched by id. The clone's git
// directory is MetaDir/clone.git, outside the checkout.
func (w *Workspace) clone(ctx context.Context, url string) error {
	if _, err := (gitRun{git: w.m.git, environ: w.m.environ}).run(ctx,
		"clone", "--no-checkout", "--quiet", "--separate-git-dir="+filepath.Join(w.MetaDir, cloneGitDir),
		"--", url, w.Dir); err != nil {
		return err
	}
	g := gitRun{git: w.m.git, dir: w.Dir, environ: w.m.environ}
	if _, err := g.run(ctx, "cat-file", "-e", w.Baseline+"^{commit}"); err != nil {
		if _, ferr := g.run(ctx, "fetch", "--quiet", "--no-tags", "--", url, w.Baseline); ferr != nil {
			return fmt.Errorf("baseline %s not found in %s: %w", w.Baseline, url, ferr)
		}
	}
	_, err := g.run(ctx, "checkout", "--quiet", "--detach", w.Baseline, "--")
	return err
}

// Remove deletes the workspace: the checkout, its registration as a
// worktree of the source repository, and MetaDir. It does nothing when the
// Manager keeps workspaces. It is safe to call twice, and it runs to the
// end even if ctx is canceled.
func (w *Workspace) Remove(ctx context.Context) error {
	if w.m.keep {
		return nil
	}
	defer w.m.traced(OpRemove, w.JobID)()
	if done, err := w.removeOwn(); done {
		if err != nil {
			return fmt.Errorf("remove workspace %s: %w", w.JobID, err)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), removeTimeout)
	defer cancel()
	if err := w.m.removeJobDir(ctx, w.MetaDir, w.commonDir); err != nil {
		return fmt.Errorf("remove workspace %s: %w", w.JobID, err)
	}
	return nil
}

// removeOwn removes the worktree of a local repository without running
// git, when nothing but the registration Prepare made ties the job
// directory to a repository: the checkout's .git file and the source
// record still name the recorded repository, the administrative directory
// recorded at Prepare still points back at the checkout and is not
// locked, and no other registration of the repository lies in the job
// directory. It then does what `git worktree remove --force` does, under
// the repository's lock: it deletes the checkout (with the whole job
// directory), then the administrative directory, then the repository's
// worktrees directory if that left it empty. It reports false when the
// workspace is not in that state, or when deleting the job directory
// failed part-way; Remove then goes through git (removeJobDir), which
// copes with every other state.
func (w *Workspace) removeOwn() (bool, error) {
	if w.commonDir == "" || w.gitDir == "" {
		return false, nil
	}
	repos := jobRepos(w.MetaDir, w.commonDir)
	if len(repos) != 1 || repos[0] != canonical(w.commonDir) {
		return false, nil
	}
	unlock := w.m.lockRepos(repos)
	defer unlock()
	back, err := os.ReadFile(filepath.Join(w.gitDir, "gitdir"))
	if err != nil || canonical(filepath.Dir(strings.TrimSpace(string(back)))) != canonical(w.Dir) ||
		pathExists(filepath.Join(w.gitDir, "locked")) {
		return false, nil
	}
	worktrees := filepath.Dir(w.gitDir)
	admins, err := os.ReadDir(worktrees)
	if err != nil {
		return false, nil
	}
	for _, e := range admins {
		admin := filepath.Join(worktrees, e.Name())
		if canonical(admin) == w.gitDir {
			continue
		}
		b, err := os.ReadFile(filepath.Join(admin, "gitdir"))
		if err == nil && w.m.ownJob(filepath.Dir(strings.TrimSpace(string(b)))) == w.JobID {
			return false, nil // the executor registered more worktrees here
		}
	}
	if err := removeAll(w.MetaDir); err != nil {
		return false, nil
	}
	if err := os.RemoveAll(w.gitDir); err != nil {
		return true, fmt.Errorf("remove worktree registration %s: %w", w.gitDir, err)
	}
	_ = os.Remove(worktrees) // only when empty, as git does
	return true, nil
}

// Sweep removes the workspaces under Root that a crash left behind: every
// job directory for which keep returns false (a nil keep keeps none), with
// its registration as a worktree of its source repository, unlocking one a
// killed `git worktree add` left locked. The directories of kept jobs are
// left alone; Prepare replaces them when the job runs again. In every
// repository recorded in a job directory it then removes the registrations
// of job directories that are gone (see Recover). Entries whose names are
// not job ids, and worktrees outside Root's job directories, are never
// touched. Sweep does nothing when the Manager keeps workspaces.
func (m *Manager) Sweep(ctx context.Context, keep func(jobID string) bool) error {
	if m.keep {
		return nil
	}
	entries, err := os.ReadDir(m.root)
	if err != nil {
		return fmt.Errorf("sweep workspaces: %w", err)
	}
	var (
		errs  []error
		repos []string
	)
	for _, e := range entries {
		id := e.Name()
		if !e.IsDir() || !relaytype.ValidJobID(id) {
			continue
		}
		jobDir := filepath.Join(m.root, id)
		repos = append(repos, jobRepos(jobDir, "")...)
		if keep != nil && keep(id) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("sweep workspaces: %w", err)
		}
		if err := m.removeJobDir(ctx, jobDir, ""); err != nil {
			errs = append(errs, fmt.Errorf("sweep workspace %s: %w", id, err))
		}
	}
	if err := m.recoverRepos(ctx, repos); err != nil {
		errs = append(errs, fmt.Errorf("sweep workspaces: %w", err))
	}
	return errors.Join(errs...)
}

// removeJobDir deletes a job directory. Its registrations as worktrees of
// a source repository, locked or not, are removed with git, so none is
// left behind. The repository is found through the checkout's .git file,
// the job's source record, and commonDir when not empty.
func (m *Manager) removeJobDir(ctx context.Context, jobDir, commonDir string) error {
	repos := jobRepos(jobDir, commonDir)
	if len(repos) == 0 {
		return removeAll(jobDir)
	}
	unlock := m.lockRepos(repos)
	defer unlock()
	id := filepath.Base(jobDir)
	var errs []error
	for _, c := range repos {
		if _, err := m.unregisterJob(ctx, c, id); err != nil {
			errs = append(errs, err)
		}
	}
	if err := removeAll(jobDir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// repoLock returns the lock of the repository with git common directory
// commonDir.
func (m *Manager) repoLock(commonDir string) *sync.RWMutex {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.repoLocks[commonDir]
	if !ok {
		l = new(sync.RWMutex)
		m.repoLocks[commonDir] = l
	}
	return l
}

// canonical returns path with symbolic links resolved, so that one
// repository always maps to one lock.
func canonical(path string) string {
	if p, err := filepath.EvalSymlinks(path); err == nil {
		return p
	}
	return filepath.Clean(path)
}

// worktreeCommonDir returns the git directory of the repository that the
// linked worktree dir belongs to, or "" if dir is not a linked worktree.
func worktreeCommonDir(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, ".git"))
	if err != nil {
		return "" // missing, or a directory: a clone
	}
	admin, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir:")
	if !ok {
		return ""
	}
	admin = strings.TrimSpace(admin)
	if !filepath.IsAbs(admin) {
		admin = filepath.Join(dir, admin)
	}
	if c, err := os.ReadFile(filepath.Join(admin, "commondir")); err == nil {
		common := strings.TrimSpace(string(c))
		if !filepath.IsAbs(common) {
			common = filepath.Join(admin, common)
		}
		return canonical(common)
	}
	if parent := filepath.Dir(admin); filepath.Base(parent) == "worktrees" {
		return canonical(filepath.Dir(parent))
	}
	return ""
}

// removeAll is os.RemoveAll that also copes with read-only directories,
// which tools such as the Go module cache leave behind, and with a
// process of a dead relay (git finishing a checkout) still adding files
// for a moment.
func removeAll(path string) error {
	err := os.RemoveAll(path)
	for attempt := 0; err != nil && attempt < 20; attempt++ {
		_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o700)
			}
			return nil
		})
		if err = os.RemoveAll(path); err == nil || !errors.Is(err, syscall.ENOTEMPTY) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

func dirExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
