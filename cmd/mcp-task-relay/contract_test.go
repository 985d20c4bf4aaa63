package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"
)

// contractScripts are command executors for the JobSpec promises: each
// checks what its prompt says, then edits and reports.
var contractScripts = map[string]string{
	// full meets DIFF, TEST_PLAN and NOTES, in the spellings people use.
	"full": `#!/bin/sh
set -eu
grep -q '^## Required output' "$1"
echo "contract kept" >> hello.txt
echo "## Test plan"
echo "cat hello.txt"
echo "Notes:"
echo "- nothing else"
`,
	// partial forgets its notes.
	"partial": `#!/bin/sh
set -eu
echo "no notes" >> hello.txt
echo "### TEST_PLAN"
echo "cat hello.txt"
`,
	// spread changes a file inside scope.fileGlobs and one outside.
	"spread": `#!/bin/sh
set -eu
mkdir -p src secrets
echo "package src" > src/ok.go
echo "leaked" > secrets/leak.txt
rm hello.txt
echo "### NOTES"
echo "spread around"
`,
	// asker asks through the relay's ask command and records how it went.
	"asker": `#!/bin/sh
set -u
grep -q "askPolicy is never" "$1" || echo "prompt does not say so" >> ask-error.txt
start=$(date +%s)
if mcp-task-relay ask --type CLARIFICATION "Which greeting should hello.txt contain?" > answer.txt 2>> ask-error.txt; then
  code=0
else
  code=$?
fi
echo "exit=$code seconds=$(( $(date +%s) - start ))" > ask-exit.txt
echo "### NOTES"
cat ask-error.txt
`,
}

// contractServer starts a relay whose command executors are
// contractScripts, on a new repository.
func contractServer(t *testing.T) (*server, string, string) {
	t.Helper()
	dir := t.TempDir()
	repo, base := newRepo(t)
	var execs strings.Builder
	for name, body := range contractScripts {
		fmt.Fprintf(&execs, "  %s: {kind: command, argv: [%q, \"{{prompt_file}}\"]}\n", name, writeScript(t, dir, name+".sh", body))
	}
	cfg := writeConfig(t, dir, fmt.Sprintf("server:\n  dataDir: %q\nexecutors:\n%s", filepath.Join(dir, "data"), execs.String()))
	s := startServer(t, "--config-dir", cfg, "--storage", "sqlite", "--sqlite", filepath.Join(dir, "relay.db"))
	return s, repo, base
}

// contractSpec is the seed spec run by executor in a writable sandbox.
func contractSpec(repo, base, key, executor string) map[string]any {
	spec := seedSpec("file://"+repo, base, key)
	ex := spec["execution"].(map[string]any)
	ex["executor"] = executor
	ex["sandbox"] = "workspace-write"
	return spec
}

// artifactKinds lists the artifacts jobs_get reports.
func artifactKinds(job map[string]any) []string {
	var kinds []string
	arts, _ := job["artifacts"].([]any)
	for _, a := range arts {
		kinds = append(kinds, a.(map[string]any)["kind"].(string))
	}
	return kinds
}

func TestOutputContractEndToEnd(t *testing.T) {
	t.Parallel()
	s, repo, base := contractServer(t)
	all := []any{"DIFF", "TEST_PLAN", "NOTES"}

	spec := contractSpec(repo, base, "contract-partial", "partial")
	spec["outputContract"] = all
	id := s.call(t, "jobs_submit", map[string]any{"spec": spec})["jobId"].(string)
	job := s.waitState(t, id, "SUCCEEDED", "FAILED")
	require.Equal(t, "FAILED", job["state"], "job: %v", job)
	require.Equal(t, "OUTPUT_CONTRACT", job["reasonCode"])
	require.Equal(t, "outputContract: NOTES section missing from out.md", job["summary"])
	require.Contains(t, s.read(t, "mcp://jobs/"+id+"/artifacts/patch.diff"), "+no notes", "the results stay readable")
	require.Contains(t, s.read(t, "mcp://jobs/"+id+"/artifacts/out.md"), "### TEST_PLAN")

	spec = contractSpec(repo, base, "contract-full", "full")
	spec["outputContract"] = all
	id = s.call(t, "jobs_submit", map[string]any{"spec": spec})["jobId"].(string)
	job = s.waitState(t, id, "SUCCEEDED", "FAILED")
	require.Equal(t, "SUCCEEDED", job["state"], "job: %v\n%s", job, s.read(t, "mcp://jobs/"+id+"/artifacts/logs.txt"))
	require.Equal(t, "### TEST_PLAN\n\ncat hello.txt\n\n### NOTES\n\n- nothing else\n", s.read(t, "mcp://jobs/"+id+"/artifacts/out.md"))

	// Without a contract the same executor's missing notes are fine.
	id = s.call(t, "jobs_submit", map[string]any{"spec": contractSpec(repo, base, "contract-none", "partial")})["jobId"].(string)
	job = s.waitState(t, id, "SUCCEEDED", "FAILED")
	require.Equal(t, "SUCCEEDED", job["state"], "job: %v", job)
	s.assertOnlyJSONRPC(t)
}

