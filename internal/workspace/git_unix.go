//go:build unix

package workspace

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// gitKillGrace is how long git and the helpers it started get to exit
// after SIGTERM before the whole group is killed.
const gitKillGrace = 2 * time.Second

// killGroupOnCancel makes git lead a new session, so a new process group,
// and makes canceling its context signal that whole group rather than the
// git process alone: the helpers git starts for a remote (git-remote-https,
// ssh, credential helpers) would otherwise outlive the deadline, keep the
// connection open and hold git's output pipes for WaitDelay. SIGTERM comes
// first because git then removes its lock files and a half-made worktree;
// SIGKILL follows after gitKillGrace, or as soon as git has been waited for,
// for helpers that ignored it.
//
// A new session also means no controlling terminal: ssh cannot stop the
// relay's git on a password or host-key prompt it would read from /dev/tty,
// it fails instead.
//
// It returns the function to call once the command has been waited for.
func killGroupOnCancel(cmd *exec.Cmd) (waited func()) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	dieWithRelay(cmd.SysProcAttr)
	done := make(chan struct{})
	cmd.Cancel = func() error {
		pgid := cmd.Process.Pid
		if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil {
			if errors.Is(err, syscall.ESRCH) {
				return os.ErrProcessDone
			}
			return err
		}
		go func() {
			t := time.NewTimer(gitKillGrace)
			defer t.Stop()
			select {
			case <-done:
			case <-t.C:
			}
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}()
		return nil
	}
	return func() { close(done) }
}
