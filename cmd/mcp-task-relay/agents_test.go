package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"
)

// stub returns the absolute path of a coding-agent stub CLI.
func stub(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "internal", "executor", name, "testdata", "stubs", name))
	require.NoError(t, err)
	return p
}

// agentSpec is the seed spec with a writable sandbox (the seed's own says
// read-only, in which agents edit nothing).
func agentSpec(repo, base, key string) map[string]any {
	s := seedSpec("file://"+repo, base, key)
	s["execution"].(map[string]any)["sandbox"] = "workspace-write"
	return s
}

// agentServer starts the relay with one executor of kind (its stub as the
// binary) and extra executor env.
func agentServer(t *testing.T, kind string, env map[string]string) (*server, string, string) {
	t.Helper()
	dir := t.TempDir()
	repo, base := newRepo(t)
	var envYAML strings.Builder
	for k, v := range env {
		fmt.Fprintf(&envYAML, "      %s: %q\n", k, v)
	}
	cfg := writeConfig(t, dir, fmt.Sprintf(`server:
  dataDir: %q
executors:
  agent:
    kind: %s
    binary: %q
    env:
      STUB_MARKER: "1"
%s`, filepath.Join(dir, "data"), kind, stub(t, kind), envYAML.String()))
	s := startServer(t, "--config-dir", cfg, "--storage", "sqlite", "--sqlite", filepath.Join(dir, "relay.db"))
	return s, repo, base
}

func TestCodingAgentExecutors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind, session, edited string
		in, out               float64
		cost                  float64
	}{
		{kind: "codex", session: "0199a213-81c0-7800-8aa1-bbab2a035a53", edited: "codex-was-here.txt", in: 1200, out: 300},
		{kind: "claude", session: "stub-session-1", edited: "claude-was-here.txt", in: 900, out: 250, cost: 0.0421},
		{kind: "gemini", edited: "gemini-was-here.txt", in: 800, out: 120},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			s, repo, base := agentServer(t, tc.kind, nil)
			jobID := s.call(t, "jobs_submit", map[string]any{"spec": agentSpec(repo, base, tc.kind)})["jobId"].(string)
			job := s.waitState(t, jobID, "SUCCEEDED", "FAILED")
			require.Equal(t, "SUCCEEDED", job["state"], "job %v\nlogs: %s", job, s.read(t, "mcp://jobs/"+jobID+"/artifacts/logs.txt"))
			if tc.session != "" {
				require.Equal(t, tc.session, job["sessionId"])
			} else {
				require.NotEmpty(t, job["sessionId"])
			}
			usage := job["usage"].(map[string]any)
			require.EqualValues(t, tc.in, usage["inputTokens"])
			require.EqualValues(t, tc.out, usage["outputTokens"])
			if tc.cost > 0 {
				require.InDelta(t, tc.cost, usage["costUsd"], 1e-9)
			}
			out := s.read(t, "mcp://jobs/"+jobID+"/artifacts/out.md")
			require.Contains(t, out, "### TEST_PLAN")
			patch := s.read(t, "mcp://jobs/"+jobID+"/artifacts/patch.diff")
			require.Contains(t, patch, tc.edited)
			logs := s.read(t, "mcp://jobs/"+jobID+"/artifacts/logs.txt")
			require.Contains(t, logs, "--- executor output ---", "the condensed event log comes first")
		})
	}
}

func TestCodingAgentFailuresAreSummarized(t *testing.T) {
	t.Parallel()
	for kind, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"codex":  {map[string]string{"CODEX_STUB_FAIL": "1"}, "stub: model refused"},
		"claude": {map[string]string{"CLAUDE_STUB_FAIL": "max_turns"}, "error_max_turns"},
		"gemini": {map[string]string{"GEMINI_STUB_EXIT": "53"}, "turn limit"},
	} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			s, repo, base := agentServer(t, kind, tc.env)
			jobID := s.call(t, "jobs_submit", map[string]any{"spec": agentSpec(repo, base, kind+"-fail")})["jobId"].(string)
			job := s.waitState(t, jobID, "FAILED", "SUCCEEDED")
			require.Equal(t, "FAILED", job["state"])
			require.Equal(t, "EXECUTOR_ERROR", job["reasonCode"])
			require.Contains(t, job["summary"], tc.want)
		})
	}
}

