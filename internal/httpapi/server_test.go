package httpapi_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/httpapi"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	b := newStack(t)
	_, err := httpapi.New(httpapi.Config{Jobs: b.relay, Tokens: b.tokens})
	require.ErrorContains(t, err, "Asks")
	_, err = httpapi.New(httpapi.Config{Asks: b.asks, Tokens: b.tokens})
	require.ErrorContains(t, err, "Jobs")
	_, err = httpapi.New(httpapi.Config{Asks: b.asks, Jobs: b.relay})
	require.ErrorContains(t, err, "Tokens")
	_, err = httpapi.New(httpapi.Config{Asks: b.asks, Jobs: b.relay, AuthNone: true})
	require.NoError(t, err)
}

func TestRequestLimits(t *testing.T) {
	t.Parallel()
	b := setup(t)
	op := b.operator()

	big := `{"prompt":"` + strings.Repeat("x", 2<<20) + `"}`
	b.do(t, http.MethodPost, "/asks", op, big).requireError(t, 413, relaytype.CodePayloadTooLarge, "")
	b.do(t, http.MethodPost, "/answers", op, big).requireError(t, 413, relaytype.CodePayloadTooLarge, "")

	r := b.send(t, context.Background(), request{method: http.MethodPost, path: "/asks", token: op, body: "{}",
		header: map[string]string{"Content-Type": "text/plain"}})
	r.requireError(t, 415, httpapi.CodeUnsupportedMediaType, "")
	for _, ct := range []string{"application/json; charset=utf-8", "application/problem+json"} {
		r := b.send(t, context.Background(), request{method: http.MethodPost, path: "/asks", token: op, body: "{}",
			header: map[string]string{"Content-Type": ct}})
		// Accepted as JSON: it fails validation instead.
		r.requireError(t, 400, relaytype.CodeInvalidRequest, "ask_id")
	}
}

func TestUnknownRoutesAndMethods(t *testing.T) {
	t.Parallel()
	b := setup(t)
	op := b.operator()

	b.do(t, http.MethodGet, "/nope", op, nil).requireError(t, 404, relaytype.CodeNotFound, "")
	b.do(t, http.MethodGet, "/asks/x", op, nil).requireError(t, 404, relaytype.CodeNotFound, "")

	r := b.do(t, http.MethodPut, "/asks", op, nil)
	r.requireError(t, 405, relaytype.CodeMethodNotAllowed, "")
	require.Contains(t, r.header.Get("Allow"), "POST")
	require.Contains(t, r.header.Get("Allow"), "GET")

	r = b.do(t, http.MethodDelete, "/asks/x/answer", op, nil)
	r.requireError(t, 405, relaytype.CodeMethodNotAllowed, "")
	require.Contains(t, r.header.Get("Allow"), "GET")

	r = b.do(t, http.MethodPost, "/healthz", "", nil)
	r.requireError(t, 405, relaytype.CodeMethodNotAllowed, "")
}

func TestParseWait(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{
		"": 0, "0": 0, "25": 25 * time.Second, "2.5": 2500 * time.Millisecond, "25s": 25 * time.Second,
		"500ms": 500 * time.Millisecond, "1m": time.Minute, " 3 ": 3 * time.Second,
	} {
		got, err := httpapi.ParseWait(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"-1", "-1s", "soon", "NaN", "Inf", "1x"} {
		_, err := httpapi.ParseWait(in)
		require.Error(t, err, in)
	}
}

type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }

