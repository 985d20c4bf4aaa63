// Command mcp-task-relay is an MCP server that hands long coding jobs to
// background executors in isolated git workspaces and returns verified
// artifacts. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mcp-task-relay/mcp-task-relay/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
