package mcpserver

//lint:file-ignore SA1019 sampling is deprecated from protocol 2026-07-28; these tests exercise it on older protocols.

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"
)

// newBareServer returns a Server with no session connected.
func newBareServer(t *testing.T) *Server {
	t.Helper()
	srv, err := New(Config{Jobs: newFakeJobs(), Logger: slog.New(slog.DiscardHandler), Version: "test"})
	require.NoError(t, err)
	return srv
}

// connectClient connects a client with opts to srv through Run, speaking
// protocol, and disconnects it when the test ends.
func connectClient(t *testing.T, srv *Server, opts *mcp.ClientOptions, protocol string) *mcp.ClientSession {
	t.Helper()
	if opts == nil {
		opts = &mcp.ClientOptions{}
	}
	opts.Logger = slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	serverT, clientT := mcp.NewInMemoryTransports()
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run(ctx, serverT) }()
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "v0"}, opts)
	cs, err := client.Connect(ctx, clientT, &mcp.ClientSessionOptions{ProtocolVersion: protocol})
	require.NoError(t, err)
	t.Cleanup(func() {
		defer cancel()
		require.NoError(t, cs.Close())
		select {
		case err := <-runErr:
			require.NoError(t, err, "Run after the client disconnected")
		case <-time.After(waitTimeout):
			t.Error("Run did not return after the client disconnected")
		}
	})
	return cs
}

// approvalSchema is a form like the human answerer's approval form.
const approvalSchema = `{"type":"object","properties":{"approve":{"type":"boolean","title":"Approve?"},"comment":{"type":"string","title":"Comment"}},"required":["approve"]}`

func TestElicit(t *testing.T) {
	t.Parallel()
	srv := newBareServer(t)
	asked := make(chan *mcp.ElicitParams, 1)
	connectClient(t, srv, &mcp.ClientOptions{
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			asked <- req.Params
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": true}}, nil
		},
	}, legacyProtocol)
	require.True(t, srv.CanElicit())
	require.False(t, srv.CanSample())

	action, content, err := srv.Elicit(context.Background(), "Deploy?", json.RawMessage(approvalSchema))
	require.NoError(t, err)
	require.Equal(t, "accept", action)
	require.Equal(t, map[string]any{"approve": true}, content)

	p := <-asked
	require.Equal(t, "form", p.Mode)
	require.Equal(t, "Deploy?", p.Message)
	schema, err := json.Marshal(p.RequestedSchema)
	require.NoError(t, err)
	require.JSONEq(t, approvalSchema, string(schema))
}

func TestElicitDecline(t *testing.T) {
	t.Parallel()
	srv := newBareServer(t)
	connectClient(t, srv, &mcp.ClientOptions{
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "decline"}, nil
		},
	}, legacyProtocol)
	action, content, err := srv.Elicit(context.Background(), "Deploy?", json.RawMessage(approvalSchema))
	require.NoError(t, err)
	require.Equal(t, "decline", action)
	require.Nil(t, content)
}

func TestElicitNoCapableClient(t *testing.T) {
	t.Parallel()
	handler := func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
		return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": true}}, nil
	}
	for name, tc := range map[string]struct {
		opts     *mcp.ClientOptions
		protocol string
	}{
		"no session": {},
		"no handler": {opts: &mcp.ClientOptions{}, protocol: legacyProtocol},
		// Protocol 2026-07-28 forbids server-initiated elicitation.
		"stateless protocol": {opts: &mcp.ClientOptions{ElicitationHandler: handler}, protocol: modernProtocol},
		"url mode only": {opts: &mcp.ClientOptions{
			ElicitationHandler: handler,
			Capabilities:       &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{URL: &mcp.URLElicitationCapabilities{}}},
		}, protocol: legacyProtocol},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := newBareServer(t)
			if tc.opts != nil {
				connectClient(t, srv, tc.opts, tc.protocol)
			}
			require.False(t, srv.CanElicit())
			_, _, err := srv.Elicit(context.Background(), "Deploy?", json.RawMessage(approvalSchema))
			require.ErrorIs(t, err, ErrNoCapableClient)
		})
	}
}

func TestElicitOlderClientWithoutForm(t *testing.T) {
	t.Parallel()
	// Before 2025-11-25 an empty elicitation capability means form mode.
	srv := newBareServer(t)
	connectClient(t, srv, &mcp.ClientOptions{
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "cancel"}, nil
		},
	}, "2025-06-18")
	require.True(t, srv.CanElicit())
	action, _, err := srv.Elicit(context.Background(), "Deploy?", json.RawMessage(approvalSchema))
	require.NoError(t, err)
	require.Equal(t, "cancel", action)
}

func TestElicitPicksFirstCapableSession(t *testing.T) {
	t.Parallel()
	srv := newBareServer(t)
	connectClient(t, srv, nil, legacyProtocol)
	connectClient(t, srv, &mcp.ClientOptions{
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": false}}, nil
		},
	}, legacyProtocol)
	action, content, err := srv.Elicit(context.Background(), "Deploy?", json.RawMessage(approvalSchema))
	require.NoError(t, err)
	require.Equal(t, "accept", action)
	require.Equal(t, map[string]any{"approve": false}, content)
}

