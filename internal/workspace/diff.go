package workspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ErrConflict means a patch does not apply cleanly to the baseline. Errors
// wrapping it carry git's explanation.
var ErrConflict = errors.New("conflict")

// diffArgs pins every setting that changes what `git diff` prints, so the
// patch is the same whatever the user's git configuration says: plain
// a/ b/ prefixes, no color, no external drivers or textconv filters, full
// blob ids, binary hunks, one diff algorithm and context size, rename
// detection on (a moved file is a few lines, not two copies).
func diffArgs(baseline string) []string {
	return []string{
		"-c", "core.quotePath=false",
		"-c", "diff.noprefix=false",
		"-c", "diff.mnemonicPrefix=false",
		"-c", "diff.suppressBlankEmpty=false",
		"diff", "--cached", "--binary", "--full-index",
		"--no-color", "--no-ext-diff", "--no-textconv", "--no-relative",
		"--src-prefix=a/", "--dst-prefix=b/",
		"--diff-algorithm=myers", "--indent-heuristic", "-U3", "--inter-hunk-context=0",
		"-M", "-O/dev/null", "--submodule=short", "--ignore-submodules=none",
		baseline, "--",
	}
}

// Diff returns the changes in the workspace against its baseline as a
// binary-safe patch (`git diff --binary`): edits, deletions, new files that
// are not ignored, and commits the executor made. The result is
// deterministic and applies with `git apply`. Paths in Exclude (files the
// relay copied in to bootstrap the workspace) are left out.
//
// The workspace's own index and files are left as they are: the tree is
// staged into a temporary index file in MetaDir.
func (w *Workspace) Diff(ctx context.Context) ([]byte, error) {
	return w.DiffFrom(ctx, w.Baseline)
}

// DiffFrom is Diff against another tree or commit (a Snapshot), such as a
// follow-up's starting point.
func (w *Workspace) DiffFrom(ctx context.Context, base string) ([]byte, error) {
	defer w.m.traced(OpDiff, w.JobID)()
	var out []byte
	err := w.staged(ctx, func(g gitRun) error {
		var err error
		out, err = g.run(ctx, diffArgs(base)...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("diff workspace: %w", err)
	}
	return out, nil
}

// Snapshot records the workspace's current content (as Diff sees it) as a
// git tree and returns its id.
func (w *Workspace) Snapshot(ctx context.Context) (string, error) {
	var tree string
	err := w.staged(ctx, func(g gitRun) error {
		out, err := g.run(ctx, "write-tree")
		tree = strings.TrimSpace(string(out))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("snapshot workspace: %w", err)
	}
	return tree, nil
}

// staged stages the whole workspace (minus Exclude, which keeps its
// baseline state) into a temporary index and calls fn with a git bound to
// it. Every git runs confined (see Workspace.git): whatever the executor
// wrote in the checkout, its .git file included, runs no program.
func (w *Workspace) staged(ctx context.Context, fn func(g gitRun) error) error {
	g, err := w.git(ctx)
	if err != nil {
		return err
	}
	idx, cleanup, err := w.tempIndex()
	if err != nil {
		return err
	}
	defer cleanup()
	if err := w.seedIndex(ctx, g, idx); err != nil {
		return err
	}
	g.env = []string{"GIT_INDEX_FILE=" + idx}
	if _, err := g.run(ctx, "add", "--all"); err != nil {
		return err
	}
	if len(w.Exclude) > 0 {
		args := append([]string{"reset", "-q", w.Baseline, "--"}, w.Exclude...)
		if _, err := g.run(ctx, args...); err != nil {
			return err
		}
	}
	return fn(g)
}

// ApplyPatch applies patch to the workspace's files (a follow-up starts
// from its parent's result). An empty patch is a no-op.
func (w *Workspace) ApplyPatch(ctx context.Context, patch []byte) error {
	if len(bytes.TrimSpace(patch)) == 0 {
		return nil
	}
	g, err := w.git(ctx)
	if err != nil {
		return fmt.Errorf("apply patch: %w", err)
	}
	g.stdin = patch
	if _, err := g.run(ctx, "apply", "--binary", "--whitespace=nowarn", "-"); err != nil {
		if ctx.Err() == nil && exitedNonZero(err) {
			return fmt.Errorf("%w: %s", ErrConflict, err.Error())
		}
		return fmt.Errorf("apply patch: %w", err)
	}
	return nil
}

// seedIndex starts the temporary index at idx as a copy of the workspace's
// index (in its recorded git directory). Staging is then quick (unchanged
// files keep their cached stat data) and files that are tracked yet match
// an ignore rule stay tracked. Without an index to copy it starts from
// HEAD. g is the workspace's confined git.
func (w *Workspace) seedIndex(ctx context.Context, g gitRun, idx string) error {
	err := copyFile(filepath.Join(w.gitDir, "index"), idx)
	if err == nil {
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("copy index: %w", err)
	}
	g.env = []string{"GIT_INDEX_FILE=" + idx}
	_, err = g.run(ctx, "read-tree", "HEAD")
	return err
}

// CheckApplies reports whether patch applies cleanly to the baseline. It
// checks against a temporary index holding the baseline tree, so neither
// the workspace nor any checkout changes. An empty patch applies. A patch
// that does not apply gives an error wrapping ErrConflict with git's
// explanation.
func (w *Workspace) CheckApplies(ctx context.Context, patch []byte) error {
	if len(bytes.TrimSpace(patch)) == 0 {
		return nil
	}
	defer w.m.traced(OpCheckApplies, w.JobID)()
	g, err := w.git(ctx)
	if err != nil {
		return fmt.Errorf("check patch: %w", err)
	}
	idx, cleanup, err := w.tempIndex()
	if err != nil {
		return fmt.Errorf("check patch: %w", err)
	}
	defer cleanup()
	g.env = []string{"GIT_INDEX_FILE=" + idx}
	if _, err := g.run(ctx, "read-tree", w.Baseline); err != nil {
		return fmt.Errorf("check patch: %w", err)
	}
	g.stdin = patch
	_, err = g.run(ctx,
		"-c", "apply.ignoreWhitespace=no",
		"apply", "--check", "--cached", "--whitespace=nowarn", "-")
	if err == nil {
		return nil
	}
	if ctx.Err() == nil && exitedNonZero(err) {
		return fmt.Errorf("%w: %s", ErrConflict, err.Error())
	}
	return fmt.Errorf("check patch: %w", err)
}

// tempIndex returns an unused index file path in MetaDir and a function
// that removes it (and its lock file).
func (w *Workspace) tempIndex() (string, func(), error) {
	f, err := os.CreateTemp(w.MetaDir, ".index-*")
	if err != nil {
		return "", nil, fmt.Errorf("temporary index: %w", err)
	}
	name := f.Name()
	_ = f.Close()
	// git refuses an empty index file; only the unique name is wanted.
	if err := os.Remove(name); err != nil {
		return "", nil, fmt.Errorf("temporary index: %w", err)
	}
	return name, func() {
		_ = os.Remove(name)
		_ = os.Remove(name + ".lock")
	}, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}