func TestIsLoopback(t *testing.T) {
	t.Parallel()
	tcp := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	for addr, want := range map[net.Addr]bool{
		tcp("127.0.0.1:3415"):              true,
		tcp("127.8.9.10:1"):                true,
		tcp("[::1]:3415"):                  true,
		tcp("[::ffff:127.0.0.1]:3415"):     true,
		tcp("0.0.0.0:3415"):                false,
		tcp("[::]:3415"):                   false,
		tcp("192.168.1.10:3415"):           false,
		tcp("[2001:db8::1]:80"):            false,
		&net.UnixAddr{Name: "/run/x.sock"}: true,
		fakeAddr("localhost:3415"):         true,
		fakeAddr("127.0.0.1:80"):           true,
		fakeAddr("[::1]:80"):               true,
		fakeAddr("example.com:80"):         false,
		fakeAddr(":3415"):                  false,
		fakeAddr("10.0.0.1"):               false,
	} {
		require.Equal(t, want, httpapi.IsLoopback(addr), addr.String())
	}
	require.False(t, httpapi.IsLoopback(nil))
}

// fakeListener has an address but never accepts.
type fakeListener struct {
	addr   net.Addr
	closed chan struct{}
}

func (l *fakeListener) Accept() (net.Conn, error) { <-l.closed; return nil, net.ErrClosed }
func (l *fakeListener) Close() error              { close(l.closed); return nil }
func (l *fakeListener) Addr() net.Addr            { return l.addr }

func TestServeRefusesAuthNoneOffLoopback(t *testing.T) {
	t.Parallel()
	b := newStack(t)
	srv, err := httpapi.New(httpapi.Config{Asks: b.asks, Jobs: b.relay, AuthNone: true, Logger: quiet})
	require.NoError(t, err)
	ln := &fakeListener{addr: &net.TCPAddr{IP: net.IPv4zero, Port: 3415}, closed: make(chan struct{})}
	require.ErrorContains(t, srv.CheckListener(ln.Addr()), "loopback")
	require.NoError(t, srv.CheckListener(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}))
	err = srv.Serve(context.Background(), ln)
	require.ErrorContains(t, err, "loopback")
	require.ErrorContains(t, err, "0.0.0.0:3415")
	select {
	case <-ln.closed:
	default:
		t.Fatal("listener not closed")
	}
}

// TestServeAuthNoneOnLoopbackAndShutdown serves on a real loopback
// listener without auth, and checks that ending Serve's context ends
// long polls and event streams at once.
func TestServeAuthNoneOnLoopbackAndShutdown(t *testing.T) {
	t.Parallel()
	b := newStack(t, withConfig(func(c *httpapi.Config) { c.AuthNone = true; c.Tokens = nil }))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b.url = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- b.srv.Serve(ctx, ln) }()

	job := b.running(t)
	a := newAsk(t, job.ID)
	b.postAsk(t, "", a)
	r := b.do(t, http.MethodGet, "/jobs/"+job.ID+"/asks", "", nil)
	require.Equal(t, http.StatusOK, r.status)

	resp, events := b.openSSE(t, context.Background(), job.ID, "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "connected", nextEvent(t, events).event)
	poll := b.startLongPoll(t, a.AskID, "", "25s")

	start := time.Now()
	cancel()
	lp := recv(t, poll, 5*time.Second)
	require.Equal(t, http.StatusNoContent, lp.resp.status)
	waitClosed(t, events, 5*time.Second)
	err = recv(t, served, 5*time.Second)
	require.NoError(t, err)
	require.Less(t, time.Since(start), 2*time.Second)

	_, err = http.Get(b.url + "/healthz")
	require.Error(t, err, "still serving after shutdown")
}

func TestAttestationKey(t *testing.T) {
	t.Parallel()
	pub, _, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	b := setup(t, withConfig(func(c *httpapi.Config) { c.AttestationKey = pub }))
	r := b.do(t, http.MethodGet, "/attestation-key", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	var key httpapi.AttestationKey
	require.NoError(t, json.Unmarshal(r.body, &key))
	require.Equal(t, "Ed25519", key.Alg)
	require.Equal(t, relaytype.KeyID(pub), key.KeyID)
	raw, err := base64.StdEncoding.DecodeString(key.PublicKey)
	require.NoError(t, err)
	require.Equal(t, []byte(pub), raw)

	none := setup(t)
	r = none.do(t, http.MethodGet, "/attestation-key", "", nil)
	require.Equal(t, http.StatusNotFound, r.status)
}