func TestElicitCanceledByContext(t *testing.T) {
	t.Parallel()
	srv := newBareServer(t)
	entered := make(chan struct{})
	connectClient(t, srv, &mcp.ClientOptions{
		ElicitationHandler: func(ctx context.Context, _ *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			close(entered)
			<-ctx.Done()
			return nil, ctx.Err()
		},
	}, legacyProtocol)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-entered
		cancel()
	}()
	_, _, err := srv.Elicit(ctx, "Deploy?", json.RawMessage(approvalSchema))
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, ErrNoCapableClient)
}

func TestSample(t *testing.T) {
	t.Parallel()
	srv := newBareServer(t)
	asked := make(chan *mcp.CreateMessageParams, 1)
	connectClient(t, srv, &mcp.ClientOptions{
		CreateMessageHandler: func(_ context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			asked <- req.Params
			return &mcp.CreateMessageResult{
				Meta:    mcp.Meta{"usage": map[string]any{"inputTokens": 12, "outputTokens": 3}},
				Content: &mcp.TextContent{Text: "use postgres"},
				Model:   "client-model-1",
				Role:    "assistant",
			}, nil
		},
	}, legacyProtocol)
	require.True(t, srv.CanSample())
	require.False(t, srv.CanElicit())

	res, err := srv.Sample(context.Background(), "You are the clarifier.", []SampleMessage{
		{Role: "user", Content: "Which database?"},
		{Role: "assistant", Content: "For what?"},
		{Role: "user", Content: "The job queue."},
	}, 0)
	require.NoError(t, err)
	require.Equal(t, &SampleResult{Text: "use postgres", Model: "client-model-1", InputTokens: 12, OutputTokens: 3}, res)

	p := <-asked
	require.Equal(t, "You are the clarifier.", p.SystemPrompt)
	require.EqualValues(t, DefaultSampleMaxTokens, p.MaxTokens)
	require.Len(t, p.Messages, 3)
	for i, want := range []struct{ role, text string }{
		{"user", "Which database?"}, {"assistant", "For what?"}, {"user", "The job queue."},
	} {
		require.Equal(t, mcp.Role(want.role), p.Messages[i].Role)
		require.Equal(t, want.text, p.Messages[i].Content.(*mcp.TextContent).Text)
	}
}

func TestSampleWithoutUsage(t *testing.T) {
	t.Parallel()
	srv := newBareServer(t)
	asked := make(chan int64, 1)
	connectClient(t, srv, &mcp.ClientOptions{
		CreateMessageHandler: func(_ context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			asked <- req.Params.MaxTokens
			return &mcp.CreateMessageResult{Content: &mcp.TextContent{Text: "ok"}, Model: "m", Role: "assistant"}, nil
		},
	}, legacyProtocol)
	res, err := srv.Sample(context.Background(), "", []SampleMessage{{Role: "user", Content: "hi"}}, 77)
	require.NoError(t, err)
	require.Equal(t, &SampleResult{Text: "ok", Model: "m"}, res)
	require.EqualValues(t, 77, <-asked)
}

func TestSampleErrors(t *testing.T) {
	t.Parallel()
	t.Run("no capable client", func(t *testing.T) {
		t.Parallel()
		srv := newBareServer(t)
		connectClient(t, srv, nil, legacyProtocol)
		require.False(t, srv.CanSample())
		_, err := srv.Sample(context.Background(), "s", []SampleMessage{{Role: "user", Content: "hi"}}, 10)
		require.ErrorIs(t, err, ErrNoCapableClient)
	})
	t.Run("bad role", func(t *testing.T) {
		t.Parallel()
		srv := newBareServer(t)
		_, err := srv.Sample(context.Background(), "s", []SampleMessage{{Role: "system", Content: "hi"}}, 10)
		require.ErrorContains(t, err, `role "system"`)
	})
	t.Run("not text", func(t *testing.T) {
		t.Parallel()
		srv := newBareServer(t)
		connectClient(t, srv, &mcp.ClientOptions{
			CreateMessageHandler: func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
				return &mcp.CreateMessageResult{Content: &mcp.ImageContent{Data: []byte{1}, MIMEType: "image/png"}, Model: "m", Role: "assistant"}, nil
			},
		}, legacyProtocol)
		_, err := srv.Sample(context.Background(), "s", []SampleMessage{{Role: "user", Content: "hi"}}, 10)
		require.ErrorContains(t, err, "not text")
		require.NotErrorIs(t, err, ErrNoCapableClient)
	})
}

func TestUsageOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		meta    mcp.Meta
		in, out int
	}{
		{"nil", nil, 0, 0},
		{"no usage", mcp.Meta{"other": 1}, 0, 0},
		{"camelCase", mcp.Meta{"usage": map[string]any{"inputTokens": 5.0, "outputTokens": 7.0}}, 5, 7},
		{"snake_case", mcp.Meta{"usage": map[string]any{"input_tokens": 5.0, "output_tokens": 7.0}}, 5, 7},
		{"malformed", mcp.Meta{"usage": map[string]any{"inputTokens": "5", "outputTokens": -1.0}}, 0, 0},
		{"fractional", mcp.Meta{"usage": map[string]any{"inputTokens": 1.5}}, 0, 0},
		{"not an object", mcp.Meta{"usage": 3.0}, 0, 0},
	} {
		in, out := usageOf(tc.meta)
		require.Equal(t, tc.in, in, tc.name)
		require.Equal(t, tc.out, out, tc.name)
	}
}
