package mcpserver

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/sqlite"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// execBundle is a running job of a real relay, ask service and SQLite
// store, with the executor MCP endpoint of that job on loopback and an
// agent's MCP session to it.
type execBundle struct {
	svc     *ask.Service
	job     *relaytype.Job
	session *mcp.ClientSession
}

// setupExec starts a job from spec, held running, and connects an agent
// session with opts to its executor endpoint configured by cfg.
func setupExec(t *testing.T, spec *relaytype.JobSpec, cfg ExecutorConfig, opts *mcp.ClientOptions) *execBundle {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	st, err := sqlite.Open(ctx, sqlite.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	h := &blockingHandler{started: make(chan string, 1), release: make(chan struct{})}
	r, err := relay.New(relay.Config{Store: st, Handler: h, Artifacts: relay.ArtifactDir{Root: t.TempDir()}, Logger: quiet})
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	t.Cleanup(r.Stop)
	t.Cleanup(func() { close(h.release) })
	svc, err := ask.New(ask.Config{Store: st, Logger: quiet, OnChange: func(j *relaytype.Job) { r.Notify(j, true) }})
	require.NoError(t, err)
	job, _, err := r.Submit(ctx, spec)
	require.NoError(t, err)
	select {
	case <-h.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the job did not start")
	}
	cfg.Asks, cfg.Jobs, cfg.Logger = svc, r, quiet
	cfg.JobOf = func(http.Header) (string, int, error) { return job.ID, 0, nil }
	handler, err := NewExecutorHandler(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	session, err := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "0"}, opts).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: srv.URL}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = session.Close() })
	return &execBundle{svc: svc, job: job, session: session}
}

// TestExecutorAskKeepsTheResponseAlive: a relay_ask call waiting for its
// answer sends progress notifications, so that an agent's MCP client that
// gives up on a silent response keeps waiting; the answer then arrives.
func TestExecutorAskKeepsTheResponseAlive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var progress atomic.Int32
	b := setupExec(t, &relaytype.JobSpec{Repo: relaytype.Repo{Type: "local", Path: "/tmp"},
		Task: relaytype.Task{Title: "t", Description: "d"}, IdempotencyKey: "keepalive"},
		ExecutorConfig{KeepAlive: 30 * time.Millisecond},
		&mcp.ClientOptions{ProgressNotificationHandler: func(context.Context, *mcp.ProgressNotificationClientRequest) { progress.Add(1) }})
	svc, job, session := b.svc, b.job, b.session

	// Answer once a few keep-alives have gone out.
	go func() {
		deadline := time.Now().Add(10 * time.Second)
		for progress.Load() < 3 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		asks, err := svc.List(ctx, job.ID, relaytype.StatusPending)
		if err != nil || len(asks) != 1 {
			return
		}
		_, _, _ = svc.Answer(ctx, &relaytype.Answer{AskID: asks[0].AskID, JobID: job.ID, Status: relaytype.StatusAnswered, AnswerText: "use main"})
	}()
	params := &mcp.CallToolParams{Name: "relay_ask", Arguments: map[string]any{"type": "CLARIFICATION", "prompt": "Which branch?"}}
	params.SetProgressToken("p1")
	res, err := session.CallTool(ctx, params)
	require.NoError(t, err)
	require.False(t, res.IsError, "%v", res.Content)
	require.Contains(t, res.Content[0].(*mcp.TextContent).Text, "use main")
	require.GreaterOrEqual(t, progress.Load(), int32(3), "keep-alive progress notifications while waiting")
}

// TestApproveSaysReadOnly: an approval asked by an agent of a read-only job
// tells the answerer that approving a change fails the job.
func TestApproveSaysReadOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupExec(t, &relaytype.JobSpec{Repo: relaytype.Repo{Type: "local", Path: "/tmp"},
		Task: relaytype.Task{Title: "t", Description: "d"}, IdempotencyKey: "ro", Execution: relaytype.Execution{Sandbox: "read-only"}},
		ExecutorConfig{}, nil)
	svc, job, session := b.svc, b.job, b.session
	go func() {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			asks, err := svc.List(ctx, job.ID, relaytype.StatusPending)
			if err == nil && len(asks) == 1 {
				_, _, _ = svc.Answer(ctx, &relaytype.Answer{AskID: asks[0].AskID, JobID: job.ID, Status: relaytype.StatusAnswered,
					AnswerText: "no", AnswerJSON: []byte(`{"approved":false}`)})
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "relay_approve",
		Arguments: map[string]any{"tool_name": "Write", "input": map[string]any{"file_path": "x"}, "tool_use_id": "t1"}})
	require.NoError(t, err)
	require.Contains(t, res.Content[0].(*mcp.TextContent).Text, `"deny"`)
	asks, err := svc.List(ctx, job.ID, "")
	require.NoError(t, err)
	require.Len(t, asks, 1)
	require.Contains(t, asks[0].Prompt, "This job is read-only")
}
