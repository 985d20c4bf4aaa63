//go:build unix

package executor

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// toolEnv names the test binary for the scripts that run its tools.
const toolEnv = "EXECUTOR_TOOL"

// testToolArg makes the test binary a small tool for the scripts the tests
// run (see runTestTool).
const testToolArg = "__executor-test-tool"

// runTestTool runs one of the test binary's tools:
//
//	setsid CMD...   start a new session, then exec CMD (like util-linux setsid)
//	setpgid CMD...  lead a new process group in the same session, then exec CMD
//	dial ADDR       connect to TCP address ADDR; exit 0 if that worked
func runTestTool(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "test tool: no tool named")
		return 2
	}
	switch tool, rest := args[0], args[1:]; tool {
	case "setsid", "setpgid":
		var err error
		if tool == "setsid" {
			_, err = syscall.Setsid()
		} else {
			err = syscall.Setpgid(0, 0)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "test tool %s: %v\n", tool, err)
			return 1
		}
		if len(rest) == 0 {
			return 0
		}
		path, err := exec.LookPath(rest[0])
		if err != nil {
			fmt.Fprintf(os.Stderr, "test tool %s: %v\n", tool, err)
			return 127
		}
		err = syscall.Exec(path, rest, os.Environ())
		fmt.Fprintf(os.Stderr, "test tool %s: exec: %v\n", tool, err)
		return 127
	case "dial":
		if len(rest) != 1 {
			fmt.Fprintln(os.Stderr, "test tool dial: want one address")
			return 2
		}
		c, err := net.DialTimeout("tcp", rest[0], 5*time.Second)
		if err != nil {
			fmt.Fprintf(os.Stderr, "test tool dial: %v\n", err)
			return 1
		}
		_ = c.Close()
		return 0
	default:
		fmt.Fprintf(os.Stderr, "test tool: unknown tool %q\n", tool)
		return 2
	}
}
