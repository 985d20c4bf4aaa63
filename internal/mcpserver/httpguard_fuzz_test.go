package mcpserver

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// FuzzGuardHTTP posts arbitrary bodies to the guarded Streamable HTTP
// handler the relay serves at /mcp: nothing panics, every 400 carries a
// JSON-RPC error object, and a valid initialize still works afterwards.
func FuzzGuardHTTP(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"ping"}`, `garbage`, "\ufeff{}", `[]`, `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`,
		`{"jsonrpc":"2.0","id":1.5,"method":"ping"}`, `{"jsonrpc":"2.0","id":{},"method":"ping"}`,
		`{"jsonrpc":"1.0","id":1,"method":"ping"}`, strings.Repeat("[", 5000), `null`, `42`, `{"jsonrpc":"2.0","method":7}`,
	} {
		f.Add([]byte(seed))
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: "fuzz", Version: "0"}, &mcp.ServerOptions{Logger: slog.New(slog.DiscardHandler)})
	h := GuardHTTP(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv },
		&mcp.StreamableHTTPOptions{Stateless: true}), 0)
	post := func(body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := post(string(body))
		if rec.Code == http.StatusBadRequest && strings.Contains(rec.Header().Get("Content-Type"), "json") {
			var msg struct {
				JSONRPC string          `json:"jsonrpc"`
				Error   json.RawMessage `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &msg); err != nil || msg.JSONRPC != "2.0" || len(msg.Error) == 0 {
				t.Fatalf("400 without a JSON-RPC error for %q: %s", body, rec.Body.String())
			}
		}
		ok := post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"f","version":"1"}}}`)
		if ok.Code != http.StatusOK || !strings.Contains(ok.Body.String(), `"serverInfo"`) {
			t.Fatalf("initialize after %q: %d %s", body, ok.Code, ok.Body.String())
		}
	})
}
