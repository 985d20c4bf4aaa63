package workspace

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// sourceRecord is the file in a job directory naming the git common
// directory of the repository its checkout is (to be) a linked worktree
// of. It is written and synced before `git worktree add` starts: after a
// crash, even one that came before git wrote the checkout's .git file, it
// is how a sweep finds the repository holding the job's registration.
const sourceRecord = ".source"

// registration is a linked worktree registered in a repository, as
// `git worktree list --porcelain` shows it.
type registration struct {
	path   string // as git stored it: absolute, symbolic links resolved
	locked bool
}

// Recover removes the registrations that this Manager's workspaces left in
// the repositories repos (paths of local repositories, as in Repo.Path, or
// of their git directories) and whose job directory under Root is gone,
// unlocking first those a killed `git worktree add` left locked
// "initializing" (which `git worktree prune` never removes). Registrations
// outside Root's job directories, the user's own worktrees, are never
// touched, nor are those of job directories that still exist: Sweep and
// Prepare deal with those. Repositories that no longer exist are skipped.
//
// Sweep already recovers the repositories it finds recorded in job
// directories; Recover is for repositories known otherwise (from the job
// store, say). It does nothing when the Manager keeps workspaces.
func (m *Manager) Recover(ctx context.Context, repos []string) error {
	if m.keep {
		return nil
	}
	var (
		commons []string
		errs    []error
	)
	for _, r := range repos {
		if _, err := os.Stat(r); err != nil {
			continue // a repository that is gone holds no registrations
		}
		c, err := commonDirOf(ctx, m.git, r)
		if err != nil {
			errs = append(errs, fmt.Errorf("recover worktrees of %s: %w", r, err))
			continue
		}
		commons = append(commons, c)
	}
	if err := m.recoverRepos(ctx, commons); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// recoverRepos removes, from each repository with git common directory in
// commons, the registrations in job directories under Root that are gone.
func (m *Manager) recoverRepos(ctx context.Context, commons []string) error {
	slices.Sort(commons)
	var errs []error
	for _, c := range slices.Compact(commons) {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("recover worktrees: %w", err)
		}
		if err := m.recoverRepo(ctx, c); err != nil {
			errs = append(errs, fmt.Errorf("recover worktrees of %s: %w", c, err))
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) recoverRepo(ctx context.Context, commonDir string) error {
	l := m.repoLock(commonDir)
	l.Lock()
	defer l.Unlock()
	regs, err := m.registrations(ctx, commonDir)
	if err != nil {
		if !dirExists(commonDir) {
			return nil
		}
		return err
	}
	var errs []error
	for _, r := range regs {
		id := m.ownJob(r.path)
		// Under the exclusive lock no add of this Manager is under way,
		// and one by any relay creates the job directory first: a
		// registration without its job directory is a leftover.
		if id == "" || pathExists(filepath.Join(m.root, id)) {
			continue
		}
		if err := m.unregister(ctx, commonDir, r); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// unregisterJob removes every registration in the repository with git
// common directory commonDir that lies in the job directory of job id, and
// returns how many there were. The caller holds the repository's lock
// exclusively.
func (m *Manager) unregisterJob(ctx context.Context, commonDir, id string) (int, error) {
	regs, err := m.registrations(ctx, commonDir)
	if err != nil {
		if !dirExists(commonDir) {
			return 0, nil // a repository that is gone has nothing to unregister
		}
		return 0, err
	}
	n := 0
	var errs []error
	for _, r := range regs {
		if m.ownJob(r.path) != id {
			continue
		}
		n++
		if err := m.unregister(ctx, commonDir, r); err != nil {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// unregister removes registration r, which lies in a job directory under
// Root, from the repository with git common directory commonDir: it
// unlocks it, then removes the worktree with git. A checkout git refuses to
// remove (one whose .git file a killed add never wrote fails validation) is
// deleted first; git then removes the registration of a missing worktree.
// Unlike `git worktree prune`, this touches no other registration. The
// caller holds the repository's lock exclusively.
func (m *Manager) unregister(ctx context.Context, commonDir string, r registration) error {
	// Confined: commonDir may have been found through a checkout's .git
	// file, which an executor can point at a git directory of its own.
	g := gitRun{git: m.git, environ: m.environ, conf: &confined{gitDir: commonDir}}
	if r.locked {
		if _, err := g.run(ctx, "worktree", "unlock", r.path); err != nil {
			return fmt.Errorf("unlock stale worktree %s: %w", r.path, err)
		}
	}
	if _, err := g.run(ctx, "worktree", "remove", "--force", r.path); err == nil {
		return nil
	}
	if err := removeAll(r.path); err != nil {
		return fmt.Errorf("remove stale worktree %s: %w", r.path, err)
	}
	if _, err := g.run(ctx, "worktree", "remove", "--force", r.path); err != nil {
		// git no longer recognises the entry (a killed add left it
		// inconsistent): delete its administrative directory, which is
		// ours since its checkout lies in one of Root's job directories.
		if m.dropAdmin(commonDir, r.path) {
			return nil
		}
		return fmt.Errorf("remove stale worktree %s: %w", r.path, err)
	}
	return nil
}

// dropAdmin deletes the administrative directory (commonDir/worktrees/NAME)
// of the registration whose checkout is path, and reports whether it found
// one.
func (m *Manager) dropAdmin(commonDir, path string) bool {
	commonDir = mainGitDir(commonDir)
	admins, err := os.ReadDir(filepath.Join(commonDir, "worktrees"))
	if err != nil {
		return false
	}
	for _, e := range admins {
		admin := filepath.Join(commonDir, "worktrees", e.Name())
		b, err := os.ReadFile(filepath.Join(admin, "gitdir"))
		if err != nil {
			continue
		}
		checkout := filepath.Dir(strings.TrimSpace(string(b)))
		if filepath.Clean(checkout) == filepath.Clean(path) && m.ownJob(checkout) != "" {
			return os.RemoveAll(admin) == nil
		}
	}
	return false
}

// registrations lists the linked worktrees registered in the repository
// with git common directory commonDir. Registrations git cannot read (an
// add killed before it wrote the gitdir file) are not listed; they do not
// stop a path from being added again.
func (m *Manager) registrations(ctx context.Context, commonDir string) ([]registration, error) {
	m.dropHalfMade(commonDir)
	out, err := (gitRun{git: m.git, environ: m.environ, conf: &confined{gitDir: commonDir}}).run(ctx, "worktree", "list", "--porcelain")
	if err != nil {
		return nil, err
	}
	var regs []registration
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "worktree "):
			regs = append(regs, registration{path: strings.TrimPrefix(line, "worktree ")})
		case len(regs) > 0 && (line == "locked" || strings.HasPrefix(line, "locked ")):
			regs[len(regs)-1].locked = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read worktree list: %w", err)
	}
	return regs, nil
}

// ownJob returns the id of the job directory under Root that path lies
// in, or "" if it lies in none: then it is none of this Manager's business.
func (m *Manager) ownJob(path string) string {
	for _, root := range []string{m.rootReal, m.root} {
		rel, ok := strings.CutPrefix(filepath.Clean(path), root+string(filepath.Separator))
		if !ok {
			continue
		}
		id, _, _ := strings.Cut(rel, string(filepath.Separator))
		if relaytype.ValidJobID(id) {
			return id
		}
	}
	return ""
}

// jobRepos returns the git common directories of the repositories that job
// directory jobDir may have a registration in: the one its checkout's .git
// file names, the one its source record names, and commonDir if not empty.
func jobRepos(jobDir, commonDir string) []string {
	var repos []string
	for _, c := range []string{
		worktreeCommonDir(filepath.Join(jobDir, checkoutName)),
		readSourceRecord(jobDir),
		commonDir,
	} {
		if c != "" {
			repos = append(repos, canonical(c))
		}
	}
	slices.Sort(repos)
	return slices.Compact(repos)
}

// lockRepos takes the locks of repos (sorted, without duplicates)
// exclusively, in order, and returns the function that releases them.
func (m *Manager) lockRepos(repos []string) (unlock func()) {
	locks := make([]func(), 0, len(repos))
	for _, c := range repos {
		l := m.repoLock(c)
		l.Lock()
		locks = append(locks, l.Unlock)
	}
	return func() {
		for _, u := range slices.Backward(locks) {
			u()
		}
	}
}

// writeSourceRecord records commonDir in jobDir, durably: the record must
// be there if anything git registers for the job is.
func (m *Manager) writeSourceRecord(jobDir, commonDir string) error {
	path := filepath.Join(jobDir, sourceRecord)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(commonDir + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	// The record, and the job directory holding it, must survive an
	// operating system crash too. Best effort: not every file system can
	// sync a directory.
	syncDir(jobDir)
	syncDir(m.root)
	return nil
}

// readSourceRecord returns the git common directory recorded in jobDir,
// or "" if there is no usable record.
func readSourceRecord(jobDir string) string {
	b, err := os.ReadFile(filepath.Join(jobDir, sourceRecord))
	if err != nil {
		return ""
	}
	c := strings.TrimSpace(string(b))
	if !filepath.IsAbs(c) {
		return ""
	}
	return c
}

// commonDirOf returns the git common directory of the repository holding
// path, absolute and with symbolic links resolved.
func commonDirOf(ctx context.Context, git, path string) (string, error) {
	out, err := (gitRun{git: git, dir: path}).run(ctx, "rev-parse", "--path-format=absolute", "--git-common-dir")
	if err != nil {
		return "", err
	}
	return canonical(strings.TrimSpace(string(out))), nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

func pathExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// dropHalfMade deletes the administrative directories (commonDir/worktrees/
// NAME) that a `git worktree add` of this Manager's left half-written when
// it was killed: its gitdir file names a checkout in one of Root's job
// directories, but its commondir or HEAD file is missing or empty (created,
// never written). git
// cannot read such an entry, and `git worktree list` (and so every
// worktree command) fails on the whole repository until it is gone.
// Entries of other checkouts are never touched. The caller holds the
// repository's lock exclusively.
func (m *Manager) dropHalfMade(commonDir string) {
	commonDir = mainGitDir(commonDir)
	admins, err := os.ReadDir(filepath.Join(commonDir, "worktrees"))
	if err != nil {
		return
	}
	for _, e := range admins {
		if !e.IsDir() {
			continue
		}
		admin := filepath.Join(commonDir, "worktrees", e.Name())
		b, err := os.ReadFile(filepath.Join(admin, "gitdir"))
		if err != nil {
			continue // not listed by git, and not known to be ours
		}
		checkout := filepath.Dir(strings.TrimSpace(string(b)))
		if m.ownJob(checkout) == "" {
			continue
		}
		if nonEmptyFile(filepath.Join(admin, "commondir")) && nonEmptyFile(filepath.Join(admin, "HEAD")) {
			continue
		}
		_ = os.RemoveAll(admin)
	}
}

// nonEmptyFile reports whether path is a file with content.
func nonEmptyFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Size() > 0
}

// mainGitDir returns the repository's main git directory for dir, which
// may be a linked worktree's administrative directory (it then names the
// main one in its commondir file).
func mainGitDir(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "commondir"))
	if err != nil {
		return dir
	}
	c := strings.TrimSpace(string(b))
	if c == "" {
		return dir
	}
	if !filepath.IsAbs(c) {
		c = filepath.Join(dir, c)
	}
	return filepath.Clean(c)
}
