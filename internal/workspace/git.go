package workspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
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

// gitEnv returns the environment git runs with on the user's own
// repositories and remotes (admission, `git worktree add`, clone): base
// (nil: the relay's environment) without credentials (the user's hooks
// and credential helpers see no API key and no relay token), without
// repository-locating variables, never prompting for credentials, with
// untranslated messages, plus extra. The user's git configuration applies.
func gitEnv(base []string, extra ...string) []string {
	if base == nil {
		base = os.Environ()
	}
	base = executor.ScrubEnv(base, nil)
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

// confinedConfig is configuration that every confined git runs with, as
// -c options (above any file, and inherited by git's own children):
// nothing in a repository's configuration can make it run a program. No
// fsmonitor hook, no hooks at all (the hooks path is a file, so no hook
// can ever exist under it), no transport (so no ssh command, proxy,
// askpass or credential helper), no pager, no automatic gc or maintenance,
// no attributes from the user's global attributes file. External diff
// drivers and textconv are off by the diff's own flags (--no-ext-diff,
// --no-textconv); filter drivers, whose names come from the
// configuration, are neutralised one by one (filterOverrides).
var confinedConfig = [][2]string{
	{"core.fsmonitor", "false"},
	{"core.untrackedCache", "false"},
	{"core.hooksPath", os.DevNull},
	{"core.sshCommand", "false"},
	{"core.askPass", ""},
	{"credential.helper", ""},
	{"protocol.allow", "never"},
	{"core.pager", "cat"},
	{"core.attributesFile", os.DevNull},
	{"gc.auto", "0"},
	{"maintenance.auto", "false"},
	{"submodule.recurse", "false"},
}

// confined is how git runs on a checkout an executor has had its hands on,
// or on a repository the relay found through one: with the git directory
// and work tree the relay recorded itself (never one found through the
// checkout's .git, which the executor can rewrite), ignoring the system
// and global configuration, with no inherited GIT_* variable, no
// credential in its environment, and confinedConfig and config on top of
// whatever configuration the git directory has.
type confined struct {
	gitDir   string      // --git-dir
	workTree string      // --work-tree, when not empty
	config   [][2]string // more overrides: the neutralised filter drivers
}

// args returns the options that confine git: the overrides of
// confinedConfig and c.config, the git directory and the work tree.
func (c *confined) args() []string {
	args := make([]string, 0, 2*(len(confinedConfig)+len(c.config))+2)
	for _, kv := range append(slices.Clip(confinedConfig), c.config...) {
		args = append(args, "-c", kv[0]+"="+kv[1])
	}
	args = append(args, "--git-dir="+c.gitDir)
	if c.workTree != "" {
		args = append(args, "--work-tree="+c.workTree)
	}
	return args
}

// confinedGitEnv returns the environment of a confined git: base (nil: the
// relay's environment) without credentials and without any GIT_* variable
// (GIT_EXTERNAL_DIFF, GIT_SSH_COMMAND, GIT_CONFIG_PARAMETERS,
// GIT_CONFIG_COUNT, GIT_EXEC_PATH and all the others), with no system or
// global configuration, plus extra.
func confinedGitEnv(base []string, extra ...string) []string {
	if base == nil {
		base = os.Environ()
	}
	base = executor.ScrubEnv(base, nil)
	env := make([]string, 0, len(base)+len(extra)+8)
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(strings.ToUpper(k), "GIT_") {
			continue
		}
		switch k {
		case "LC_ALL", "SSH_AUTH_SOCK", "SSH_ASKPASS", "PAGER":
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_TERMINAL_PROMPT=0", "GIT_NO_LAZY_FETCH=1", "GIT_PAGER=cat", "LC_ALL=C")
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
	git     string    // binary
	dir     string    // passed as -C when not empty
	env     []string  // extra environment
	stdin   []byte    // standard input when not nil
	environ []string  // the environment to start from; nil: the relay's
	conf    *confined // when set, git runs confined
}

// run runs git with args and returns its standard output.
func (g gitRun) run(ctx context.Context, args ...string) ([]byte, error) {
	full := make([]string, 0, len(args)+4)
	if g.dir != "" {
		full = append(full, "-C", g.dir)
	}
	var env []string
	if c := g.conf; c != nil {
		full = append(full, c.args()...)
		env = confinedGitEnv(g.environ, g.env...)
	} else {
		env = gitEnv(g.environ, g.env...)
	}
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, g.git, full...)
	cmd.Env = env
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
