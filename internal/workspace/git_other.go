//go:build !unix

package workspace

import "os/exec"

// killGroupOnCancel leaves the default: canceling the context kills the git
// process; WaitDelay bounds how long helpers it started can hold its pipes.
func killGroupOnCancel(*exec.Cmd) (waited func()) { return func() {} }
