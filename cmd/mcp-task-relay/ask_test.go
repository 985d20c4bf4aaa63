package main_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// askScript asks the orchestrator which greeting to write, through the
// relay's own `ask` command found on PATH, and writes the answer.
const askScript = `#!/bin/sh
set -eu
answer=$(mcp-task-relay ask --type CLARIFICATION "Which greeting should hello.txt contain?")
echo "$answer" >> hello.txt
echo "### NOTES"
echo "asked and got: $answer"
`

func TestAskAnsweredByOrchestrator(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	repo, base := newRepo(t)
	script := writeScript(t, dir, "ask.sh", askScript)
	cfg := writeConfig(t, dir, fmt.Sprintf(`server:
  dataDir: %q
executors:
  asker: {kind: command, argv: [%q]}
`, filepath.Join(dir, "data"), script))
	// The runner is on (the default) but has no API key: a warning, and
	// asks go to the orchestrator instead.
	s := startServerEnv(t, []string{"ANTHROPIC_API_KEY="}, "--config-dir", cfg, "--storage", "sqlite", "--sqlite", filepath.Join(dir, "relay.db"))
	jobID := s.call(t, "jobs_submit", map[string]any{"spec": seedSpec("file://"+repo, base, "ask-1")})["jobId"].(string)

	// jobs_wait returns on each change; wait until the executor has asked.
	var job map[string]any
	for range 20 {
		job = s.call(t, "jobs_wait", map[string]any{"jobId": jobID, "timeoutS": 10})
		if job["state"] == "WAITING_ON_ANSWER" {
			break
		}
	}
	require.Equal(t, "WAITING_ON_ANSWER", job["state"], "job: %v", job)

	list := s.call(t, "asks_list", map[string]any{"jobId": jobID})
	items := list["items"].([]any)
	require.Len(t, items, 1)
	item := items[0].(map[string]any)
	require.Equal(t, "Which greeting should hello.txt contain?", item["prompt"])
	require.Equal(t, "CLARIFICATION", item["askType"])
	require.Equal(t, "PENDING", item["status"])
	envelope, err := json.Marshal(item["contextEnvelope"])
	require.NoError(t, err)
	require.Contains(t, string(envelope), `"job_snapshot"`)
	require.Contains(t, string(envelope), base, "the envelope names the baseline commit")

	ans := s.call(t, "asks_answer", map[string]any{"askId": item["askId"], "answerText": "Bonjour, relay!"})
	require.Equal(t, true, ans["created"])

	job = s.waitState(t, jobID, "SUCCEEDED", "FAILED")
	require.Equal(t, "SUCCEEDED", job["state"], "job: %v", job)
	patch := s.read(t, "mcp://jobs/"+jobID+"/artifacts/patch.diff")
	require.Contains(t, patch, "+Bonjour, relay!")

	// The ask and its answer are in the audit log.
	var events []struct {
		Type string `json:"type"`
	}
	require.NoError(t, json.Unmarshal([]byte(s.read(t, "mcp://jobs/"+jobID+"/events")), &events))
	var types []string
	for _, e := range events {
		types = append(types, e.Type)
	}
	require.Contains(t, types, "ask")
	require.Contains(t, types, "answer")
	require.Contains(t, types, "log", "executor output is streamed into the event log")
	require.Contains(t, s.stderr.String(), "answer runner off: no API key")
	require.Equal(t, "orchestrator", item["route"])
	s.assertOnlyJSONRPC(t)
}
