package httpapi_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/httpapi"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

func itoa(n int) string { return strconv.Itoa(n) }

// serve runs b's server with Serve on ln until the test ends.
func serve(t *testing.T, b *bundle, ln net.Listener) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- b.srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-served
	})
}

// Short timeouts for these tests.
const (
	testHeaderTimeout = 300 * time.Millisecond
	testReadTimeout   = 300 * time.Millisecond
	testIdleTimeout   = 300 * time.Millisecond
)

// served builds the stack with short timeouts and serves it with Serve on
// a loopback port.
func served(t *testing.T, more ...func(*httpapi.Config)) *bundle {
	t.Helper()
	b := newStack(t, withConfig(func(c *httpapi.Config) {
		c.ReadHeaderTimeout = testHeaderTimeout
		c.ReadTimeout = testReadTimeout
		c.IdleTimeout = testIdleTimeout
		for _, f := range more {
			f(c)
		}
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b.url = "http://" + ln.Addr().String()
	serve(t, b, ln)
	return b
}

func (b *bundle) dial(t *testing.T) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(b.url, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	// A bound on the test itself, should the server never cut it.
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	return conn
}

// trickle writes one byte of b every interval until the connection
// fails or stop closes.
func trickle(conn net.Conn, b []byte, interval time.Duration, stop <-chan struct{}) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for _, c := range b {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if _, err := conn.Write([]byte{c}); err != nil {
			return
		}
	}
}

// TestSlowBodyIsCutOff reproduces the finding that a client could hold a
// connection (and a handler) forever by sending its headers and then the
// body a byte at a time: it now gets 408 once ReadTimeout has passed,
// and the connection is closed.
func TestSlowBodyIsCutOff(t *testing.T) {
	t.Parallel()
	b := served(t)
	body := `{"type":"Ask","prompt":"` + strings.Repeat("x", 200) + `"}`
	// The server's deadline runs from when it starts reading, which is
	// after the dial began.
	start := time.Now()
	conn := b.dial(t)
	_, err := io.WriteString(conn, "POST /asks HTTP/1.1\r\nHost: "+strings.TrimPrefix(b.url, "http://")+
		"\r\nAuthorization: Bearer "+b.operator()+"\r\nContent-Type: application/json\r\nContent-Length: "+
		itoa(len(body))+"\r\n\r\n")
	require.NoError(t, err)
	stop := make(chan struct{})
	defer close(stop)
	go trickle(conn, []byte(body), 50*time.Millisecond, stop)

	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	data, _ := io.ReadAll(resp.Body)
	took := time.Since(start)
	require.Equal(t, http.StatusRequestTimeout, resp.StatusCode, "body: %s", data)
	require.Contains(t, string(data), string(httpapi.CodeRequestTimeout))
	require.GreaterOrEqual(t, took, testReadTimeout)
	require.Less(t, took, testReadTimeout+5*time.Second)
	require.True(t, resp.Close, "connection kept open")
}

// TestSlowHeadersAreCutOff: a slowloris client that never finishes its
// headers is disconnected after ReadHeaderTimeout.
func TestSlowHeadersAreCutOff(t *testing.T) {
	t.Parallel()
	b := served(t)
	start := time.Now()
	conn := b.dial(t)
	_, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\n")
	require.NoError(t, err)
	stop := make(chan struct{})
	defer close(stop)
	go trickle(conn, []byte(strings.Repeat("X-Slow: 1\r\n", 1000)), 20*time.Millisecond, stop)

	data, err := io.ReadAll(conn)
	took := time.Since(start)
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "the server did not cut the connection")
	require.NotContains(t, string(data), "200 OK")
	require.GreaterOrEqual(t, took, testHeaderTimeout)
	require.Less(t, took, testHeaderTimeout+5*time.Second)
}

func TestIdleAndOversizedHeaders(t *testing.T) {
	t.Parallel()
	b := served(t, func(c *httpapi.Config) { c.MaxHeaderBytes = 8 << 10 })

	// An idle keep-alive connection is closed after IdleTimeout.
	conn := b.dial(t)
	_, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: "+strings.TrimPrefix(b.url, "http://")+"\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	idle := time.Now()
	_, err = br.ReadByte()
	require.ErrorIs(t, err, io.EOF)
	require.Less(t, time.Since(idle), testIdleTimeout+5*time.Second)

	req, err := http.NewRequest(http.MethodGet, b.url+"/healthz", nil)
	require.NoError(t, err)
	req.Header.Set("X-Big", strings.Repeat("x", 64<<10))
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
}

// Long polls and event streams last longer than every read timeout: the
// body deadline is only set while a body is read.
func TestLongPollAndSSEOutliveReadTimeouts(t *testing.T) {
	t.Parallel()
	b := served(t, func(c *httpapi.Config) { c.SSEHeartbeat = 50 * time.Millisecond })
	job := b.running(t)
	tok := b.tokens.Mint(job.ID)
	a := newAsk(t, job.ID)
	b.postAsk(t, tok, a)
	longest := max(testHeaderTimeout, testReadTimeout, testIdleTimeout)

	// A long poll that ends with no answer after three timeouts.
	start := time.Now()
	r := b.do(t, http.MethodGet, "/asks/"+a.AskID+"/answer?wait="+(3*longest).String(), tok, nil)
	require.Equal(t, http.StatusNoContent, r.status, "body: %s", r.body)
	require.GreaterOrEqual(t, time.Since(start), 3*longest)

	// A stream that still delivers an event after three timeouts.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, events := b.openSSE(t, ctx, job.ID, b.operator(), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	opened := time.Now()
	for time.Since(opened) < 3*longest {
		ev, ok := <-events
		require.True(t, ok, "stream ended after %s", time.Since(opened))
		require.Contains(t, []string{"connected", "heartbeat", "status", "ask"}, ev.event)
	}
	b.postAnswer(t, answered(a.AskID))
	for {
		ev, ok := <-events
		require.True(t, ok, "stream ended")
		if ev.event == relaytype.EventAnswer {
			break
		}
	}
}

// A POST whose response lasts (an MCP tool call streaming its result)
// keeps its context once its body has arrived.
func TestPostWithLongResponseOutlivesBodyTimeout(t *testing.T) {
	t.Parallel()
	hold := 3 * testReadTimeout
	b := served(t, func(c *httpapi.Config) {
		c.ClientMCP = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			select {
			case <-r.Context().Done():
				return // the client sees the connection close
			case <-time.After(hold):
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		})
	})
	start := time.Now()
	r := b.send(t, context.Background(), request{method: http.MethodPost, path: "/mcp", token: b.operator(),
		body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`})
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.JSONEq(t, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, string(r.body))
	require.GreaterOrEqual(t, time.Since(start), hold)
}
