package codextest

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// post sends a Responses API request to s and returns the events of the
// stream.
func post(t *testing.T, s *Server, body string) []map[string]any {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.BaseURL()+"/responses", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Session-Id", "th-1")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	var events []map[string]any
	sc := bufio.NewScanner(resp.Body)
	name := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			var ev map[string]any
			require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev))
			require.Equal(t, name, ev["type"], "the event name is its type")
			events = append(events, ev)
		}
	}
	require.NoError(t, sc.Err())
	return events
}

func types(events []map[string]any) []string {
	var out []string
	for _, ev := range events {
		out = append(out, ev["type"].(string))
	}
	return out
}

func TestServerStreamsTurns(t *testing.T) {
	t.Parallel()
	s := New(t,
		ReplyUsage(Usage{Input: 7, Cached: 3, Output: 2, Reasoning: 1}, ApplyPatch("c1", "*** Begin Patch\n*** End Patch\n"),
			ExecCommand("c2", "ls"), MCPCall("c3", "task-relay-job", "relay_ask", map[string]any{"type": "CLARIFICATION"})),
	)
	s.Enqueue(Reply(Message("done")), Fail("overloaded"))
	require.Equal(t, 3, s.Pending())

	events := post(t, s, `{"model":"gpt-5.5","input":[],"tools":[{"type":"function","name":"exec_command"},{"type":"tool_search"}]}`)
	require.Equal(t, []string{"response.created",
		"response.output_item.added", "response.output_item.done",
		"response.output_item.added", "response.output_item.done",
		"response.output_item.added", "response.output_item.done",
		"response.completed"}, types(events))
	patch := events[2]["item"].(map[string]any)
	require.Equal(t, map[string]any{"id": "resp_0_item_0", "type": "custom_tool_call", "status": "completed", "call_id": "c1",
		"name": "apply_patch", "input": "*** Begin Patch\n*** End Patch\n"}, patch)
	require.Equal(t, "in_progress", events[1]["item"].(map[string]any)["status"])
	exec := events[4]["item"].(map[string]any)
	require.Equal(t, "exec_command", exec["name"])
	require.JSONEq(t, `{"cmd":"ls"}`, exec["arguments"].(string))
	mcp := events[6]["item"].(map[string]any)
	require.Equal(t, "mcp__task_relay_job", mcp["namespace"])
	require.Equal(t, "relay_ask", mcp["name"])
	usage := events[7]["response"].(map[string]any)["usage"].(map[string]any)
	require.EqualValues(t, 7, usage["input_tokens"])
	require.EqualValues(t, 3, usage["input_tokens_details"].(map[string]any)["cached_tokens"])
	require.EqualValues(t, 2, usage["output_tokens"])
	require.EqualValues(t, 1, usage["output_tokens_details"].(map[string]any)["reasoning_tokens"])

	// The next request carries the conversation so far.
	body := `{"model":"gpt-5.5","input":[
		{"type":"message","role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_text","text":"b"}]},
		{"type":"custom_tool_call","call_id":"c1","name":"apply_patch","input":"..."},
		{"type":"custom_tool_call_output","call_id":"c1","output":"Success."},
		{"type":"function_call_output","call_id":"c3","output":[{"type":"input_text","text":"Wall time: 1s"},{"type":"input_text","text":"{\"status\":\"ANSWERED\"}"}]},
		{"type":"tool_search_output","call_id":"c4","tools":[{"type":"namespace","name":"mcp__x"}]},
		{"type":"message","role":"assistant","content":[{"type":"output_text","text":"ok"}]}]}`
	events = post(t, s, body)
	require.Equal(t, []string{"response.created", "response.output_item.added", "response.output_text.delta",
		"response.output_item.done", "response.completed"}, types(events))
	require.Equal(t, "done", events[2]["delta"])

	events = post(t, s, `{"model":"gpt-5.5","input":[]}`)
	require.Equal(t, []string{"response.created", "response.failed"}, types(events))
	require.Equal(t, "overloaded", events[1]["response"].(map[string]any)["error"].(map[string]any)["message"])
	require.Empty(t, s.Unexpected())

	events = post(t, s, `{"model":"gpt-5.5","input":[]}`)
	require.Equal(t, "response.completed", events[len(events)-1]["type"])
	require.Equal(t, []string{"request 3: no scripted turn left"}, s.Unexpected())
	require.Zero(t, s.Pending())

	reqs := s.Requests()
	require.Len(t, reqs, 4)
	require.Equal(t, "th-1", reqs[0].SessionID())
	require.Equal(t, "gpt-5.5", reqs[0].Model)
	require.True(t, reqs[0].HasTool("exec_command"))
	require.True(t, reqs[0].HasTool("tool_search"))
	require.False(t, reqs[0].HasTool("apply_patch"))
	r := reqs[1]
	require.Equal(t, []string{"a\nb"}, r.Texts("user"))
	require.Equal(t, []string{"ok"}, r.Texts("assistant"))
	out, ok := r.ToolOutput("c1")
	require.True(t, ok)
	require.Equal(t, "Success.", out)
	out, _ = r.ToolOutput("c3")
	require.Equal(t, "Wall time: 1s\n{\"status\":\"ANSWERED\"}", out)
	out, _ = r.ToolOutput("c4")
	require.JSONEq(t, `[{"type":"namespace","name":"mcp__x"}]`, out)
	_, ok = r.ToolOutput("c9")
	require.False(t, ok)

	// Served counts the completed responses, DefaultUsage where a turn
	// set none.
	require.Equal(t, []Usage{{Input: 7, Cached: 3, Output: 2, Reasoning: 1}, DefaultUsage, DefaultUsage}, s.Served())
	require.Equal(t, DefaultUsage.Plus(DefaultUsage), s.ServedTotal(1))
}

func TestServerRecordsOutbound(t *testing.T) {
	t.Parallel()
	s := New(t)
	proxy, err := url.Parse(s.URL())
	require.NoError(t, err)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
	_, err = client.Get("https://api.openai.com/v1/models")
	require.Error(t, err, "the proxy refuses CONNECT")
	resp, err := client.Get("http://telemetry.invalid/collect")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, err = http.Get(s.URL() + "/v1/models")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Equal(t, []string{"CONNECT api.openai.com:443", "GET http://telemetry.invalid/collect", "GET /v1/models"}, s.Outbound())
	require.Empty(t, s.Requests())
}

func TestNewHome(t *testing.T) {
	t.Parallel()
	s := New(t)
	h := s.NewHome(t, "")
	require.Equal(t, h.Dir, h.Env["HOME"])
	require.Equal(t, filepath.Join(h.Dir, ".codex"), h.Env["CODEX_HOME"])
	require.Equal(t, Key, h.Env[KeyEnv])
	require.Equal(t, s.URL(), h.Env["HTTPS_PROXY"])
	require.Contains(t, h.Env["NO_PROXY"], "127.0.0.1")
	cfg, err := os.ReadFile(filepath.Join(h.CodexHome, "config.toml"))
	require.NoError(t, err)
	require.Equal(t, s.ConfigTOML(Model), string(cfg))
	for _, want := range []string{
		`model = "gpt-5.5"`, `model_provider = "codextest"`, `base_url = "` + s.BaseURL() + `"`,
		`wire_api = "responses"`, `env_key = "CODEX_FAKE_API_KEY"`, "check_for_update_on_startup = false",
		"[analytics]\nenabled = false", "[feedback]\nenabled = false", "[features]\nplugins = false",
	} {
		require.Contains(t, string(cfg), want)
	}
	require.Contains(t, s.ConfigTOML("other"), `model = "other"`)
}
