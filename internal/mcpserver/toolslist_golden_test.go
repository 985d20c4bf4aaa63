package mcpserver

import (
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files of testdata")

// TestToolsListGolden pins the tools/list result as written on the wire,
// byte for byte, for a server with every tool (asks and follow-ups on):
// the tools' names, descriptions, annotations and schemas, in order.
// Regenerate with go test -run TestToolsListGolden ./internal/mcpserver
// -args -update after a
// deliberate change.
func TestToolsListGolden(t *testing.T) {
	t.Parallel()
	fake := newFakeJobs()
	srv, err := New(Config{Jobs: followupJobs{fake}, Asks: newFakeAsks(fake), Logger: slog.New(slog.DiscardHandler), Version: "test"})
	require.NoError(t, err)
	s := startLineSession(t, srv, 0, "2025-06-18")
	s.send(t, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	r := s.next(t)
	require.Nil(t, r.Error, "tools/list: %s", r.raw)
	golden := filepath.Join("testdata", "tools_list.json")
	if *updateGolden {
		require.NoError(t, os.WriteFile(golden, r.Result, 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	require.Equal(t, string(want), string(r.Result))
}

// TestToolValidatorsCompile: every tool's input schema compiles. The
// validators are compiled on a tool's first call, so a schema that does
// not compile would otherwise show only as an INTERNAL_ERROR of that call.
func TestToolValidatorsCompile(t *testing.T) {
	t.Parallel()
	validators := map[string]func() (*argValidator, error){
		"jobs_submit": submitTool.validator, "jobs_get": getTool.validator, "jobs_list": listTool.validator,
		"jobs_cancel": cancelTool.validator, "jobs_wait": waitTool.validator, "jobs_followup": followupTool.validator,
		"asks_list": asksListTool.validator, "asks_answer": asksAnswerTool.validator,
	}
	tools := setupAll(t).listTools(t).Tools
	require.Len(t, validators, len(tools), "a validator for every tool a server offers")
	for _, tool := range tools {
		v, ok := validators[tool.Name]
		require.True(t, ok, tool.Name)
		got, err := v()
		require.NoError(t, err, tool.Name)
		require.NotNil(t, got, tool.Name)
	}
}
