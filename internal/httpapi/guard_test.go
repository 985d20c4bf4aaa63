package httpapi_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/httpapi"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// hostReq is a request with a chosen Host header, as a browser sends
// after DNS rebinding (the name the page was loaded from, pointing at
// 127.0.0.1).
type hostReq struct {
	method, path, host, token, body string
	header                          map[string]string
}

func (b *bundle) sendHost(t *testing.T, q hostReq) response {
	t.Helper()
	var rd io.Reader
	if q.body != "" {
		rd = strings.NewReader(q.body)
	}
	req, err := http.NewRequestWithContext(context.Background(), q.method, b.url+q.path, rd)
	require.NoError(t, err)
	if q.host != "" {
		req.Host = q.host
	}
	if q.token != "" {
		req.Header.Set("Authorization", "Bearer "+q.token)
	}
	for k, v := range q.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

func (b *bundle) port(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(b.url)
	require.NoError(t, err)
	return u.Port()
}

// echoMCP stands in for an MCP endpoint: it answers 200 with its body.
var echoMCP = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	data, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(data)
})

// TestDNSRebindingAuthNone reproduces the finding: with auth none, a web
// page on a rebound name (its Host and Origin are the attacker's) could
// list and answer asks. Every route now refuses a Host that is not a name
// of the relay, whatever the method.
func TestDNSRebindingAuthNone(t *testing.T) {
	t.Parallel()
	b := setup(t, withConfig(func(c *httpapi.Config) {
		c.AuthNone, c.Tokens = true, nil
		c.ClientMCP = echoMCP
	}))
	job := b.running(t)
	a := newAsk(t, job.ID)
	b.postAsk(t, "", a)

	evil := "rebind.attacker.example:" + b.port(t)
	page := map[string]string{"Origin": "http://" + evil}
	for _, q := range []hostReq{
		{method: http.MethodGet, path: "/asks"},
		{method: http.MethodGet, path: "/jobs/" + job.ID + "/asks"},
		{method: http.MethodGet, path: "/jobs/" + job.ID + "/events"},
		{method: http.MethodGet, path: "/asks/" + a.AskID + "/answer"},
		{method: http.MethodPost, path: "/answers", body: `{"ask_id":"` + a.AskID + `","status":"ANSWERED","answer_text":"rm -rf /"}`},
		{method: http.MethodPost, path: "/jobs/" + job.ID + "/cancel"},
		{method: http.MethodPost, path: "/mcp", body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`},
		{method: http.MethodGet, path: "/healthz"},
	} {
		for _, withOrigin := range []bool{false, true} {
			q := q
			q.host = evil
			q.header = map[string]string{"Content-Type": "text/plain"}
			if q.body == "" {
				q.header = map[string]string{}
			}
			if withOrigin {
				q.header["Origin"] = page["Origin"]
			}
			r := b.sendHost(t, q)
			e := r.requireError(t, 403, relaytype.CodeForbidden, "Host")
			require.Contains(t, e.Message, "allowedHosts", "%s %s", q.method, q.path)
		}
	}
	// Nothing was answered or canceled.
	require.Equal(t, relaytype.StateWaitingOnAnswer, b.state(t, job.ID).State)
	rec, err := b.asks.AnswerOf(context.Background(), a.AskID)
	require.NoError(t, err)
	require.Nil(t, rec)
}

func TestHostCheck(t *testing.T) {
	t.Parallel()
	b := setup(t, withConfig(func(c *httpapi.Config) {
		c.BindHost = "relay-box"
		c.AllowedHosts = []string{"relay.test", "proxy.test:8443", "[fd00::1]"}
	}))
	port := b.port(t)
	for host, want := range map[string]int{
		"127.0.0.1:" + port:        200,
		"localhost:" + port:        200,
		"LOCALHOST.:" + port:       200,
		"[::1]:" + port:            200,
		"relay-box:" + port:        200, // BindHost
		"relay.test:" + port:       200, // AllowedHosts, at the listener's port
		"proxy.test:8443":          200, // AllowedHosts with a port
		"[fd00::1]:" + port:        200,
		"127.0.0.1":                403, // port 80
		"localhost:1":              403,
		"127.0.0.2:" + port:        403,
		"relay.test:1":             403,
		"proxy.test:" + port:       403,
		"evil.example:" + port:     403,
		"localhost.evil:" + port:   403,
		"127.0.0.1.nip.io:" + port: 403,
		"localhost:" + port + "0":  403,
		"localhost:99999":          403,
	} {
		r := b.sendHost(t, hostReq{method: http.MethodGet, path: "/healthz", host: host})
		require.Equal(t, want, r.status, "Host %q: %s", host, r.body)
		if want == 403 {
			r.requireError(t, 403, relaytype.CodeForbidden, "Host")
		}
	}
}

// A listener that is not loopback accepts every Host unless AllowedHosts
// is set; token auth guards it.
func TestHostCheckOffLoopback(t *testing.T) {
	t.Parallel()
	for _, allowed := range []bool{false, true} {
		b := newStack(t, withConfig(func(c *httpapi.Config) {
			if allowed {
				c.AllowedHosts = []string{"relay.lan"}
			}
		}))
		ln, err := net.Listen("tcp", "0.0.0.0:0")
		require.NoError(t, err)
		port := ln.Addr().(*net.TCPAddr).Port
		b.url = "http://" + net.JoinHostPort("127.0.0.1", itoa(port))
		serve(t, b, ln)
		r := b.sendHost(t, hostReq{method: http.MethodGet, path: "/healthz", host: "anything.example:" + itoa(port)})
		if allowed {
			r.requireError(t, 403, relaytype.CodeForbidden, "Host")
		} else {
			require.Equal(t, 200, r.status)
		}
		r = b.sendHost(t, hostReq{method: http.MethodGet, path: "/healthz", host: "relay.lan:" + itoa(port)})
		require.Equal(t, 200, r.status)
	}
}

func TestOriginCheck(t *testing.T) {
	t.Parallel()
	b := setup(t, withConfig(func(c *httpapi.Config) {
		c.AllowedOrigins = []string{"http://LOCALHOST:6274/", "https://inspector.example"}
		c.ClientMCP = echoMCP
	}))
	port := b.port(t)
	op := b.operator()
	job := b.running(t)
	for origin, want := range map[string]int{
		"":                                200, // not a browser
		"http://127.0.0.1:" + port:        200, // same origin
		"http://localhost:" + port:        200, // the relay's own, by another loopback name
		"http://[::1]:" + port:            200,
		"http://localhost:6274":           200, // AllowedOrigins
		"https://inspector.example:443":   200,
		"https://127.0.0.1:" + port:       403, // not served over TLS
		"http://localhost:6275":           403,
		"http://evil.example":             403,
		"https://evil.example:" + port:    403,
		"http://127.0.0.1:" + port + "/x": 403,
		"null":                            403,
		"file://":                         403,
		"http://localhost:" + port + "@evil.example": 403,
	} {
		for _, q := range []hostReq{
			{method: http.MethodGet, path: "/healthz"},
			{method: http.MethodGet, path: "/jobs/" + job.ID, token: op},
			{method: http.MethodPost, path: "/mcp", token: op, body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`,
				header: map[string]string{"Content-Type": "application/json"}},
		} {
			if q.header == nil {
				q.header = map[string]string{}
			}
			if origin != "" {
				q.header["Origin"] = origin
			}
			r := b.sendHost(t, q)
			require.Equal(t, want, r.status, "Origin %q on %s %s: %s", origin, q.method, q.path, r.body)
			if want == 403 {
				r.requireError(t, 403, relaytype.CodeForbidden, "Origin")
			}
		}
	}
	// Two Origin headers are refused.
	req, err := http.NewRequest(http.MethodGet, b.url+"/healthz", nil)
	require.NoError(t, err)
	req.Header.Add("Origin", "http://127.0.0.1:"+port)
	req.Header.Add("Origin", "http://evil.example")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
}

