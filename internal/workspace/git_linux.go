package workspace

import "syscall"

// dieWithRelay makes the kernel kill git when the relay dies (SIGKILL
// included), so that no git of a dead relay goes on writing into a
// workspace that the next relay is about to clean up and recreate.
func dieWithRelay(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
