package executor

import (
	"fmt"
	"os"
)

// RunShim is not supported on Windows, which has neither process groups
// as the shim uses them nor a parent-death signal: Command runs executors
// there without it. It reports so and returns 127.
func RunShim([]string) int {
	fmt.Fprintf(os.Stderr, "%s: not supported on windows\n", ShimArg)
	return 127
}
