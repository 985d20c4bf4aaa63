package mcpserver

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"
)

// httpPost posts one body to the MCP endpoint, in session (if any) and at
// protocol version legacyProtocol unless it is the initialize, and returns
// the status, the body and the session id header.
func httpPost(t *testing.T, url, session, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
	}
	if !strings.Contains(body, `"initialize"`) {
		req.Header.Set("MCP-Protocol-Version", legacyProtocol)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b), resp.Header.Get("Mcp-Session-Id")
}

// TestStreamableHTTPMalformedBodies records what the SDK's Streamable
// HTTP handler (stateful, as the service mounts it at /mcp, and stateless,
// as the executor endpoint is) does with the bodies that ended a stdio
// session: it answers each with a 4xx, panics on none, and the session and
// the server go on. (Its 400 bodies are plain text, not JSON-RPC errors;
// an id like 1.5 is truncated to 1 rather than refused.)
func TestStreamableHTTPMalformedBodies(t *testing.T) {
	t.Parallel()
	for _, stateless := range []bool{false, true} {
		t.Run(map[bool]string{false: "stateful", true: "stateless"}[stateless], func(t *testing.T) {
			t.Parallel()
			srv, err := New(Config{Jobs: newFakeJobs(), Logger: slog.New(slog.DiscardHandler), Version: "test"})
			require.NoError(t, err)
			h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv.MCP() },
				&mcp.StreamableHTTPOptions{Stateless: stateless, Logger: slog.New(slog.DiscardHandler)})
			ts := httptest.NewServer(h)
			t.Cleanup(ts.Close)

			session := ""
			if !stateless {
				code, body, sid := httpPost(t, ts.URL, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"`+legacyProtocol+`","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}`)
				require.Equal(t, http.StatusOK, code, body)
				require.NotEmpty(t, sid)
				session = sid
				code, body, _ = httpPost(t, ts.URL, session, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
				require.Equal(t, http.StatusAccepted, code, body)
			}
			deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
			for _, c := range []struct {
				name string
				body string
				want int
			}{
				{"garbage", "this is not json", http.StatusBadRequest},
				{"BOM", "\xef\xbb\xbf" + `{"jsonrpc":"2.0","id":2,"method":"ping"}`, http.StatusBadRequest},
				{"empty batch", "[]", http.StatusBadRequest},
				{"batch", `[{"jsonrpc":"2.0","id":3,"method":"ping"}]`, http.StatusBadRequest},
				{"id object", `{"jsonrpc":"2.0","id":{},"method":"ping"}`, http.StatusBadRequest},
				{"id array", `{"jsonrpc":"2.0","id":[],"method":"ping"}`, http.StatusBadRequest},
				{"id bool", `{"jsonrpc":"2.0","id":true,"method":"ping"}`, http.StatusBadRequest},
				{"missing jsonrpc", `{"id":4,"method":"ping"}`, http.StatusBadRequest},
				{"jsonrpc 1.0", `{"jsonrpc":"1.0","id":4,"method":"ping"}`, http.StatusBadRequest},
				{"method not a string", `{"jsonrpc":"2.0","id":5,"method":5}`, http.StatusBadRequest},
				{"deep nesting 10k", `{"jsonrpc":"2.0","id":6,"method":"ping","params":{"x":` + deep + `}}`, http.StatusBadRequest},
				{"5 MiB body", `{"jsonrpc":"2.0","id":7,"method":"ping","params":{"pad":"` + strings.Repeat("a", 5<<20) + `"}}`, http.StatusRequestEntityTooLarge},
				{"scalar", "42", http.StatusBadRequest},
				{"null", "null", http.StatusBadRequest},
			} {
				code, body, _ := httpPost(t, ts.URL, session, c.body)
				require.Equal(t, c.want, code, "%s: %.300s", c.name, body)
				t.Logf("%s: %d %.120q", c.name, code, body)

				code, body, _ = httpPost(t, ts.URL, session, `{"jsonrpc":"2.0","id":"after","method":"tools/list"}`)
				require.Equal(t, http.StatusOK, code, "tools/list after %s: %.300s", c.name, body)
				require.True(t, bytes.Contains([]byte(body), []byte("jobs_submit")), "tools/list after %s: %.300s", c.name, body)
			}
		})
	}
}

