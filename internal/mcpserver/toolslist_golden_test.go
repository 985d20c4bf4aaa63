package mcpserver

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	defs := map[string]toolDefinition{}
	for _, d := range toolDefs() {
		defs[d.listed().Name] = d
	}
	tools := setupAll(t).listTools(t).Tools
	require.Len(t, defs, len(tools), "toolDefs lists every tool a server offers")
	for _, tool := range tools {
		d, ok := defs[tool.Name]
		require.True(t, ok, tool.Name)
		v, err := d.compiled()
		require.NoError(t, err, tool.Name)
		require.NotNil(t, v, tool.Name)
	}
}

// TestToolSchemasFile: tool_schemas.json holds the schemas schema.go
// builds, encoded, as the tools are listed. After a change to a tool's
// arguments or result, rewrite it with
// go test ./internal/mcpserver -run TestToolSchemasFile -args -update.
func TestToolSchemasFile(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	b.WriteString("{\n")
	defs := toolDefs()
	slices.SortFunc(defs, func(a, b toolDefinition) int { return strings.Compare(a.listed().Name, b.listed().Name) })
	for i, d := range defs {
		in, out := d.schemas()
		line, err := json.Marshal(encodedSchemas{Input: schemaJSON("", in), Output: schemaJSON("", out)})
		require.NoError(t, err)
		name, err := json.Marshal(d.listed().Name)
		require.NoError(t, err)
		sep := ",\n"
		if i == len(defs)-1 {
			sep = "\n"
		}
		fmt.Fprintf(&b, "%s: %s%s", name, line, sep)
	}
	b.WriteString("}\n")
	if *updateGolden {
		require.NoError(t, os.WriteFile(toolSchemasFile, b.Bytes(), 0o644))
		return
	}
	require.Equal(t, b.String(), string(toolSchemasJSON),
		"%s is out of date: go test ./internal/mcpserver -run TestToolSchemasFile -args -update", toolSchemasFile)
}
