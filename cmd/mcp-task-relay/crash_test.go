package main_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"
)

// crashScript hangs on its first run (after recording its pid) and edits
// the repository on the next.
const crashScript = `#!/bin/sh
set -eu
if [ ! -f %[1]q ]; then
  echo $$ > %[1]q
  exec sleep 300
fi
echo "second attempt $TASK_RELAY_STEP_ID" >> hello.txt
echo "### NOTES"
echo "retried"
`

func TestSigkillDuringRunIsRetried(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	repo, base := newRepo(t)
	marker := filepath.Join(dir, "first-run")
	script := writeScript(t, dir, "crash.sh", fmt.Sprintf(crashScript, marker))
	cfg := writeConfig(t, dir, fmt.Sprintf(`server:
  dataDir: %q
  leaseTtlSec: 5
  heartbeatIntervalSec: 1
executors:
  default: crash
  crash: {kind: command, argv: [%q]}
`, filepath.Join(dir, "data"), script))
	db := filepath.Join(dir, "relay.db")
	args := []string{"--config-dir", cfg, "--storage", "sqlite", "--sqlite", db}

	s1 := startServer(t, args...)
	spec := seedSpec("file://"+repo, base, "crash-1")
	jobID := s1.call(t, "jobs_submit", map[string]any{"spec": spec})["jobId"].(string)
	pids := readPids(t, marker, 1)
	s1.waitState(t, jobID, "RUNNING")
	require.NoError(t, s1.cmd.Process.Signal(syscall.SIGKILL))
	_ = s1.cmd.Wait()
	waitGone(t, pids...)

	s2 := startServer(t, args...)
	job := s2.waitState(t, jobID, "SUCCEEDED", "FAILED")
	require.Equal(t, "SUCCEEDED", job["state"], "job: %v", job)
	require.EqualValues(t, 2, job["attempt"])
	patch := s2.read(t, "mcp://jobs/"+jobID+"/artifacts/patch.diff")
	require.Contains(t, patch, "+second attempt attempt-2")

	// Resubmitting the same key returns the same job.
	again := s2.call(t, "jobs_submit", map[string]any{"spec": spec})
	require.Equal(t, jobID, again["jobId"])
	require.Equal(t, false, again["created"])

	var events []struct {
		ID      int64           `json:"id"`
		Type    string          `json:"type"`
		Payload json.RawMessage `json:"payload"`
	}
	require.NoError(t, json.Unmarshal([]byte(s2.read(t, "mcp://jobs/"+jobID+"/events")), &events))
	var chain []string
	kinds := map[string]int{}
	seen := map[int64]bool{}
	for _, e := range events {
		require.False(t, seen[e.ID], "event %d twice", e.ID)
		seen[e.ID] = true
		var p struct {
			To   string `json:"to"`
			Kind string `json:"kind"`
		}
		require.NoError(t, json.Unmarshal(e.Payload, &p))
		switch e.Type {
		case "submitted", "transition":
			chain = append(chain, p.To)
		case "artifact":
			kinds[p.Kind]++
		}
	}
	require.Equal(t, []string{"QUEUED", "RUNNING", "STALE", "QUEUED", "RUNNING", "SUCCEEDED"}, chain)
	require.Equal(t, map[string]int{"logs.txt": 1, "out.md": 1, "patch.diff": 1}, kinds)
	s2.assertOnlyJSONRPC(t)

	// Stop the relay and count rows in the database itself.
	require.NoError(t, s2.session.Close())
	_ = s2.cmd.Wait()
	conn, err := sql.Open("sqlite", "file:"+db+"?mode=ro")
	require.NoError(t, err)
	defer conn.Close()
	count := func(q string, args ...any) int {
		var n int
		require.NoError(t, conn.QueryRowContext(context.Background(), q, args...).Scan(&n))
		return n
	}
	require.Equal(t, 1, count(`SELECT count(*) FROM jobs`))
	require.Equal(t, 3, count(`SELECT count(*) FROM artifacts WHERE job_id = ?`, jobID))
	require.Equal(t, len(events), count(`SELECT count(*) FROM job_events WHERE job_id = ?`, jobID))
	_, err = os.Stat(filepath.Join(dir, "data", "artifacts", jobID, "patch.diff"))
	require.NoError(t, err)
}
