//go:build unix && !linux

package workspace

import "syscall"

// dieWithRelay does nothing where there is no parent-death signal; a git
// left by a dead relay is waited out by removeAll's retries instead.
func dieWithRelay(*syscall.SysProcAttr) {}
