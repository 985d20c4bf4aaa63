package bench_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/bench"
)

// TestMeasureContext checks the sizes against a server whose tools/list
// and instructions are known.
func TestMeasureContext(t *testing.T) {
	t.Parallel()
	const instr = "Call echo."
	srv := mcp.NewServer(&mcp.Implementation{Name: "s", Version: "0"}, &mcp.ServerOptions{Instructions: instr})
	tool := &mcp.Tool{Name: "echo", Description: "Echo the text.", InputSchema: &jsonschema.Schema{
		Type: "object", Properties: map[string]*jsonschema.Schema{"text": {Type: "string"}}}}
	srv.AddTool(tool, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{}, nil
	})
	connect := func() mcp.Transport {
		ct, st := mcp.NewInMemoryTransports()
		ss, err := srv.Connect(context.Background(), st, nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = ss.Close() })
		return ct
	}

	got, err := bench.MeasureContext(context.Background(), connect())
	require.NoError(t, err)
	// The whole result counts, as another client receives it: the tool
	// and what the SDK adds around it.
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "0"}, nil).Connect(context.Background(), connect(), nil)
	require.NoError(t, err)
	defer cs.Close()
	res, err := cs.ListTools(context.Background(), nil)
	require.NoError(t, err)
	require.Len(t, res.Tools, 1)
	want, err := json.Marshal(res)
	require.NoError(t, err)
	toolOnly, err := json.Marshal(tool)
	require.NoError(t, err)
	require.Greater(t, len(want), len(toolOnly))
	require.Equal(t, bench.ContextSize{ToolsList: len(want), Instructions: len(instr)}, got)

	lines := strings.Split(bench.ContextSize{ToolsList: 12000, Instructions: 1000}.String(), "\n")
	require.Len(t, lines, 2)
	require.Regexp(t, `^tools/list size +12000 bytes ≈  3000 tokens \(bytes/4\)$`, lines[0])
	require.Regexp(t, `^initialize instructions size +1000 bytes ≈   250 tokens \(bytes/4\)$`, lines[1])
}
