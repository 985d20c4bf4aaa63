// Package cli holds the mcp-task-relay commands. It turns configuration
// into each component's Config and is the only place that wires packages
// together.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
)

// Version is the release version; set at build time with
// -ldflags "-X github.com/mcp-task-relay/mcp-task-relay/internal/cli.Version=v1.2.3".
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Main runs the command line args and returns the process exit code.
func Main(ctx context.Context, args []string) int {
	// The executor shim is this same binary; it must not go through cobra
	// or print anything of its own.
	if len(args) > 0 && args[0] == executor.ShimArg {
		return executor.RunShim(args[1:])
	}
	root := newRoot(os.Stdin, os.Stdout, os.Stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(os.Stderr, "mcp-task-relay:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "mcp-task-relay:", err)
	return 1
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "mcp-task-relay",
		Short: "MCP server that relays long coding jobs to background executors",
		Long: `mcp-task-relay is an MCP server: an AI coding client submits a job (repository,
pinned commit, task), a background executor (a coding agent or any command)
works on it in an isolated git workspace, and the client reads back a verified
patch, a test plan, notes and logs.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version prints what the version command prints.
		Version: version(),
	}
	root.SetVersionTemplate("mcp-task-relay {{.Version}}\n")
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newServe(), newDaemon(), newVersion(), newDemo(), newBench(), newAsk(), newInit(), newDoctor())
	root.AddCommand(newJobs(), newAsks(), newOpen())
	return root
}

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "mcp-task-relay", version())
			return err
		},
	}
}
