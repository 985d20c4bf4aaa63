package workspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrNotConfined means a workspace has no git directory the relay recorded
// itself, so its git commands cannot run confined; they are refused rather
// than run on a git directory the checkout names.
var ErrNotConfined = errors.New("workspace has no recorded git directory")

// ErrUnsafeConfig means a git directory's configuration defines something
// the relay cannot neutralise (a filter driver whose name no -c option can
// express); its git commands are refused rather than run with it.
var ErrUnsafeConfig = errors.New("git configuration the relay cannot neutralise")

// cloneGitDir is the name, in a job's MetaDir, of a clone's git directory:
// outside the checkout, where the executor cannot rewrite its
// configuration or hooks.
const cloneGitDir = "clone.git"

// git returns the confined git (see confined) for the workspace's
// checkout: the git directory recorded at Prepare, the checkout as work
// tree, the excludes file the user's configuration named at Prepare, and
// every filter driver the git directory's configuration defines
// neutralised, so that staging the executor's files runs no clean or
// process filter it selected through .gitattributes.
func (w *Workspace) git(ctx context.Context) (gitRun, error) {
	if w.gitDir == "" {
		return gitRun{}, ErrNotConfined
	}
	g := gitRun{git: w.m.git, dir: w.Dir, environ: w.m.environ,
		conf: &confined{gitDir: w.gitDir, workTree: w.Dir}}
	overrides, err := filterOverrides(ctx, g)
	if err != nil {
		return gitRun{}, err
	}
	if w.excludesFile != "" {
		overrides = append(overrides, [2]string{"core.excludesFile", w.excludesFile})
	}
	g.conf.config = overrides
	return g, nil
}

// filterOverrides lists the filter drivers that g's configuration defines
// (filter.NAME.clean, .smudge, .process) and returns the overrides that
// disable each of them: empty commands, not required.
func filterOverrides(ctx context.Context, g gitRun) ([][2]string, error) {
	out, err := g.run(ctx, "config", "--null", "--name-only", "--get-regexp", `^filter\.`)
	if err != nil {
		var ee *exec.ExitError
		if ctx.Err() == nil && errors.As(err, &ee) && ee.ExitCode() == 1 {
			return nil, nil // no filter configured
		}
		return nil, fmt.Errorf("list filter drivers: %w", err)
	}
	seen := map[string]bool{}
	var overrides [][2]string
	for _, key := range bytes.Split(out, []byte{0}) {
		rest, ok := strings.CutPrefix(string(key), "filter.")
		if !ok {
			continue
		}
		i := strings.LastIndexByte(rest, '.')
		if i <= 0 {
			continue
		}
		name := rest[:i]
		if seen[name] {
			continue
		}
		if strings.ContainsAny(name, "=\n") {
			return nil, fmt.Errorf("%w: filter driver %q", ErrUnsafeConfig, name)
		}
		seen[name] = true
		for _, k := range []string{"clean", "smudge", "process"} {
			overrides = append(overrides, [2]string{"filter." + name + "." + k, ""})
		}
		overrides = append(overrides, [2]string{"filter." + name + ".required", "false"})
	}
	return overrides, nil
}

// adminDirOf returns the administrative directory of the linked worktree
// checkout of the repository with git common directory commonDir, from
// the .git file `git worktree add` has just written, before any executor
// ran. It must lie in commonDir/worktrees and point back at checkout.
func adminDirOf(checkout, commonDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(checkout, ".git"))
	if err != nil {
		return "", fmt.Errorf("read the new worktree's .git file: %w", err)
	}
	admin, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir:")
	if !ok {
		return "", fmt.Errorf("the new worktree's .git file does not name its git directory")
	}
	admin = strings.TrimSpace(admin)
	if !filepath.IsAbs(admin) {
		admin = filepath.Join(checkout, admin)
	}
	admin = canonical(admin)
	if filepath.Dir(admin) != filepath.Join(canonical(commonDir), "worktrees") {
		return "", fmt.Errorf("the new worktree's git directory %s is not in %s", admin, filepath.Join(commonDir, "worktrees"))
	}
	back, err := os.ReadFile(filepath.Join(admin, "gitdir"))
	if err != nil {
		return "", fmt.Errorf("read the new worktree's registration: %w", err)
	}
	if canonical(filepath.Dir(strings.TrimSpace(string(back)))) != canonical(checkout) {
		return "", fmt.Errorf("the worktree registration %s belongs to %s, not %s", admin, strings.TrimSpace(string(back)), checkout)
	}
	return admin, nil
}

// excludesFileOf returns the core.excludesFile that the user's git
// configuration (global included) gives the fresh checkout dir, or "".
// Confined git reads no global configuration; the relay passes this one
// on so that the user's global ignores still keep files out of the patch.
func excludesFileOf(ctx context.Context, g gitRun) (string, error) {
	out, err := g.run(ctx, "config", "--path", "--get", "core.excludesFile")
	if err != nil {
		var ee *exec.ExitError
		if ctx.Err() == nil && errors.As(err, &ee) && ee.ExitCode() == 1 {
			return "", nil
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}
