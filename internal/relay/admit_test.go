//go:build unix

package relay_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/executor"
	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/workspace"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// blackHole listens on 127.0.0.1 and accepts connections that it never
// answers, like a remote that hangs. Accepted connections arrive on the
// returned channel.
func blackHole(t *testing.T) (string, <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	conns := make(chan net.Conn, 16)
	var (
		mu   sync.Mutex
		held []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			select {
			case conns <- c:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			_ = c.Close()
		}
	})
	return ln.Addr().String(), conns
}

// requireClosedByPeer requires the client end of c to be closed soon: the
// git process (or remote helper) holding it is gone, not left behind.
func requireClosedByPeer(t *testing.T, c net.Conn) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(3*time.Second)))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue // the request git sent before waiting
		}
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "connection still open: git or its helper outlived the deadline")
		return
	}
}

func TestPipelineAdmitTimeout(t *testing.T) {
	t.Parallel()
	addr, conns := blackHole(t)
	wm, err := workspace.New(workspace.Config{Root: t.TempDir()})
	require.NoError(t, err)
	one, err := executor.NewCommand(executor.CommandConfig{Name: "one", Argv: []string{"true"}})
	require.NoError(t, err)
	mk := func(git string) *relay.Pipeline {
		p, err := relay.NewPipeline(relay.PipelineConfig{Workspaces: wm, Artifacts: relay.ArtifactDir{Root: t.TempDir()},
			Executors: map[string]executor.Runner{"one": one}, Git: git, AdmitTimeout: time.Second, Logger: quiet})
		require.NoError(t, err)
		return p
	}
	admit := func(p *relay.Pipeline, repo relaytype.Repo) (*relaytype.SpecError, time.Duration) {
		t.Helper()
		spec := &relaytype.JobSpec{Repo: repo, Task: relaytype.Task{Title: "t", Description: "d"}, IdempotencyKey: "k"}
		start := time.Now()
		_, _, err := p.Admit(context.Background(), spec)
		elapsed := time.Since(start)
		var se *relaytype.SpecError
		require.ErrorAs(t, err, &se)
		require.NotContains(t, err.Error(), "context deadline exceeded")
		return se, elapsed
	}

	// The remotes are tried one after the other so that each accepted
	// connection is known to be that remote's.
	p := mk("")
	for _, url := range []string{"http://" + addr + "/x.git", "git://" + addr + "/x.git"} {
		se, elapsed := admit(p, relaytype.Repo{Type: "git", URL: url})
		require.Less(t, elapsed, 3*time.Second, url)
		require.Equal(t, "repo.url", se.Field, url)
		require.Equal(t, "git ls-remote did not answer within 1s (remote unreachable or not responding)", se.Message)
		select {
		case c := <-conns:
			requireClosedByPeer(t, c)
		case <-time.After(3 * time.Second):
			t.Fatalf("%s: git never connected", url)
		}
	}

	// A local repository on a file system that hangs: a git whose child
	// holds its output open, which only killing the process group ends.
	dir := t.TempDir()
	hung := filepath.Join(dir, "git")
	require.NoError(t, os.WriteFile(hung, []byte("#!/bin/sh\nsleep 60\n"), 0o755))
	repo, _ := gitRepo(t)
	se, elapsed := admit(mk(hung), relaytype.Repo{Type: "local", Path: repo})
	require.Less(t, elapsed, 3*time.Second)
	require.Equal(t, "repo.path", se.Field)
	require.Contains(t, se.Message, "git rev-parse did not answer within 1s")
}
