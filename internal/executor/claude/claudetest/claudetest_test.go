package claudetest

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// post sends a Messages API request and returns the response.
func post(t *testing.T, s *Server, key string, body map[string]any) *http.Response {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, s.URL()+"/v1/messages?beta=true", strings.NewReader(string(b)))
	require.NoError(t, err)
	req.Header.Set("x-api-key", key)
	req.Header.Set("anthropic-version", "2023-06-01")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = res.Body.Close() })
	return res
}

// events reads server-sent events: their names and data.
func events(t *testing.T, r io.Reader) ([]string, []map[string]any) {
	t.Helper()
	var names []string
	var data []map[string]any
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if name, ok := strings.CutPrefix(line, "event: "); ok {
			names = append(names, name)
		}
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(d), &m))
			data = append(data, m)
		}
	}
	return names, data
}

func TestServerStreamsScriptedTurns(t *testing.T) {
	t.Parallel()
	s := New(t)
	s.Script(
		Turn{Text: "Writing.", Calls: []Call{Write(InCwd("a.txt"), "x")}, Usage: Usage{Input: 10, Output: 20, CacheRead: 30, CacheCreation: 40}},
		Turn{Text: "Done."},
	)
	body := map[string]any{
		"model": Model, "stream": true, "max_tokens": 1000,
		"system":   []any{map[string]any{"type": "text", "text": "You are Claude Code.\n - Primary working directory: /ws/repo\n"}},
		"tools":    []any{map[string]any{"name": "Write"}, map[string]any{"name": "Bash"}},
		"messages": []any{map[string]any{"role": "user", "content": "Do it."}},
	}
	res := post(t, s, APIKey, body)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	names, data := events(t, res.Body)
	require.Equal(t, []string{"message_start", "content_block_start", "content_block_delta", "content_block_stop",
		"content_block_start", "content_block_delta", "content_block_delta", "content_block_stop", "message_delta", "message_stop"}, names)
	usage := data[0]["message"].(map[string]any)["usage"].(map[string]any)
	require.Equal(t, map[string]any{"input_tokens": 10.0, "output_tokens": 1.0, "cache_read_input_tokens": 30.0, "cache_creation_input_tokens": 40.0}, usage)
	tool := data[4]["content_block"].(map[string]any)
	require.Equal(t, "Write", tool["name"])
	input := data[5]["delta"].(map[string]any)["partial_json"].(string) + data[6]["delta"].(map[string]any)["partial_json"].(string)
	require.JSONEq(t, `{"file_path":"/ws/repo/a.txt","content":"x"}`, input, "Cwd is the system prompt's working directory")
	require.Equal(t, "tool_use", data[8]["delta"].(map[string]any)["stop_reason"])
	require.Equal(t, 20.0, data[8]["usage"].(map[string]any)["output_tokens"])

	body["messages"] = []any{
		map[string]any{"role": "user", "content": "Do it."},
		map[string]any{"role": "assistant", "content": []any{map[string]any{"type": "tool_use", "id": tool["id"], "name": "Write", "input": map[string]any{"file_path": "/ws/repo/a.txt"}}}},
		map[string]any{"role": "user", "content": []any{map[string]any{"type": "tool_result", "tool_use_id": tool["id"], "content": []any{map[string]any{"type": "text", "text": "created"}}}}},
	}
	res = post(t, s, APIKey, body)
	names, _ = events(t, res.Body)
	require.Equal(t, "message_stop", names[len(names)-1])

	reqs := s.Scripted()
	require.Len(t, reqs, 2)
	require.Equal(t, "/ws/repo", reqs[0].Cwd)
	require.Equal(t, []string{"Write", "Bash"}, reqs[0].Tools)
	require.Equal(t, "user: Do it.\nassistant: call Write {\"file_path\":\"/ws/repo/a.txt\"}\nuser: result Write created\n", reqs[1].Transcript())
	got, ok := reqs[1].Result("Write")
	require.True(t, ok)
	require.Equal(t, "created", got)
	require.Equal(t, Usage{Input: 10 + DefaultUsage.Input, Output: 20 + DefaultUsage.Output, CacheRead: 30 + DefaultUsage.CacheRead, CacheCreation: 40}, s.Usage(0))
	require.InDelta(t, (10*3+20*15+30*0.3+40*3.75)/1e6, Usage{Input: 10, Output: 20, CacheRead: 30, CacheCreation: 40}.CostUSD(), 1e-12)
	require.Zero(t, s.Pending())
	require.Empty(t, s.Problems())
}

func TestServerProblems(t *testing.T) {
	t.Parallel()
	s := New(t)
	body := map[string]any{"model": Model, "stream": true, "tools": []any{map[string]any{"name": "Bash"}},
		"messages": []any{map[string]any{"role": "user", "content": "hi"}}}
	res := post(t, s, "wrong", body)
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)

	res = post(t, s, APIKey, body)
	require.Equal(t, http.StatusOK, res.StatusCode, "no turn left: a text, and a problem")

	s.Script(Turn{Error: &APIError{Status: 400, Type: "invalid_request_error", Message: "too long"}})
	res = post(t, s, APIKey, body)
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.JSONEq(t, `{"type":"error","error":{"type":"invalid_request_error","message":"too long"}}`, string(b))

	side := post(t, s, APIKey, map[string]any{"model": "claude-haiku-4-5", "messages": []any{map[string]any{"role": "user", "content": "title?"}}})
	require.Equal(t, http.StatusOK, side.StatusCode)
	var msg map[string]any
	require.NoError(t, json.NewDecoder(side.Body).Decode(&msg))
	require.Equal(t, "end_turn", msg["stop_reason"], "a side query gets a short answer")

	proxy, err := url.Parse(s.URL())
	require.NoError(t, err)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
	res, err = client.Get("http://api.anthropic.com/api/hello")
	require.NoError(t, err)
	_ = res.Body.Close()
	require.Equal(t, http.StatusForbidden, res.StatusCode)

	problems := s.Problems()
	require.Len(t, problems, 3)
	require.Contains(t, problems[0], "without the API key")
	require.Contains(t, problems[1], "no scripted turn left")
	require.Contains(t, problems[2], "tried to reach GET api.anthropic.com/api/hello")
	require.Len(t, s.Scripted(), 2, "the turn-less and the error request")
}
