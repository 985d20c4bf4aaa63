package app

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/config"
)

// healthzStatus returns the status and body of GET origin/healthz.
func healthzStatus(t *testing.T, origin string) (int, string) {
	t.Helper()
	resp, err := http.Get(origin + "/healthz")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// mirrorAPI serves svc's HTTP API on a second loopback listener until the
// test ends, to look at /healthz once the service's own listener is gone.
func mirrorAPI(t *testing.T, svc *Service) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = svc.api.Serve(ctx, ln)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return "http://" + ln.Addr().String()
}

// TestDaemonExitsWhenHTTPListenerDies: when the Ask/Answer listener dies
// under the relay service, the service stops and RunDaemon returns an
// error saying so; meanwhile /healthz and doctor's probe report it
// unhealthy.
func TestDaemonExitsWhenHTTPListenerDies(t *testing.T) {
	t.Parallel()
	dir := dataDir(t)
	started := make(chan *Service, 1)
	done := make(chan error, 1)
	go func() {
		done <- RunDaemon(context.Background(), DaemonOptions{DataDir: dir, Logger: quiet, Version: "t",
			Getenv:  func(string) (string, bool) { return "", false },
			started: func(s *Service) { started <- s }})
	}()
	var svc *Service
	select {
	case svc = <-started:
	case err := <-done:
		t.Fatalf("service: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the service did not start")
	}
	code, _ := healthzStatus(t, svc.Origin())
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, checkHealthz(t.Context(), svc.Origin()))
	mirror := mirrorAPI(t, svc)
	code, _ = healthzStatus(t, mirror)
	require.Equal(t, http.StatusOK, code)

	require.NoError(t, svc.ln.Close()) // the listener dies underneath
	select {
	case err := <-done:
		require.ErrorContains(t, err, "Ask/Answer HTTP listener on "+svc.Origin()+" died")
	case <-time.After(20 * time.Second):
		t.Fatal("the service went on without its HTTP API")
	}
	_, err := ReadServiceInfo(dir)
	require.ErrorIs(t, err, ErrNoService, "the dead service is unpublished")
	require.False(t, Locked(dir))

	code, body := healthzStatus(t, mirror)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, `"ok":false`)
	require.Contains(t, body, "died")
	require.ErrorContains(t, checkHealthz(t.Context(), mirror), "is unhealthy: 503")
	require.ErrorContains(t, checkHealthz(t.Context(), svc.Origin()), "is not serving")
}

// TestStandaloneExitsWhenHTTPListenerDies: serve --standalone, with its
// MCP session on stdio still open, returns an error once its HTTP
// listener dies.
func TestStandaloneExitsWhenHTTPListenerDies(t *testing.T) {
	t.Parallel()
	data := dataDir(t)
	proj := projectDir(t, `"/bin/sh"`)
	cfg, err := config.Load(config.Overrides{ConfigDir: &proj}, func(k string) (string, bool) {
		if k == config.EnvDataDir {
			return data, true
		}
		return "", false
	})
	require.NoError(t, err)
	cfg.AskAnswer.Port = freePort(t)
	stdin, stdinW := io.Pipe() // the client never hangs up
	t.Cleanup(func() { _ = stdinW.Close() })
	started := make(chan *Service, 1)
	done := make(chan error, 1)
	go func() {
		done <- RunStandalone(context.Background(), StandaloneOptions{Config: cfg, Stdin: stdin, Stdout: io.Discard,
			Logger: quiet, Version: "t", started: func(s *Service) { started <- s }})
	}()
	var svc *Service
	select {
	case svc = <-started:
	case err := <-done:
		t.Fatalf("standalone: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the relay did not start")
	}
	require.NoError(t, svc.health())
	require.NoError(t, svc.ln.Close())
	select {
	case err := <-done:
		require.ErrorContains(t, err, "HTTP listener")
		require.ErrorContains(t, err, "died")
	case <-time.After(20 * time.Second):
		t.Fatal("the standalone relay went on without its HTTP API")
	}
	require.ErrorContains(t, svc.health(), "died")
}

// TestHealthBeforeStart: the HTTP API is reported unhealthy until its
// listener serves.
func TestHealthBeforeStart(t *testing.T) {
	t.Parallel()
	svc := newService(t)
	t.Cleanup(func() { _ = svc.Close(0) })
	require.ErrorContains(t, svc.health(), "not serving")
	require.NoError(t, svc.Start(t.Context()))
	require.NoError(t, svc.health())
	require.NoError(t, svc.Close(0))
	require.ErrorContains(t, svc.health(), "not serving", "a closed service serves nothing")
	require.NoError(t, svc.HTTPErr(), "a clean shutdown is no listener death")
}
