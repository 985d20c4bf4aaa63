package workspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// gitWaitDelay bounds how long a finished or killed git may hold its output
// pipes open through helpers it started (ssh, credential helpers).
const gitWaitDelay = 5 * time.Second

// droppedGitEnv reports whether variable k is left out of git's
// environment: those that point git at a repository, index or object store
// (the relay may itself run under git, in a hook or an alias, and inheriting
// them would make every command act on the wrong repository), and those
// gitEnv sets itself.
func droppedGitEnv(k string) bool {
	switch k {
	case "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
		"GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE",
		"GIT_PREFIX", "GIT_QUARANTINE_PATH", "GIT_TERMINAL_PROMPT", "LC_ALL":
		return true
	}
	return false
}

// gitEnv returns the environment git runs with: the process environment
// without repository-locating variables, never prompting for credentials,
// with untranslated messages, plus extra.
func gitEnv(extra ...string) []string {
	base := os.Environ()
	env := make([]string, 0, len(base)+len(extra)+2)
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if droppedGitEnv(k) {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "GIT_TERMINAL_PROMPT=0", "LC_ALL=C")
	return append(env, extra...)
}

// gitError is a git invocation that failed, with git's own message.
type gitError struct {
	sub    string
	stderr string
	err    error
}

func (e *gitError) Error() string {
	msg := strings.Join(strings.Fields(strings.ReplaceAll(e.stderr, "\n", "; ")), " ")
	if msg == "" {
		msg = e.err.Error()
	}
	return "git " + e.sub + ": " + msg
}

func (e *gitError) Unwrap() error { return e.err }

// exitedNonZero reports whether err is git running and exiting unsuccessfully,
// as opposed to git not starting or being killed.
func exitedNonZero(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && ee.Exited()
}

// gitRun describes one git invocation.
type gitRun struct {
	git   string   // binary
	dir   string   // passed as -C when not empty
	env   []string // extra environment
	stdin []byte   // standard input when not nil
}

// run runs git with args and returns its standard output.
func (g gitRun) run(ctx context.Context, args ...string) ([]byte, error) {
	full := make([]string, 0, len(args)+2)
	if g.dir != "" {
		full = append(full, "-C", g.dir)
	}
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, g.git, full...)
	cmd.Env = gitEnv(g.env...)
	cmd.WaitDelay = gitWaitDelay
	waited := killGroupOnCancel(cmd)
	if g.stdin != nil {
		cmd.Stdin = bytes.NewReader(g.stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	waited()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%w)", ctxErr, err)
		}
		return nil, &gitError{sub: subcommand(args), stderr: stderr.String(), err: err}
	}
	return stdout.Bytes(), nil
}

// subcommand names the git subcommand of args for error messages.
func subcommand(args []string) string {
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-c" || a == "-C":
			i++
		case strings.HasPrefix(a, "-"):
		default:
			if a == "worktree" && i+1 < len(args) {
				return a + " " + args[i+1]
			}
			return a
		}
	}
	return strings.Join(args, " ")
}