// TestPostNeedsJSONContentType reproduces the finding that a POST without
// Content-Type was accepted: a browser sends such a body (or text/plain,
// or a form) cross-origin without a CORS preflight.
func TestPostNeedsJSONContentType(t *testing.T) {
	t.Parallel()
	b := setup(t, withConfig(func(c *httpapi.Config) { c.ClientMCP = echoMCP }))
	op := b.operator()
	job := b.running(t)
	a := newAsk(t, job.ID)
	b.postAsk(t, op, a)
	answer := `{"ask_id":"` + a.AskID + `","status":"ANSWERED","answer_text":"x"}`
	for _, path := range []string{"/answers", "/asks", "/mcp", "/jobs/" + job.ID + "/cancel"} {
		for _, ct := range []string{"", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx"} {
			q := hostReq{method: http.MethodPost, path: path, token: op, body: answer, header: map[string]string{}}
			if ct != "" {
				q.header["Content-Type"] = ct
			}
			r := b.sendHost(t, q)
			r.requireError(t, 415, httpapi.CodeUnsupportedMediaType, "")
		}
	}
	rec, err := b.asks.AnswerOf(context.Background(), a.AskID)
	require.NoError(t, err)
	require.Nil(t, rec, "answered through a POST that was not JSON")

	// A bodiless POST needs no Content-Type, but may not claim another.
	r := b.sendHost(t, hostReq{method: http.MethodPost, path: "/jobs/" + job.ID + "/cancel", token: op,
		header: map[string]string{"Content-Type": "text/plain"}})
	r.requireError(t, 415, httpapi.CodeUnsupportedMediaType, "")
	r = b.sendHost(t, hostReq{method: http.MethodPost, path: "/jobs/" + job.ID + "/cancel", token: op})
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)

	r = b.sendHost(t, hostReq{method: http.MethodPost, path: "/answers", token: op, body: answer,
		header: map[string]string{"Content-Type": "application/json; charset=utf-8"}})
	require.NotEqual(t, http.StatusUnsupportedMediaType, r.status, "body: %s", r.body)
}