func TestFileGlobsEndToEnd(t *testing.T) {
	t.Parallel()
	s, repo, base := contractServer(t)

	spec := contractSpec(repo, base, "globs-escape", "spread")
	spec["scope"] = map[string]any{"fileGlobs": []any{"src/**/*.go"}}
	id := s.call(t, "jobs_submit", map[string]any{"spec": spec})["jobId"].(string)
	job := s.waitState(t, id, "SUCCEEDED", "FAILED")
	require.Equal(t, "FAILED", job["state"], "job: %v", job)
	require.Equal(t, "POLICY", job["reasonCode"])
	require.Equal(t, "scope.fileGlobs: the patch touches 2 paths outside src/**/*.go: hello.txt, secrets/leak.txt", job["summary"])
	require.NotContains(t, artifactKinds(job), "patch.diff", "a patch out of scope is not returned")
	require.Contains(t, s.read(t, "mcp://jobs/"+id+"/artifacts/out.md"), "spread around")

	spec = contractSpec(repo, base, "globs-inside", "spread")
	spec["scope"] = map[string]any{"fileGlobs": []any{"src/", "secrets/*.txt", "hello.txt"}}
	id = s.call(t, "jobs_submit", map[string]any{"spec": spec})["jobId"].(string)
	job = s.waitState(t, id, "SUCCEEDED", "FAILED")
	require.Equal(t, "SUCCEEDED", job["state"], "job: %v", job)
	require.Contains(t, s.read(t, "mcp://jobs/"+id+"/artifacts/patch.diff"), "+leaked")

	// A glob that cannot match anything sensible is refused at submit.
	spec = contractSpec(repo, base, "globs-bad", "spread")
	spec["scope"] = map[string]any{"fileGlobs": []any{"src/[a-z"}}
	res, err := s.session.CallTool(context.Background(), &mcp.CallToolParams{Name: "jobs_submit", Arguments: map[string]any{"spec": spec}})
	require.NoError(t, err)
	require.True(t, res.IsError)
	var e struct{ Code, Field string }
	require.NoError(t, json.Unmarshal([]byte(res.Content[0].(*mcp.TextContent).Text), &e))
	require.Equal(t, "INVALID_SPEC", e.Code)
	require.Equal(t, "scope.fileGlobs[0]", e.Field)
}

func TestAskPolicyNeverEndToEnd(t *testing.T) {
	t.Parallel()
	s, repo, base := contractServer(t)
	spec := contractSpec(repo, base, "never-asks", "asker")
	spec["execution"].(map[string]any)["askPolicy"] = "never"
	start := time.Now()
	id := s.call(t, "jobs_submit", map[string]any{"spec": spec})["jobId"].(string)
	job := s.waitState(t, id, "SUCCEEDED", "FAILED", "WAITING_ON_ANSWER")
	require.Equal(t, "SUCCEEDED", job["state"], "the ask is refused at once, the job never waits: %v", job)
	require.Less(t, time.Since(start), 30*time.Second)

	patch := s.read(t, "mcp://jobs/"+id+"/artifacts/patch.diff")
	require.Contains(t, patch, "+exit=5 ", "mcp-task-relay ask exits non-zero")
	require.NotContains(t, patch, "prompt does not say so", "the prompt tells the executor it cannot ask")
	require.Contains(t, patch, "403")
	require.Contains(t, patch, "E_ASK_POLICY")
	require.Contains(t, patch, `execution.askPolicy "never"`)
	require.NotContains(t, patch, "+++ b/answer.txt\n@@ -0,0 +1", "no answer was printed")

	require.Empty(t, s.call(t, "asks_list", map[string]any{"jobId": id, "status": "ALL"})["items"], "nothing was stored")
	var events []struct {
		Type string `json:"type"`
	}
	require.NoError(t, json.Unmarshal([]byte(s.read(t, "mcp://jobs/"+id+"/events")), &events))
	for _, ev := range events {
		require.NotEqual(t, "ask", ev.Type)
	}
}
