package workspace

import (
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
func (w *Workspace) CopyFiles(globs []string) ([]string, error) {
	if len(globs) == 0 {
		return nil, nil
	}
	if w.repoPath == "" {
		return nil, fmt.Errorf("workspace.copyFiles: only local repositories have files to copy")
	}
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
			if err := copyRegular(src, filepath.Join(w.Dir, rel), fi.Mode().Perm()); err != nil {
				return nil, fmt.Errorf("workspace.copyFiles: %s: %w", rel, err)
			}
			seen[rel] = true
			copied = append(copied, filepath.ToSlash(rel))
		}
	}
	w.Exclude = append(w.Exclude, copied...)
	return copied, nil
}

func copyRegular(src, dst string, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