func TestGuardConfigValidation(t *testing.T) {
	t.Parallel()
	b := newStack(t)
	base := httpapi.Config{Asks: b.asks, Jobs: b.relay, Tokens: b.tokens, Logger: quiet}
	for _, h := range []string{"", "http://localhost", "a/b", "x:99999", "x:0", "x:y", "*", "user@host"} {
		c := base
		c.AllowedHosts = []string{"ok.example", h}
		_, err := httpapi.New(c)
		require.ErrorIs(t, err, httpapi.ErrBadAllowedHost, "%q", h)
		require.ErrorContains(t, err, "AllowedHosts[1]")
	}
	for _, o := range []string{"", "localhost:6274", "ftp://x", "http://x/path", "null", "http://", "http://x?q", "http://u@x", "*"} {
		c := base
		c.AllowedOrigins = []string{o}
		_, err := httpapi.New(c)
		require.ErrorIs(t, err, httpapi.ErrBadAllowedOrigin, "%q", o)
		require.ErrorContains(t, err, "AllowedOrigins[0]")
	}
	c := base
	c.BindHost = "a b"
	_, err := httpapi.New(c)
	require.ErrorIs(t, err, httpapi.ErrBadAllowedHost)
	c = base
	c.AllowedHosts, c.AllowedOrigins, c.BindHost = []string{"relay.lan", "relay.lan:8080", "::1"}, []string{"http://localhost:6274"}, "0.0.0.0"
	_, err = httpapi.New(c)
	require.NoError(t, err)
}
