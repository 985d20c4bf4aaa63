package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// tsClientDir holds the official MCP TypeScript SDK client (pinned in its
// package-lock.json) that these tests drive.
const tsClientDir = "testdata/tsclient"

var tsInstall = sync.OnceValue(func() error {
	if _, err := os.Stat(filepath.Join(tsClientDir, "node_modules", "@modelcontextprotocol", "sdk")); err == nil {
		return nil
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = tsClientDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return &installError{out: string(out), err: err}
	}
	return nil
})

type installError struct {
	out string
	err error
}

func (e *installError) Error() string { return "npm ci: " + e.err.Error() + ": " + e.out }

// tsClientResult is what client.mjs prints.
type tsClientResult struct {
	Tools   []string `json:"tools"`
	JobID   string   `json:"jobId"`
	State   string   `json:"state"`
	Attempt int      `json:"attempt"`
	Patch   string   `json:"patch"`
	Listed  int      `json:"listed"`
}

// runTSClient runs client.mjs with args and decodes its result.
func runTSClient(t *testing.T, env []string, args ...string) tsClientResult {
	t.Helper()
	require.NoError(t, tsInstall())
	cmd := exec.Command("node", append([]string{"client.mjs"}, args...)...)
	cmd.Dir = tsClientDir
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "client.mjs: %s", stderr.String())
	var res tsClientResult
	require.NoError(t, json.Unmarshal(out, &res), "client.mjs printed %q", out)
	return res
}

// TestOfficialTypeScriptClient: the official MCP TypeScript SDK client
// runs the loop against the real binary, over stdio through the front and
// over Streamable HTTP, on one relay service and one job list.
func TestOfficialTypeScriptClient(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is required for this test (the CI installs it): %v", err)
	}
	svc := newRelayService(t, "")
	repo, _ := newRepo(t)
	cfg := project(t, t.TempDir(), "#!/bin/sh\necho from-the-ts-client >> hello.txt\n")
	spec := func(key string) string {
		b, err := json.Marshal(localSpec(repo, key))
		require.NoError(t, err)
		return string(b)
	}

	stdio := runTSClient(t, svc.env(), "stdio", binary, cfg, spec("ts-stdio"))
	require.Equal(t, "SUCCEEDED", stdio.State)
	require.Equal(t, 1, stdio.Attempt)
	require.Contains(t, stdio.Patch, "+from-the-ts-client")
	require.Contains(t, stdio.Tools, "jobs_submit")
	require.Contains(t, stdio.Tools, "asks_answer")
	require.Equal(t, 1, stdio.Listed)

	http := runTSClient(t, os.Environ(), "http", svc.origin()+"/mcp?project="+cfg, svc.token(t), spec("ts-http"))
	require.Equal(t, "SUCCEEDED", http.State)
	require.Contains(t, http.Patch, "+from-the-ts-client")
	require.Equal(t, stdio.Tools, http.Tools, "both transports offer the same tools")
	require.Equal(t, 2, http.Listed, "one job list for both sessions")
}
