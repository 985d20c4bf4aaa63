package main_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"
)

const approvalScript = `#!/bin/sh
set -eu
mcp-task-relay ask --type APPROVAL "Apply the schema migration to the staging database?" > approval.txt
`

// An APPROVAL ask routed to a human is put to the person through MCP
// elicitation on the connected client; their approval lets the job go on.
// (Protocol 2025-11-25: from 2026-07-28 on, servers may no longer send
// elicitation requests of their own.)
func TestApprovalThroughElicitation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	repo, base := newRepo(t)
	script := writeScript(t, dir, "approve.sh", approvalScript)
	cfg := writeConfig(t, dir, fmt.Sprintf(`server:
  dataDir: %q
executors:
  approver: {kind: command, argv: [%q]}
askAnswer:
  routing:
    byType: {APPROVAL: human}
`, filepath.Join(dir, "data"), script))
	var (
		mu       sync.Mutex
		messages []string
	)
	s := startServerClient(t, []string{"TASK_RELAY_ANSWER_RUNNER_ENABLED=false"}, func(o *mcp.ClientOptions) {
		o.ElicitationHandler = func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			mu.Lock()
			messages = append(messages, req.Params.Message)
			mu.Unlock()
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": true, "comment": "go ahead"}}, nil
		}
	}, "2025-11-25", "--config-dir", cfg, "--storage", "memory")

	jobID := s.call(t, "jobs_submit", map[string]any{"spec": seedSpec("file://"+repo, base, "approval")})["jobId"].(string)
	job := s.waitState(t, jobID, "SUCCEEDED", "FAILED")
	require.Equal(t, "SUCCEEDED", job["state"], "job: %v", job)
	mu.Lock()
	require.Len(t, messages, 1)
	require.Contains(t, messages[0], "Apply the schema migration to the staging database?")
	mu.Unlock()
	patch := s.read(t, "mcp://jobs/"+jobID+"/artifacts/patch.diff")
	approval := fileFromPatch(t, patch, "approval.txt")
	require.True(t, strings.HasPrefix(approval, "approved"), approval)
	require.Contains(t, approval, "go ahead")
	asks := s.call(t, "asks_list", map[string]any{"jobId": jobID, "status": "ALL"})["items"].([]any)
	require.Len(t, asks, 1)
	require.Equal(t, "human", asks[0].(map[string]any)["route"])
}