// TestGuardHTTP checks the same bodies through GuardHTTP: each bad one
// gets a 400 whose body is the JSON-RPC error LineTransport would write,
// and the session and the server go on.
func TestGuardHTTP(t *testing.T) {
	t.Parallel()
	srv, err := New(Config{Jobs: newFakeJobs(), Logger: slog.New(slog.DiscardHandler), Version: "test"})
	require.NoError(t, err)
	h := GuardHTTP(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv.MCP() },
		&mcp.StreamableHTTPOptions{Logger: slog.New(slog.DiscardHandler)}), 0)
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	code, body, session := httpPost(t, ts.URL, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"`+legacyProtocol+`","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}`)
	require.Equal(t, http.StatusOK, code, body)
	require.NotEmpty(t, session)
	code, body, _ = httpPost(t, ts.URL, session, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	require.Equal(t, http.StatusAccepted, code, body)

	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	for _, c := range []struct {
		name   string
		body   string
		status int
		code   int64  // JSON-RPC error code; 0: no JSON-RPC body
		id     string // the error's id
	}{
		{"garbage", "this is not json", 400, -32700, "null"},
		{"BOM", "\xef\xbb\xbf" + `{"jsonrpc":"2.0","id":2,"method":"ping"}`, 400, -32700, "null"},
		{"empty batch", "[]", 400, -32600, "null"},
		{"batch", `[{"jsonrpc":"2.0","id":3,"method":"ping"}]`, 400, -32600, "null"},
		{"id object", `{"jsonrpc":"2.0","id":{},"method":"ping"}`, 400, -32600, "null"},
		{"id array", `{"jsonrpc":"2.0","id":[],"method":"ping"}`, 400, -32600, "null"},
		{"id bool", `{"jsonrpc":"2.0","id":true,"method":"ping"}`, 400, -32600, "null"},
		{"id float", `{"jsonrpc":"2.0","id":1.5,"method":"ping"}`, 400, -32600, "null"},
		{"missing jsonrpc", `{"id":4,"method":"ping"}`, 400, -32600, "4"},
		{"jsonrpc 1.0", `{"jsonrpc":"1.0","id":"four","method":"ping"}`, 400, -32600, `"four"`},
		{"method not a string", `{"jsonrpc":"2.0","id":5,"method":5}`, 400, -32600, "5"},
		{"deep nesting 10k", `{"jsonrpc":"2.0","id":6,"method":"ping","params":{"x":` + deep + `}}`, 400, -32600, "6"},
		{"scalar", "42", 400, -32600, "null"},
		{"null", "null", 400, -32600, "null"},
		{"error response with null id", `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}`, 202, 0, ""},
		{"5 MiB body", `{"jsonrpc":"2.0","id":7,"method":"ping","params":{"pad":"` + strings.Repeat("a", 5<<20) + `"}}`, 413, 0, ""},
		{"valid ping", `{"jsonrpc":"2.0","id":8,"method":"ping"}`, 200, 0, ""},
	} {
		code, body, _ := httpPost(t, ts.URL, session, c.body)
		require.Equal(t, c.status, code, "%s: %.300s", c.name, body)
		if c.code != 0 {
			var r reply
			require.NoError(t, json.Unmarshal([]byte(body), &r), "%s: %.300s", c.name, body)
			require.Equal(t, c.id, string(r.ID), "%s: %.300s", c.name, body)
			require.NotNil(t, r.Error, "%s: %.300s", c.name, body)
			require.Equal(t, c.code, r.Error.Code, "%s: %.300s", c.name, body)
		}
		code, body, _ = httpPost(t, ts.URL, session, `{"jsonrpc":"2.0","id":"after","method":"tools/list"}`)
		require.Equal(t, http.StatusOK, code, "tools/list after %s: %.300s", c.name, body)
		require.Contains(t, body, "jobs_submit", "tools/list after %s", c.name)
	}
}
