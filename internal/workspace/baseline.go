package workspace

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// ResolveBaseline returns the full commit id a job on repo starts from.
//
// A BaselineCommit already in repo is only checked for shape. Otherwise a
// local repository resolves BaseBranch (any revision git understands, HEAD
// when empty) with rev-parse, and a git URL resolves refs/heads/BaseBranch
// (or a tag of that name, or HEAD when empty) with ls-remote, without
// cloning. git is the git binary; empty means DefaultGit.
func ResolveBaseline(ctx context.Context, git string, repo relaytype.Repo) (string, error) {
	if git == "" {
		git = DefaultGit
	}
	if repo.BaselineCommit != "" {
		if !relaytype.ValidCommit(repo.BaselineCommit) {
			return "", fmt.Errorf("resolve baseline: repo.baselineCommit %q is not a full 40-character hex commit id", repo.BaselineCommit)
		}
		return strings.ToLower(repo.BaselineCommit), nil
	}
	if strings.HasPrefix(repo.BaseBranch, "-") {
		return "", fmt.Errorf("resolve baseline: repo.baseBranch %q must not start with '-'", repo.BaseBranch)
	}
	var (
		sha string
		err error
	)
	switch repo.Type {
	case "local":
		sha, err = resolveLocal(ctx, git, repo.Path, repo.BaseBranch)
	case "git":
		sha, err = resolveRemote(ctx, git, repo.URL, repo.BaseBranch)
	default:
		err = fmt.Errorf("repo.type must be local or git, not %q", repo.Type)
	}
	if err != nil {
		return "", fmt.Errorf("resolve baseline: %w", err)
	}
	return sha, nil
}

// checkLocalRepo returns the absolute form of path after checking that it
// is a directory inside a git repository.
func checkLocalRepo(ctx context.Context, git, path string) (string, error) {
	abs, err := localDir(path)
	if err != nil {
		return "", err
	}
	if _, err := (gitRun{git: git, dir: abs}).run(ctx, "rev-parse", "--git-dir"); err != nil {
		if ctx.Err() != nil {
			return "", err
		}
		return "", fmt.Errorf("repo.path %s is not a git repository: %w", path, err)
	}
	return abs, nil
}

// localDir returns the absolute form of path after checking that it is a
// directory; whether it is in a git repository is left to the git command
// that uses it (see notRepo).
func localDir(path string) (string, error) {
	if strings.TrimSpace(path) == "" {
		return "", fmt.Errorf("repo.path is required for a local repository")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("repo.path %s: %w", path, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("repo.path %s: %w", path, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("repo.path %s is not a directory", path)
	}
	return abs, nil
}

// notRepo explains a git command on the directory path that failed with
// err: the error checkLocalRepo gives when path is not in a git
// repository, else nil. Only a failed command pays for the check: one git
// process fewer on every successful one.
func notRepo(ctx context.Context, git, path string, err error) error {
	if err == nil || ctx.Err() != nil {
		return nil
	}
	_, cerr := checkLocalRepo(ctx, git, path)
	return cerr
}

func resolveLocal(ctx context.Context, git, path, branch string) (string, error) {
	abs, err := localDir(path)
	if err != nil {
		return "", err
	}
	rev := branch
	if rev == "" {
		rev = "HEAD"
	}
	out, err := (gitRun{git: git, dir: abs}).run(ctx, "rev-parse", "--verify", "--quiet", "--end-of-options", rev+"^{commit}")
	if err != nil {
		if nerr := notRepo(ctx, git, path, err); nerr != nil {
			return "", nerr
		}
		switch {
		case ctx.Err() != nil:
			return "", err
		case branch == "":
			return "", fmt.Errorf("HEAD of %s is not a commit (empty repository?)", path)
		case relaytype.ValidCommit(branch):
			return "", fmt.Errorf("commit %s not found in %s", branch, path)
		default:
			return "", fmt.Errorf("branch %q not found in %s", branch, path)
		}
	}
	sha := strings.TrimSpace(string(out))
	if !relaytype.ValidCommit(sha) {
		return "", fmt.Errorf("rev-parse %s in %s gave %q, not a 40-hex commit id", rev, path, sha)
	}
	return sha, nil
}

func resolveRemote(ctx context.Context, git, url, branch string) (string, error) {
	if strings.TrimSpace(url) == "" {
		return "", fmt.Errorf("repo.url is required for a git repository")
	}
	if strings.HasPrefix(url, "-") {
		return "", fmt.Errorf("repo.url %q must not start with '-'", url)
	}
	// Candidates in order of preference: the branch, else a tag (its peeled
	// commit before the tag object).
	var want []string
	switch {
	case branch == "":
		want = []string{"HEAD"}
	case strings.HasPrefix(branch, "refs/"):
		want = []string{branch + "^{}", branch}
	default:
		want = []string{"refs/heads/" + branch, "refs/tags/" + branch + "^{}", "refs/tags/" + branch}
	}
	args := append([]string{"ls-remote", "--", url}, want...)
	out, err := (gitRun{git: git}).run(ctx, args...)
	if err != nil {
		return "", fmt.Errorf("list refs of %s: %w", url, err)
	}
	found := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		sha, ref, ok := strings.Cut(sc.Text(), "\t")
		if ok {
			found[ref] = sha
		}
	}
	for _, ref := range want {
		sha, ok := found[ref]
		if !ok {
			continue
		}
		if !relaytype.ValidCommit(sha) {
			return "", fmt.Errorf("%s of %s is %q, not a 40-hex commit id", ref, url, sha)
		}
		return strings.ToLower(sha), nil
	}
	if branch == "" {
		return "", fmt.Errorf("remote %s has no HEAD (empty repository?)", url)
	}
	return "", fmt.Errorf("branch %q not found in %s", branch, url)
}
