package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// newDownAnthropic is an Anthropic Messages API that is overloaded for
// good: every request gets 529, as the real API sends it.
func newDownAnthropic(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(529)
		fmt.Fprint(w, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// A runner ask whose provider fails after its retries is deferred to the
// orchestrator with the orchestrator's deadline: it outlives the runner's
// (short) deadline, and the orchestrator's answer lets the job succeed.
func TestRunnerDeferredAskWaitsForOrchestrator(t *testing.T) {
	t.Parallel()
	llm, calls := newDownAnthropic(t)
	dir := t.TempDir()
	repo, base := newRepo(t)
	script := writeScript(t, dir, "ask.sh", askScript)
	cfg := writeConfig(t, dir, fmt.Sprintf(`server:
  dataDir: %q
executors:
  asker: {kind: command, argv: [%q]}
askAnswer:
  askTimeoutSec: 300
  runner:
    provider: anthropic
    baseURL: %q
    maxRetries: 1
    defaultTimeout: 2
`, filepath.Join(dir, "data"), script, llm.URL))
	s := startServerEnv(t, []string{"ANTHROPIC_API_KEY=sk-ant-test"}, "--config-dir", cfg, "--storage", "sqlite", "--sqlite", filepath.Join(dir, "relay.db"))
	jobID := s.call(t, "jobs_submit", map[string]any{"spec": seedSpec("file://"+repo, base, "deferred-1")})["jobId"].(string)

	// The ask goes to the runner, whose provider fails: it is handed to
	// the orchestrator.
	var item map[string]any
	require.Eventually(t, func() bool {
		items := s.call(t, "asks_list", map[string]any{"jobId": jobID})["items"].([]any)
		if len(items) == 0 {
			return false
		}
		item = items[0].(map[string]any)
		return item["route"] == "orchestrator"
	}, 30*time.Second, 50*time.Millisecond, "the ask is deferred to the orchestrator")
	require.GreaterOrEqual(t, calls.Load(), int64(2), "the provider was tried and retried")
	created, err := time.Parse(time.RFC3339Nano, item["createdAt"].(string))
	require.NoError(t, err)
	deadline, err := time.Parse(time.RFC3339Nano, item["deadlineAt"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, created.Add(300*time.Second), deadline, time.Second, "the orchestrator's deadline (askTimeoutSec)")

	// Well past the runner's deadline the job still waits for its answer.
	time.Sleep(time.Until(created.Add(3 * time.Second)))
	job := s.call(t, "jobs_get", map[string]any{"jobId": jobID})
	require.Equal(t, "WAITING_ON_ANSWER", job["state"], "job: %v", job)
	items := s.call(t, "asks_list", map[string]any{"jobId": jobID})["items"].([]any)
	require.Len(t, items, 1)
	require.Equal(t, "PENDING", items[0].(map[string]any)["status"])

	var events []struct {
		Type    string          `json:"type"`
		Payload json.RawMessage `json:"payload"`
	}
	require.NoError(t, json.Unmarshal([]byte(s.read(t, "mcp://jobs/"+jobID+"/events")), &events))
	var deferred []string
	for _, e := range events {
		if e.Type == "ask_deferred" {
			deferred = append(deferred, string(e.Payload))
		}
	}
	require.Len(t, deferred, 1, "events: %v", events)
	require.Contains(t, deferred[0], `"route":"orchestrator"`)
	require.Contains(t, deferred[0], "529")
	require.Contains(t, s.stderr.String(), "ask deferred")

	ans := s.call(t, "asks_answer", map[string]any{"askId": item["askId"], "answerText": "Hallo, relay!"})
	require.Equal(t, true, ans["created"])
	job = s.waitState(t, jobID, "SUCCEEDED", "FAILED")
	require.Equal(t, "SUCCEEDED", job["state"], "job: %v", job)
	require.Contains(t, s.read(t, "mcp://jobs/"+jobID+"/artifacts/patch.diff"), "+Hallo, relay!")
	s.assertOnlyJSONRPC(t)
}
