package main_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

const envScript = `#!/bin/sh
set -eu
test -f .env
echo "saw $(cat .env)" > result.txt
echo done
`

// Workspace bootstrap: copyFiles brings untracked files from the source
// repository (kept out of the patch), setup runs before the executor, and
// a failing setup fails the job with its output in logs.txt.
func TestWorkspaceBootstrap(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	repo, base := newRepo(t)
	require.NoError(t, os.WriteFile(filepath.Join(repo, ".env"), []byte("TOKEN=local\n"), 0o600))
	script := writeScript(t, dir, "env.sh", envScript)
	cfg := writeConfig(t, dir, fmt.Sprintf(`server:
  dataDir: %q
workspace:
  copyFiles: [".env"]
  setup: "echo preparing; test -f .env"
executors:
  default: ok
  ok: {kind: command, argv: [%q]}
  broken:
    kind: command
    argv: [%q]
    workspace: {setup: "echo setting up; echo no such tool >&2; exit 7"}
`, filepath.Join(dir, "data"), script, script))
	s := startServer(t, "--config-dir", cfg, "--storage", "memory")
	spec := seedSpec(repo, base, "boot")
	spec["repo"] = map[string]any{"type": "local", "path": repo, "baseBranch": "main", "baselineCommit": base}
	jobID := s.call(t, "jobs_submit", map[string]any{"spec": spec})["jobId"].(string)
	job := s.waitState(t, jobID, "SUCCEEDED", "FAILED")
	require.Equal(t, "SUCCEEDED", job["state"], "job %v\nlogs: %s", job, s.read(t, "mcp://jobs/"+jobID+"/artifacts/logs.txt"))
	patch := s.read(t, "mcp://jobs/"+jobID+"/artifacts/patch.diff")
	require.Contains(t, patch, "+saw TOKEN=local")
	require.NotContains(t, patch, ".env", "copied files stay out of the patch")

	spec["idempotencyKey"] = "boot-broken"
	spec["execution"].(map[string]any)["executor"] = "broken"
	jobID = s.call(t, "jobs_submit", map[string]any{"spec": spec})["jobId"].(string)
	job = s.waitState(t, jobID, "FAILED", "SUCCEEDED")
	require.Equal(t, "FAILED", job["state"])
	require.Contains(t, job["summary"], "workspace setup failed")
	logs := s.read(t, "mcp://jobs/"+jobID+"/artifacts/logs.txt")
	require.Contains(t, logs, "setting up")
	require.Contains(t, logs, "no such tool")
}

// A claude run that reports spending more than the job's budget fails
// with POLICY.
func TestBudgetExceeded(t *testing.T) {
	t.Parallel()
	s, repo, base := agentServer(t, "claude", nil)
	spec := agentSpec(repo, base, "budget")
	spec["execution"].(map[string]any)["maxBudgetUsd"] = 0.01
	jobID := s.call(t, "jobs_submit", map[string]any{"spec": spec})["jobId"].(string)
	job := s.waitState(t, jobID, "FAILED", "SUCCEEDED")
	require.Equal(t, "FAILED", job["state"])
	require.Equal(t, "POLICY", job["reasonCode"])
	require.Contains(t, job["summary"], "over the job's budget")
	require.InDelta(t, 0.0421, job["usage"].(map[string]any)["costUsd"], 1e-9, "the spend is still recorded")
}
