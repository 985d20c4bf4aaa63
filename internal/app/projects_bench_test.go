package app

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
)

// BenchmarkProjectOpen times the first open of a project by a running
// service, as serve --standalone does at start-up and a shared service
// does for each new project: its MCP server (tools, input schemas and
// their validators) and the first load of its config (executors, the
// policy, the role catalog and its schemas, the pipeline). The project's
// config is config.yaml with one command executor and the answer runner
// left at its defaults.
func BenchmarkProjectOpen(b *testing.B) {
	dir := b.TempDir()
	require := func(err error) {
		b.Helper()
		if err != nil {
			b.Fatal(err)
		}
	}
	require(os.WriteFile(filepath.Join(dir, ServiceConfigFile), []byte("askAnswer:\n  port: 0\n"), 0o600))
	cfg, err := config.LoadService(dir, func(string) (string, bool) { return "", false })
	require(err)
	svc, err := New(b.Context(), Options{Config: cfg, Logger: quiet, Version: "t", Environ: []string{"PATH=/usr/bin:/bin"}})
	require(err)
	b.Cleanup(func() { _ = svc.Close(0) })
	dirs := make([]string, b.N)
	for i := range dirs {
		dirs[i] = filepath.Join(dir, "p", string(rune('a'+i%26))+filepath.Base(b.TempDir()), ".mcp-task-relay")
		require(os.MkdirAll(dirs[i], 0o700))
		require(os.WriteFile(filepath.Join(dirs[i], config.ConfigFileName), []byte("executors:\n  sh: {argv: [/bin/sh, -c, 'true']}\n"), 0o600))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p, err := svc.projects.open(b.Context(), dirs[i], nil)
		require(err)
		require(p.Err())
	}
}