// A follow-up starts from the parent's result, resumes its session, and
// reports its patch against the original baseline plus its own change.
func TestFollowupResumesSession(t *testing.T) {
	t.Parallel()
	s, repo, base := agentServer(t, "claude", map[string]string{"CLAUDE_STUB_SESSION": "sess-parent"})
	parent := s.call(t, "jobs_submit", map[string]any{"spec": agentSpec(repo, base, "followup")})["jobId"].(string)
	require.Equal(t, "SUCCEEDED", s.waitState(t, parent, "SUCCEEDED", "FAILED")["state"])

	follow := s.call(t, "jobs_followup", map[string]any{"jobId": parent, "instruction": "Now add a second line."})["jobId"].(string)
	job := s.waitState(t, follow, "SUCCEEDED", "FAILED")
	require.Equal(t, "SUCCEEDED", job["state"], "job %v\nlogs: %s", job, s.read(t, "mcp://jobs/"+follow+"/artifacts/logs.txt"))
	require.Equal(t, parent, job["parentJobId"])
	require.Equal(t, base, job["baselineCommit"])
	logs := s.read(t, "mcp://jobs/"+follow+"/artifacts/logs.txt")
	require.Contains(t, logs, "Resumed session sess-parent", "the stub saw --resume sess-parent")

	full := s.read(t, "mcp://jobs/"+follow+"/artifacts/patch.diff")
	inc := s.read(t, "mcp://jobs/"+follow+"/artifacts/incremental.diff")
	require.Equal(t, 2, strings.Count(full, "\n+edited by the claude stub"), "against the baseline: the parent's line and its own\n%s", full)
	require.Equal(t, 1, strings.Count(inc, "\n+edited by the claude stub"), "its own change only\n%s", inc)
}

// relayScript records the job's token and the relay's origin, then waits
// until the test is done with them.
const relayScript = `#!/bin/sh
printf '%%s\n%%s\n' "$TASK_RELAY_TOKEN" "$ASK_ANSWER_ORIGIN" > %[1]q.tmp
mv %[1]q.tmp %[1]q
while [ ! -f %[2]q ]; do sleep 0.05; done
`

// relay_approve on the executor MCP endpoint turns a permission prompt
// into an APPROVAL ask: allow when the orchestrator approves, deny when it
// rejects.
func TestRelayApproveOverExecutorMCP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	repo, base := newRepo(t)
	creds, done := filepath.Join(dir, "creds"), filepath.Join(dir, "done")
	script := writeScript(t, dir, "wait.sh", fmt.Sprintf(relayScript, creds, done))
	cfg := writeConfig(t, dir, fmt.Sprintf("server:\n  dataDir: %q\nexecutors:\n  w: {kind: command, argv: [%q]}\n", filepath.Join(dir, "data"), script))
	s := startServer(t, "--config-dir", cfg, "--storage", "memory")
	t.Cleanup(func() { _ = os.WriteFile(done, nil, 0o644) })
	jobID := s.call(t, "jobs_submit", map[string]any{"spec": seedSpec("file://"+repo, base, "approve")})["jobId"].(string)
	var token, origin string
	waitFor(t, func() bool {
		b, err := os.ReadFile(creds)
		if err != nil {
			return false
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		token, origin = lines[0], lines[1]
		return true
	})

	client := mcp.NewClient(&mcp.Implementation{Name: "claude-stub", Version: "0"}, nil)
	cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{
		Endpoint: origin + "/mcp", HTTPClient: &http.Client{Transport: bearer{token}},
	}, nil)
	require.NoError(t, err)
	defer cs.Close()

	decide := func(status string) map[string]any {
		t.Helper()
		res := make(chan *mcp.CallToolResult, 1)
		go func() {
			r, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "relay_approve",
				Arguments: map[string]any{"tool_name": "Bash", "input": map[string]any{"command": "rm -rf build"}, "tool_use_id": "toolu_1"}})
			if err != nil {
				panic(err)
			}
			res <- r
		}()
		var askID string
		waitFor(t, func() bool {
			items := s.call(t, "asks_list", map[string]any{"jobId": jobID})["items"].([]any)
			if len(items) == 0 {
				return false
			}
			it := items[0].(map[string]any)
			require.Equal(t, "APPROVAL", it["askType"])
			require.Contains(t, it["prompt"], "rm -rf build")
			askID = it["askId"].(string)
			return true
		})
		args := map[string]any{"askId": askID, "status": status}
		if status == "ANSWERED" {
			args["answerText"] = "approved"
		} else {
			args["error"] = "not in this job"
		}
		s.call(t, "asks_answer", args)
		select {
		case r := <-res:
			var out map[string]any
			require.NoError(t, json.Unmarshal([]byte(r.Content[0].(*mcp.TextContent).Text), &out))
			return out
		case <-time.After(30 * time.Second):
			t.Fatal("relay_approve did not return")
			return nil
		}
	}
	allow := decide("ANSWERED")
	require.Equal(t, "allow", allow["behavior"])
	require.Equal(t, map[string]any{"command": "rm -rf build"}, allow["updatedInput"])
	deny := decide("REJECTED")
	require.Equal(t, "deny", deny["behavior"])
	require.Contains(t, deny["message"], "not in this job")

	// Without a job token the endpoint refuses.
	resp, err := http.Post(origin+"/mcp", "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}
