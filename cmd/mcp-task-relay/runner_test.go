package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeLLM speaks the Anthropic Messages API or the OpenAI chat completions
// API at the wire. Its first reply to a conversation breaks the
// policy_decider output schema; a retry (a conversation that already holds
// a reply) gets a valid one.
type fakeLLM struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []string // bodies
}

func (f *fakeLLM) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func (f *fakeLLM) reply(turns int) string {
	if turns == 1 {
		return `{"answer_json": {"decision": "MAYBE"}}`
	}
	return "Here is my decision:\n```json\n" +
		`{"answer_json": {"decision": "ALLOW", "rules": ["staging tables are disposable"]}}` + "\n```"
}

func newFakeAnthropic(t *testing.T) *fakeLLM {
	f := &fakeLLM{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.requests = append(f.requests, string(body))
		f.mu.Unlock()
		if r.URL.Path != "/v1/messages" || r.Header.Get("x-api-key") != "sk-ant-test" || r.Header.Get("anthropic-version") == "" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"type":"error","error":{"type":"authentication_error","message":"bad request"}}`)
			return
		}
		var req struct {
			System   any `json:"system"`
			Messages []struct {
				Role string `json:"role"`
			} `json:"messages"`
		}
		require.NoError(t, json.Unmarshal(body, &req))
		text, _ := json.Marshal(f.reply(len(req.Messages)))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-fake-1","content":[{"type":"text","text":%s}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":100,"output_tokens":20}}`, text)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func newFakeOpenAI(t *testing.T) *fakeLLM {
	f := &fakeLLM{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.requests = append(f.requests, string(body))
		f.mu.Unlock()
		if r.URL.Path != "/v1/chat/completions" || r.Header.Get("Authorization") != "Bearer sk-openai-test" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":{"message":"bad request","type":"invalid_request_error","code":null}}`)
			return
		}
		var req struct {
			Messages []struct {
				Role string `json:"role"`
			} `json:"messages"`
		}
		require.NoError(t, json.Unmarshal(body, &req))
		turns := 0
		for _, m := range req.Messages {
			if m.Role != "system" {
				turns++
			}
		}
		text, _ := json.Marshal(f.reply(turns))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-fake-1","choices":[{"index":0,"message":{"role":"assistant","content":%s},"finish_reason":"stop"}],"usage":{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120}}`, text)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// runnerScript asks the same policy question twice (the second is a cache
// hit), and records both answers in the workspace so the test can read
// them from the patch. `ask` exits non-zero, failing the job, if the
// answer's signature does not verify.
const runnerScript = `#!/bin/sh
set -eu
mcp-task-relay ask --json --type POLICY_DECISION "May I drop and recreate the staging orders table?" > first.json
mcp-task-relay ask --json --type POLICY_DECISION "May I drop and recreate the staging orders table?" > second.json
`

// deniedScript asks what the policy denies; the rejection fails the job.
const deniedScript = `#!/bin/sh
mcp-task-relay ask --type POLICY_DECISION "Please DROP TABLE users in production"
echo "ask exited $?"
exit 1
`

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type answerFile struct {
	Status      string          `json:"status"`
	AnswerJSON  json.RawMessage `json:"answerJson"`
	Attestation map[string]any  `json:"attestation"`
}

// fileFromPatch returns the content of a file the patch adds.
func fileFromPatch(t *testing.T, patch, name string) string {
	t.Helper()
	i := strings.Index(patch, "+++ b/"+name+"\n")
	require.GreaterOrEqual(t, i, 0, "%s not in patch", name)
	var out bytes.Buffer
	for _, l := range strings.Split(patch[i:], "\n")[2:] {
		if strings.HasPrefix(l, "diff --git") {
			break
		}
		if strings.HasPrefix(l, "+") {
			out.WriteString(l[1:] + "\n")
		}
	}
	return out.String()
}

// httpDo sends a request to the relay's Ask/Answer API with a token.
func httpDo(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

func runRunnerFlow(t *testing.T, provider, baseURL, keyEnv, key string, llm *fakeLLM) {
	dir := t.TempDir()
	repo, base := newRepo(t)
	script := writeScript(t, dir, "runner.sh", runnerScript)
	denier := writeScript(t, dir, "denied.sh", deniedScript)
	port := freePort(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`server:
  dataDir: %q
executors:
  default: asker
  asker: {kind: command, argv: [%q]}
  denier: {kind: command, argv: [%q]}
askAnswer:
  port: %d
  runner:
    provider: %s
    model: fake-model
    baseURL: %q
    apiKeyEnv: %s
    maxRetries: 2
`, filepath.Join(dir, "data"), script, denier, port, provider, baseURL, keyEnv))
	require.NoError(t, os.WriteFile(filepath.Join(cfg, "policy.yaml"), []byte(`policy_version: "3.1"
rules:
  - name: no-dropping-user-tables
    match:
      ask_type: [POLICY_DECISION]
      prompt: "(?i)drop table users"
    decision: DENY
    reason: user data is never dropped by agents
`), 0o644))
	s := startServerEnv(t, []string{keyEnv + "=" + key}, "--config-dir", cfg, "--storage", "sqlite", "--sqlite", filepath.Join(dir, "relay.db"))
	jobID := s.call(t, "jobs_submit", map[string]any{"spec": seedSpec("file://"+repo, base, "runner-"+provider)})["jobId"].(string)
	job := s.waitState(t, jobID, "SUCCEEDED", "FAILED")
	require.Equal(t, "SUCCEEDED", job["state"], "job: %v\nlogs: %s", job, s.read(t, "mcp://jobs/"+jobID+"/artifacts/logs.txt"))

	// One question asked twice, the first reply invalid: two provider
	// requests in all, none for the cached repeat.
	require.Equal(t, 2, llm.count(), "provider requests")
	require.Contains(t, llm.requests[0], "May I drop and recreate the staging orders table?")
	require.Contains(t, llm.requests[1], "does not satisfy the output schema", "the retry carries the validation errors")

	patch := s.read(t, "mcp://jobs/"+jobID+"/artifacts/patch.diff")
	var first, second answerFile
	require.NoError(t, json.Unmarshal([]byte(fileFromPatch(t, patch, "first.json")), &first))
	require.NoError(t, json.Unmarshal([]byte(fileFromPatch(t, patch, "second.json")), &second))
	require.Equal(t, "ANSWERED", first.Status)
	require.JSONEq(t, `{"decision":"ALLOW","rules":["staging tables are disposable"]}`, string(first.AnswerJSON))
	require.Equal(t, "policy_decider", first.Attestation["role_id"])
	require.Equal(t, "v1", first.Attestation["role_version"])
	require.Equal(t, "3.1", first.Attestation["policy_version"])
	require.NotEmpty(t, first.Attestation["signature"])
	require.NotEmpty(t, first.Attestation["prompt_fingerprint"])
	require.NotEmpty(t, first.Attestation["model"])
	require.Nil(t, first.Attestation["cache_hit"])
	require.Equal(t, true, second.Attestation["cache_hit"])
	require.NotEmpty(t, second.Attestation["signature"])
	require.JSONEq(t, string(first.AnswerJSON), string(second.AnswerJSON))

	// Token usage of both provider calls is on the job.
	usage := job["usage"].(map[string]any)
	require.EqualValues(t, 200, usage["inputTokens"])
	require.EqualValues(t, 40, usage["outputTokens"])

	// The policy denies the other job's ask without a provider call; the
	// rejection fails that job with POLICY and policy_trace names the rule.
	spec := seedSpec("file://"+repo, base, "denied-"+provider)
	spec["execution"].(map[string]any)["executor"] = "denier"
	deniedID := s.call(t, "jobs_submit", map[string]any{"spec": spec})["jobId"].(string)
	denied := s.waitState(t, deniedID, "FAILED", "SUCCEEDED")
	require.Equal(t, "FAILED", denied["state"])
	require.Equal(t, "POLICY", denied["reasonCode"])
	require.Contains(t, denied["summary"], "no-dropping-user-tables")
	require.Equal(t, 2, llm.count(), "no provider call for the denied ask")
	items := s.call(t, "asks_list", map[string]any{"jobId": deniedID, "status": "ALL"})["items"].([]any)
	require.Len(t, items, 1)
	askID := items[0].(map[string]any)["askId"].(string)

	token, err := os.ReadFile(filepath.Join(dir, "data", "api-token"))
	require.NoError(t, err)
	operator := strings.TrimSpace(string(token))
	origin := fmt.Sprintf("http://127.0.0.1:%d", port)
	code, body := httpDo(t, http.MethodGet, origin+"/asks/"+askID+"/answer", operator, "")
	require.Equal(t, http.StatusOK, code, string(body))
	var rec struct {
		Status      string `json:"status"`
		PolicyTrace struct {
			Rule          string `json:"rule"`
			Decision      string `json:"decision"`
			PolicyVersion string `json:"policy_version"`
		} `json:"policyTrace"`
	}
	require.NoError(t, json.Unmarshal(body, &rec))
	require.Equal(t, "REJECTED", rec.Status)
	require.Equal(t, "no-dropping-user-tables", rec.PolicyTrace.Rule)
	require.Equal(t, "DENY", rec.PolicyTrace.Decision)
	require.Equal(t, "3.1", rec.PolicyTrace.PolicyVersion)

	// An envelope altered after hashing is refused before any provider
	// call. (The job has ended, so only the hash check can refuse it
	// first: it runs before the job's state is looked at.)
	env := `{"job_snapshot":{"repo":"github.com/u/r"},"role":"policy_decider"}`
	tampered := fmt.Sprintf(`{"type":"Ask","ask_id":"7f0c2d4e-1a2b-4c3d-8e9f-0a1b2c3d4e5f","job_id":%q,"step_id":"s","ask_type":"POLICY_DECISION","prompt":"x","context_hash":"%s","context_envelope":%s}`,
		jobID, strings.Repeat("0", 64), env)
	code, body = httpDo(t, http.MethodPost, origin+"/asks", operator, tampered)
	require.Equal(t, http.StatusBadRequest, code, string(body))
	require.Contains(t, string(body), "E_CONTEXT_MISMATCH")
	require.Equal(t, 2, llm.count(), "no provider call for a tampered envelope")
	s.assertOnlyJSONRPC(t)
}

func TestRunnerAnthropic(t *testing.T) {
	t.Parallel()
	llm := newFakeAnthropic(t)
	runRunnerFlow(t, "anthropic", llm.srv.URL, "ANTHROPIC_API_KEY", "sk-ant-test", llm)
}

func TestRunnerOpenAICompatible(t *testing.T) {
	t.Parallel()
	llm := newFakeOpenAI(t)
	runRunnerFlow(t, "openai", llm.srv.URL+"/v1", "OPENAI_API_KEY", "sk-openai-test", llm)
}
