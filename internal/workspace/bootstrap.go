package workspace

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// SourceDir returns the source repository of a local workspace, or "" for
// a clone.
func (w *Workspace) SourceDir() string { return w.repoPath }

// CopyFiles copies the regular files of the source repository matching
// globs (filepath.Match patterns relative to the repository root, such as
// ".env" or "config/*.local.yaml") into the workspace at the same relative
// paths, and adds them to Exclude so that they stay out of the patch. It
// returns the copied paths. Only local workspaces have a source to copy
// from.
//
// Symbolic links lead nowhere outside either tree: a match that is a link,
// or that a linked directory leads out of the source repository, is not
// copied (as anything else that is not a regular file), and a destination
// that a link in the checkout (committed to the repository) would lead out
// of the workspace is an error, never written.
func (w *Workspace) CopyFiles(globs []string) ([]string, error) {
	if len(globs) == 0 {
		return nil, nil
	}
	if w.repoPath == "" {
		return nil, fmt.Errorf("workspace.copyFiles: only local repositories have files to copy")
	}
	srcRoot, err := os.OpenRoot(w.repoPath)
	if err != nil {
		return nil, fmt.Errorf("workspace.copyFiles: %w", err)
	}
	defer srcRoot.Close()
	dstRoot, err := os.OpenRoot(w.Dir)
	if err != nil {
		return nil, fmt.Errorf("workspace.copyFiles: %w", err)
	}
	defer dstRoot.Close()
	seen := map[string]bool{}
	var copied []string
	for _, g := range globs {
		if filepath.IsAbs(g) || strings.HasPrefix(filepath.Clean(g), "..") {
			return nil, fmt.Errorf("workspace.copyFiles: %q must be relative to the repository and stay inside it", g)
		}
		matches, err := filepath.Glob(filepath.Join(w.repoPath, g))
		if err != nil {
			return nil, fmt.Errorf("workspace.copyFiles: %q: %w", g, err)
		}
		sort.Strings(matches)
		for _, src := range matches {
			rel, err := filepath.Rel(w.repoPath, src)
			if err != nil || rel == ".git" || strings.HasPrefix(rel, ".git"+string(filepath.Separator)) || seen[rel] {
				continue
			}
			fi, err := os.Lstat(src)
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			in, err := srcRoot.Open(rel)
			if err != nil {
				continue // through a linked directory out of the repository
			}
			err = copyRegular(in, dstRoot, rel, fi.Mode().Perm())
			_ = in.Close()
			if errors.Is(err, errNotRegular) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("workspace.copyFiles: %s: %w", rel, err)
			}
			seen[rel] = true
			copied = append(copied, filepath.ToSlash(rel))
		}
	}
	w.Exclude = append(w.Exclude, copied...)
	return copied, nil
}

// errNotRegular is a copy source that turned out not to be a regular file.
var errNotRegular = errors.New("not a regular file")

// copyRegular copies the regular file in to rel inside dst, creating its
// directories; nothing is created or written outside dst.
func copyRegular(in *os.File, dst *os.Root, rel string, perm os.FileMode) error {
	if fi, err := in.Stat(); err != nil || !fi.Mode().IsRegular() {
		return errNotRegular
	}
	if err := dst.MkdirAll(filepath.Dir(rel), 0o755); err != nil {
		return err
	}
	out, err := dst.OpenFile(rel, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
