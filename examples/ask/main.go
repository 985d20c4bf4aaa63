// Command ask is a minimal Go executor for mcp-task-relay: it asks the relay
// which greeting to write, writes it to hello.txt in the job's worktree and
// exits. The relay runs it as a command executor, for example:
//
//	executors:
//	  greeter:
//	    kind: command
//	    command: ["go", "run", "/path/to/mcp-task-relay/examples/ask"]
//
// Everything the SDK needs (relay address, job token, job and step ids,
// facts) comes from the environment the relay gives every executor.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
	"github.com/mcp-task-relay/mcp-task-relay/sdk"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "ask example:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	ans, err := sdk.Ask(ctx, relaytype.AskClarification, "Which greeting should hello.txt contain?",
		&sdk.AskOptions{Role: "clarifier", TimeoutS: 300})
	switch {
	case errors.Is(err, sdk.ErrRejected):
		return fmt.Errorf("the question was rejected: %s", ans.Error)
	case errors.Is(err, sdk.ErrTimedOut):
		return errors.New("nobody answered in time")
	case err != nil:
		return err
	}
	return os.WriteFile("hello.txt", []byte(ans.Text+"\n"), 0o644)
}
