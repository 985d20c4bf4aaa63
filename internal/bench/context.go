package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// ContextSize is what an orchestrator's conversation pays for the relay
// before its first tool call: the tools/list result and the initialize
// instructions, in bytes as sent.
type ContextSize struct {
	ToolsList    int // JSON bytes of the tools/list result
	Instructions int // bytes of the initialize instructions
}

// tokens approximates the tokens of n bytes of English and JSON: about
// four bytes each.
func tokens(n int) int { return (n + 2) / 4 }

func (c ContextSize) String() string {
	return fmt.Sprintf("%-34s %6d bytes ≈ %5d tokens (bytes/4)\n%-34s %6d bytes ≈ %5d tokens (bytes/4)",
		"tools/list size", c.ToolsList, tokens(c.ToolsList),
		"initialize instructions size", c.Instructions, tokens(c.Instructions))
}

// MeasureContext connects to the MCP server at the other end of t and
// returns the size of its tools/list result (every page, as one result)
// and of its initialize instructions.
func MeasureContext(ctx context.Context, t mcp.Transport) (ContextSize, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "0"}, nil)
	s, err := client.Connect(ctx, t, nil)
	if err != nil {
		return ContextSize{}, err
	}
	defer s.Close()
	var (
		all    *mcp.ListToolsResult
		tools  []*mcp.Tool
		params = &mcp.ListToolsParams{}
	)
	for {
		res, err := s.ListTools(ctx, params)
		if err != nil {
			return ContextSize{}, fmt.Errorf("tools/list: %w", err)
		}
		all = res
		tools = append(tools, res.Tools...)
		if res.NextCursor == "" {
			break
		}
		params.Cursor = res.NextCursor
	}
	all.Tools = tools
	data, err := json.Marshal(all)
	if err != nil {
		return ContextSize{}, err
	}
	return ContextSize{ToolsList: len(data), Instructions: len(s.InitializeResult().Instructions)}, nil
}

// ContextCost starts `binary serve --standalone --storage memory` (every
// tool offered, as a client launching the relay sees it) and measures its
// tools/list and instructions.
func ContextCost(ctx context.Context, binary, dir string) (ContextSize, error) {
	cmd := exec.Command(binary, "serve", "--standalone", "--storage", "memory", "--config-dir", filepath.Join(dir, "context"))
	cmd.Env = append(cmd.Environ(), "TASK_RELAY_DATA_DIR="+filepath.Join(dir, "context-data"), "TASK_RELAY_LOG_LEVEL=error")
	cmd.Stderr = io.Discard
	c, err := MeasureContext(ctx, &mcp.CommandTransport{Command: cmd})
	if err != nil {
		return ContextSize{}, fmt.Errorf("context cost: %w", err)
	}
	return c, nil
}
