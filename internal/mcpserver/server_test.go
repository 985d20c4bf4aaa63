package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// seedSpec is the JobSpec of the seed's tests, verbatim.
const seedSpec = `{"repo":{"type":"git","url":"https://github.com/test/repo.git","baseBranch":"main","baselineCommit":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},"task":{"title":"Test Task","description":"Test description","acceptance":["Criterion 1"]},"scope":{"readPaths":["src/"],"disallowReformatting":false},"outputContract":["DIFF","TEST_PLAN","NOTES"],"execution":{"preferredModel":"gpt-4","sandbox":"read-only","askPolicy":"untrusted","priority":"P1","ttlS":3600},"idempotencyKey":"test-key-123"}`

// waitTimeout bounds every wait on a channel; nothing here should take
// more than a few milliseconds.
const waitTimeout = 10 * time.Second

// Protocol versions the tests run under: the legacy initialize handshake
// (synchronous resources/subscribe) and the 2026-07-28 protocol
// (subscriptions/listen).
const (
	legacyProtocol = "2025-11-25"
	modernProtocol = "2026-07-28"
)

type bundle struct {
	fake *fakeJobs
	srv  *Server
	cs   *mcp.ClientSession
	// updates receives the URI of every notifications/resources/updated.
	updates chan string
	// progress receives every notifications/progress.
	progress chan *mcp.ProgressNotificationParams
	// acks receives a value for every notifications/subscriptions/acknowledged,
	// which the server sends once a subscriptions/listen is registered.
	acks chan struct{}
	// schemas caches the output schemas the client was given, by tool.
	schemas map[string]*jsonschema.Schema
}

func setup(t *testing.T) *bundle {
	t.Helper()
	return setupWith(t, newFakeJobs(), nil, "")
}

// setupWith connects a new client session to srv (a new Server over fake
// when nil) through Run, speaking the given protocol version ("" for the
// client's default).
func setupWith(t *testing.T, fake *fakeJobs, srv *Server, protocol string) *bundle {
	t.Helper()
	if srv == nil {
		var err error
		srv, err = New(Config{Jobs: fake, Logger: slog.New(slog.DiscardHandler), Version: "test"})
		require.NoError(t, err)
	}
	b := &bundle{
		fake: fake, srv: srv, updates: make(chan string, 100), acks: make(chan struct{}, 100),
		progress: make(chan *mcp.ProgressNotificationParams, 1000),
	}

	ctx, cancel := context.WithCancel(context.Background())
	serverT, clientT := mcp.NewInMemoryTransports()
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run(ctx, serverT) }()

	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "v0"}, &mcp.ClientOptions{
		Logger: slog.New(slog.DiscardHandler),
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			b.updates <- req.Params.URI
		},
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			b.progress <- req.Params
		},
	})
	client.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "notifications/subscriptions/acknowledged" {
				b.acks <- struct{}{}
			}
			return next(ctx, method, req)
		}
	})
	var opts *mcp.ClientSessionOptions
	if protocol != "" {
		opts = &mcp.ClientSessionOptions{ProtocolVersion: protocol}
	}
	cs, err := client.Connect(ctx, clientT, opts)
	require.NoError(t, err)
	b.cs = cs
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
	return b
}

// call calls a tool and returns its result, failing on protocol errors.
func (b *bundle) call(t *testing.T, name string, args any) *mcp.CallToolResult {
	t.Helper()
	res, err := b.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	require.NoError(t, err)
	require.Len(t, res.Content, 1)
	return res
}

// ok calls a tool that must succeed, checks that its text content is its
// structuredContent and that both match the tool's output schema, and
// decodes the result into out.
func (b *bundle) ok(t *testing.T, name string, args any, out any) {
	t.Helper()
	b.decodeOK(t, name, b.call(t, name, args), out)
}

// decodeOK does ok's checks on the result of a call made another way.
func (b *bundle) decodeOK(t *testing.T, name string, res *mcp.CallToolResult, out any) {
	t.Helper()
	require.Len(t, res.Content, 1)
	text := res.Content[0].(*mcp.TextContent).Text
	require.False(t, res.IsError, "%s: %s", name, text)
	structured, err := json.Marshal(res.StructuredContent)
	require.NoError(t, err)
	require.JSONEq(t, string(structured), text, "text content is the structured content")
	requireValid(t, b.outputSchema(t, name), text)
	require.NoError(t, json.Unmarshal([]byte(text), out))
}

// fail calls a tool that must fail and returns its error body.
func (b *bundle) fail(t *testing.T, name string, args any) toolErrorBody {
	t.Helper()
	res := b.call(t, name, args)
	text := res.Content[0].(*mcp.TextContent).Text
	require.True(t, res.IsError, "%s succeeded: %s", name, text)
	require.Nil(t, res.StructuredContent)
	var body toolErrorBody
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&body), "error text is the JSON error body: %s", text)
	require.NotEmpty(t, body.Message)
	return body
}

func (b *bundle) outputSchema(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	if b.schemas == nil {
		res, err := b.cs.ListTools(context.Background(), nil)
		require.NoError(t, err)
		b.schemas = map[string]*jsonschema.Schema{}
		for _, tool := range res.Tools {
			b.schemas[tool.Name] = toSchema(t, tool.OutputSchema)
		}
	}
	s, ok := b.schemas[name]
	require.True(t, ok, "no tool %s", name)
	return s
}

func toSchema(t *testing.T, v any) *jsonschema.Schema {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	var s jsonschema.Schema
	require.NoError(t, json.Unmarshal(data, &s))
	return &s
}

func requireValid(t *testing.T, s *jsonschema.Schema, doc string) {
	t.Helper()
	resolved, err := s.Resolve(nil)
	require.NoError(t, err)
	var v any
	require.NoError(t, json.Unmarshal([]byte(doc), &v))
	require.NoError(t, resolved.Validate(v), "document: %s", doc)
}

func (b *bundle) submit(t *testing.T, key string) submitResult {
	t.Helper()
	spec := strings.Replace(seedSpec, "test-key-123", key, 1)
	var out submitResult
	b.ok(t, "jobs_submit", map[string]any{"spec": json.RawMessage(spec)}, &out)
	return out
}

func (b *bundle) read(t *testing.T, uri string) *mcp.ResourceContents {
	t.Helper()
	res, err := b.cs.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: uri})
	require.NoError(t, err, uri)
	require.Len(t, res.Contents, 1)
	require.Equal(t, uri, res.Contents[0].URI)
	return res.Contents[0]
}

// subscribe subscribes to uri and returns once the server will notify it.
func (b *bundle) subscribe(t *testing.T, uri string) {
	t.Helper()
	require.NoError(t, b.cs.Subscribe(context.Background(), &mcp.SubscribeParams{URI: uri}))
	if b.cs.InitializeResult().ProtocolVersion >= modernProtocol {
		// subscriptions/listen runs in the background; the server
		// acknowledges it once the subscription is in place.
		select {
		case <-b.acks:
		case <-time.After(waitTimeout):
			t.Fatalf("no subscriptions/acknowledged for %s", uri)
		}
	}
}

// nextUpdate returns the URI of the next resource-updated notification.
func (b *bundle) nextUpdate(t *testing.T) string {
	t.Helper()
	select {
	case uri := <-b.updates:
		return uri
	case <-time.After(waitTimeout):
		t.Fatal("no notifications/resources/updated")
		return ""
	}
}

// updatesUntil collects resource-updated URIs up to and including barrier.
func (b *bundle) updatesUntil(t *testing.T, barrier string) []string {
	t.Helper()
	var got []string
	for {
		uri := b.nextUpdate(t)
		got = append(got, uri)
		if uri == barrier {
			return got
		}
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	_, err := New(Config{})
	require.ErrorContains(t, err, "Jobs is required")
}

func TestInitialize(t *testing.T) {
	t.Parallel()
	for _, protocol := range []string{legacyProtocol, modernProtocol} {
		t.Run(protocol, func(t *testing.T) {
			t.Parallel()
			b := setupWith(t, newFakeJobs(), nil, protocol)
			init := b.cs.InitializeResult()
			require.Equal(t, protocol, init.ProtocolVersion)
			require.Equal(t, DefaultName, init.ServerInfo.Name)
			require.Equal(t, "test", init.ServerInfo.Version)
			require.NotEmpty(t, init.Instructions)
			caps := init.Capabilities
			require.NotNil(t, caps.Resources)
			require.True(t, caps.Resources.Subscribe, "resources.subscribe")
			require.NotNil(t, caps.Tools)
		})
	}
}

func TestListTools(t *testing.T) {
	t.Parallel()
	b := setup(t)
	res, err := b.cs.ListTools(context.Background(), nil)
	require.NoError(t, err)
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
		require.NotNil(t, tool.OutputSchema, tool.Name)
		require.Equal(t, "object", toSchema(t, tool.OutputSchema).Type, tool.Name)
		require.Equal(t, "object", toSchema(t, tool.InputSchema).Type, tool.Name)
		require.NotEmpty(t, tool.Description, tool.Name)
	}
	// Without an ask service, no asks_* tools.
	require.ElementsMatch(t, []string{"jobs_submit", "jobs_get", "jobs_list", "jobs_cancel", "jobs_wait"}, names)

	for _, tool := range res.Tools {
		if tool.Name == "jobs_submit" {
			// The input schema accepts the seed's spec.
			requireValid(t, toSchema(t, tool.InputSchema), `{"spec":`+seedSpec+`}`)
			require.Contains(t, tool.Description, "INVALID_SPEC")
		}
	}
	// The instructions tell the loop, the states and the error format
	// once, for every tool.
	instr := b.cs.InitializeResult().Instructions
	for _, s := range []string{"jobs_wait", "mcp://jobs/{jobId}/status", "patch.diff", "SUCCEEDED", "WAITING_ON_ANSWER", "EXECUTOR_ERROR", `{"code","message","field"}`} {
		require.Contains(t, instr, s)
	}
}

func TestSubmit(t *testing.T) {
	t.Parallel()
	b := setup(t)

	// The seed's JobSpec, verbatim.
	var out submitResult
	b.ok(t, "jobs_submit", json.RawMessage(`{"spec":`+seedSpec+`}`), &out)
	require.True(t, relaytype.ValidJobID(out.JobID), out.JobID)
	require.True(t, out.Created)
	require.Equal(t, relaytype.StateQueued, out.State)
	require.EqualValues(t, 1, out.StateVersion)
	require.Equal(t, strings.Repeat("a", 40), out.BaselineCommit)

	// The same idempotency key returns the same job.
	var again submitResult
	b.ok(t, "jobs_submit", json.RawMessage(`{"spec":`+seedSpec+`}`), &again)
	require.Equal(t, out.JobID, again.JobID)
	require.False(t, again.Created)

	// Relaxations: no baselineCommit, executor, maxAttempts, timeoutS.
	spec := `{"repo":{"type":"local","path":"/src/repo"},"task":{"title":"t","description":"d"},` +
		`"execution":{"executor":"claude","maxAttempts":2,"timeoutS":600,"priority":"P0"},"idempotencyKey":"k2"}`
	var relaxed submitResult
	b.ok(t, "jobs_submit", map[string]any{"spec": json.RawMessage(spec)}, &relaxed)
	require.True(t, relaxed.Created)
	require.Equal(t, strings.Repeat("b", 40), relaxed.BaselineCommit, "resolved baseline is reported")
	job, err := b.fake.Get(context.Background(), relaxed.JobID)
	require.NoError(t, err)
	require.Equal(t, "claude", job.Spec.Execution.Executor)
	require.Equal(t, 2, job.Spec.Execution.MaxAttempts)
	require.Equal(t, 600, job.Spec.Execution.TimeoutS)
	require.Equal(t, relaytype.DefaultTTLS, job.Spec.Execution.TTLS, "defaults applied")

	// A spec sent as a JSON-encoded string (as some clients do) is accepted.
	var stringified submitResult
	b.ok(t, "jobs_submit", map[string]any{"spec": strings.Replace(seedSpec, "test-key-123", "k3", 1)}, &stringified)
	require.True(t, stringified.Created)
}

func TestSubmitErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	title := strings.Repeat("x", relaytype.MaxTitleLen+1)
	for _, tc := range []struct {
		name  string
		args  string
		code  relaytype.ErrorCode
		field string
	}{
		{"bad baselineCommit", `{"spec":` + strings.Replace(seedSpec, strings.Repeat("a", 40), "xyz", 1) + `}`, relaytype.CodeInvalidSpec, "repo.baselineCommit"},
		{"unknown field", `{"spec":` + strings.Replace(seedSpec, `"priority":"P1"`, `"priority":"P1","turbo":true`, 1) + `}`, relaytype.CodeInvalidSpec, "execution.turbo"},
		{"title too long", `{"spec":` + strings.Replace(seedSpec, "Test Task", title, 1) + `}`, relaytype.CodeInvalidSpec, "task.title"},
		{"wrong type", `{"spec":` + strings.Replace(seedSpec, `"ttlS":3600`, `"ttlS":"soon"`, 1) + `}`, relaytype.CodeInvalidSpec, "execution.ttlS"},
		{"bad priority", `{"spec":` + strings.Replace(seedSpec, `"P1"`, `"P9"`, 1) + `}`, relaytype.CodeInvalidSpec, "execution.priority"},
		{"missing spec", `{}`, relaytype.CodeInvalidSpec, "spec"},
		{"null spec", `{"spec":null}`, relaytype.CodeInvalidSpec, "spec"},
		{"spec not an object", `{"spec":[1]}`, relaytype.CodeInvalidSpec, "spec"},
		{"unknown argument", `{"spec":` + seedSpec + `,"wait":true}`, relaytype.CodeInvalidRequest, "wait"},
		{"unknown executor", `{"spec":` + strings.Replace(seedSpec, `"ttlS":3600`, `"ttlS":3600,"executor":"bogus"`, 1) + `}`, relaytype.CodeInvalidSpec, "execution.executor"},
		{"no executor", `{"spec":` + strings.Replace(seedSpec, `"ttlS":3600`, `"ttlS":3600,"executor":"none"`, 1) + `}`, relaytype.CodeNoExecutor, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := b.fail(t, "jobs_submit", json.RawMessage(tc.args))
			require.Equal(t, tc.code, body.Code, body.Message)
			require.Equal(t, tc.field, body.Field, body.Message)
			if tc.field != "" {
				require.Contains(t, body.Message, tc.field, "the message names the field")
			}
		})
	}
}

func TestGet(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.submit(t, "k").JobID

	var st jobStatus
	b.ok(t, "jobs_get", map[string]any{"jobId": id}, &st)
	require.Equal(t, id, st.ID)
	require.Equal(t, relaytype.StateQueued, st.State)
	require.Equal(t, relaytype.PriorityP1, st.Priority)
	require.Equal(t, relaytype.DefaultMaxAttempts, st.MaxAttempts)
	require.Equal(t, "codex", st.Executor)
	require.Empty(t, st.Artifacts)
	require.Empty(t, st.StartedAt)
	require.Nil(t, st.DurationMs)
	_, err := time.Parse(time.RFC3339, string(st.CreatedAt))
	require.NoError(t, err)

	ctx := context.Background()
	_, err = b.fake.transition(ctx, id, relaytype.StateRunning, "", "")
	require.NoError(t, err)
	patch := b.fake.putArtifact(id, relaytype.ArtifactPatch, "--- a/x\n+++ b/x\n")
	_, err = b.fake.transition(ctx, id, relaytype.StateFailed, relaytype.ReasonBadArtifacts, "patch does not apply")
	require.NoError(t, err)

	b.ok(t, "jobs_get", map[string]any{"jobId": id}, &st)
	require.Equal(t, relaytype.StateFailed, st.State)
	require.EqualValues(t, 3, st.StateVersion)
	require.Equal(t, 1, st.Attempt)
	require.Equal(t, relaytype.ReasonBadArtifacts, st.ReasonCode)
	require.Equal(t, "patch does not apply", st.Summary)
	require.Equal(t, []artifactRef{{Kind: relaytype.ArtifactPatch, URI: "mcp://jobs/" + id + "/artifacts/patch.diff", Digest: patch.Digest, Size: patch.Size}}, st.Artifacts)
	started, err := time.Parse(time.RFC3339, string(st.StartedAt))
	require.NoError(t, err)
	finished, err := time.Parse(time.RFC3339, string(st.FinishedAt))
	require.NoError(t, err)
	require.NotNil(t, st.DurationMs)
	require.Equal(t, finished.Sub(started).Milliseconds(), *st.DurationMs)
	require.Equal(t, st.FinishedAt, st.LastUpdate)

	body := b.fail(t, "jobs_get", map[string]any{"jobId": "job_nope"})
	require.Equal(t, relaytype.CodeJobNotFound, body.Code)
	require.Contains(t, body.Message, "job_nope")

	body = b.fail(t, "jobs_get", map[string]any{})
	require.Equal(t, toolErrorBody{Code: relaytype.CodeInvalidRequest, Field: "jobId", Message: "jobId: required"}, body)

	body = b.fail(t, "jobs_get", map[string]any{"jobId": 7})
	require.Equal(t, relaytype.CodeInvalidRequest, body.Code)
	require.Equal(t, "jobId", body.Field)
}

func TestList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var ids []string
	for i := range 25 {
		ids = append(ids, b.submit(t, fmt.Sprint("k", i)).JobID)
	}
	_, err := b.fake.transition(context.Background(), ids[3], relaytype.StateRunning, "", "")
	require.NoError(t, err)

	var page listResult
	b.ok(t, "jobs_list", map[string]any{}, &page)
	require.Len(t, page.Items, defaultListLimit)
	require.Equal(t, 25, page.Total)
	require.True(t, page.HasMore)
	require.Equal(t, ids[24], page.Items[0].ID, "newest first")

	b.ok(t, "jobs_list", map[string]any{"offset": 20, "limit": 10}, &page)
	require.Len(t, page.Items, 5)
	require.Equal(t, 25, page.Total)
	require.False(t, page.HasMore)
	require.Equal(t, ids[0], page.Items[4].ID)

	b.ok(t, "jobs_list", map[string]any{"limit": 100}, &page)
	require.Len(t, page.Items, 25)
	require.False(t, page.HasMore)

	b.ok(t, "jobs_list", map[string]any{"state": "running"}, &page)
	require.Equal(t, 1, page.Total)
	require.Equal(t, ids[3], page.Items[0].ID)
	require.Equal(t, relaytype.StateRunning, page.Items[0].State)

	b.ok(t, "jobs_list", map[string]any{"state": "SUCCEEDED"}, &page)
	require.Empty(t, page.Items)
	require.NotNil(t, page.Items, "items is [] rather than null")

	for _, tc := range []struct {
		args  map[string]any
		field string
	}{
		{map[string]any{"limit": 101}, "limit"},
		{map[string]any{"limit": 0}, "limit"},
		{map[string]any{"limit": 1.5}, "limit"},
		{map[string]any{"limit": "ten"}, "limit"},
		{map[string]any{"offset": -1}, "offset"},
		{map[string]any{"state": "DONE"}, "state"},
		{map[string]any{"page": 2}, "page"},
	} {
		body := b.fail(t, "jobs_list", tc.args)
		require.Equal(t, relaytype.CodeInvalidRequest, body.Code, body.Message)
		require.Equal(t, tc.field, body.Field, body.Message)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.submit(t, "k").JobID

	var out cancelResult
	b.ok(t, "jobs_cancel", map[string]any{"jobId": id}, &out)
	require.Equal(t, cancelResult{OK: true, State: relaytype.StateCanceled}, out)

	body := b.fail(t, "jobs_cancel", map[string]any{"jobId": id})
	require.Equal(t, relaytype.CodeIllegalTransition, body.Code)
	require.Contains(t, body.Message, "CANCELED")

	body = b.fail(t, "jobs_cancel", map[string]any{"jobId": "job_nope"})
	require.Equal(t, relaytype.CodeJobNotFound, body.Code)
}

func TestReadResources(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.submit(t, "k").JobID
	other := b.submit(t, "k2").JobID
	_, err := b.fake.transition(context.Background(), id, relaytype.StateRunning, "", "")
	require.NoError(t, err)
	artifacts := map[relaytype.ArtifactKind]string{
		relaytype.ArtifactPatch: "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n",
		relaytype.ArtifactOut:   "# Test plan\n\n- run it\n",
		relaytype.ArtifactLogs:  "line 1\nline 2\n",
		relaytype.ArtifactPR:    `{"title":"x"}`,
	}
	for kind, data := range artifacts {
		b.fake.putArtifact(id, kind, data)
	}

	res, err := b.cs.ListResources(context.Background(), nil)
	require.NoError(t, err)
	require.Len(t, res.Resources, 1)
	require.Equal(t, "mcp://jobs/list", res.Resources[0].URI)
	tmpls, err := b.cs.ListResourceTemplates(context.Background(), nil)
	require.NoError(t, err)
	var uriTemplates []string
	for _, rt := range tmpls.ResourceTemplates {
		uriTemplates = append(uriTemplates, rt.URITemplate)
	}
	require.ElementsMatch(t, []string{"mcp://jobs/{jobId}/status", "mcp://jobs/{jobId}/events", "mcp://jobs/{jobId}/artifacts/{kind}"}, uriTemplates)

	c := b.read(t, "mcp://jobs/list")
	require.Equal(t, "application/json", c.MIMEType)
	var list listResult
	require.NoError(t, json.Unmarshal([]byte(c.Text), &list))
	require.Equal(t, 2, list.Total)
	require.Equal(t, []string{other, id}, []string{list.Items[0].ID, list.Items[1].ID})
	requireValid(t, b.outputSchema(t, "jobs_list"), c.Text)

	c = b.read(t, "mcp://jobs/"+id+"/status")
	require.Equal(t, "application/json", c.MIMEType)
	var st jobStatus
	require.NoError(t, json.Unmarshal([]byte(c.Text), &st))
	require.Equal(t, relaytype.StateRunning, st.State)
	require.Len(t, st.Artifacts, 4)
	requireValid(t, b.outputSchema(t, "jobs_get"), c.Text)

	c = b.read(t, "mcp://jobs/"+id+"/events")
	require.Equal(t, "application/json", c.MIMEType)
	var events []*relaytype.Event
	require.NoError(t, json.Unmarshal([]byte(c.Text), &events))
	require.Len(t, events, 6) // submitted, transition, four artifacts
	require.Equal(t, relaytype.EventSubmitted, events[0].Type)
	require.Equal(t, relaytype.EventTransition, events[1].Type)
	require.JSONEq(t, `{"from":"QUEUED","to":"RUNNING","stateVersion":2}`, string(events[1].Payload))

	c = b.read(t, "mcp://jobs/"+other+"/events")
	require.JSONEq(t, `[{"id":1,"jobId":"`+other+`","ts":"2026-01-02T03:04:07Z","type":"submitted"}]`, c.Text)

	for kind, mime := range map[relaytype.ArtifactKind]string{
		relaytype.ArtifactPatch: "text/x-diff",
		relaytype.ArtifactOut:   "text/markdown",
		relaytype.ArtifactLogs:  "text/plain",
		relaytype.ArtifactPR:    "application/json",
	} {
		c := b.read(t, relaytype.ArtifactURI(id, kind))
		require.Equal(t, mime, c.MIMEType, kind)
		require.Equal(t, artifacts[kind], c.Text, kind)
		_, meta, err := b.fake.ReadArtifact(context.Background(), id, kind)
		require.NoError(t, err)
		require.Equal(t, meta.Digest, c.Meta["digest"], kind)
		require.EqualValues(t, meta.Size, c.Meta["size"], kind)
	}

	// Logs that are not UTF-8 are served as a blob rather than mangled.
	b.fake.putArtifact(other, relaytype.ArtifactLogs, "\xff\xfe binary")
	c = b.read(t, relaytype.ArtifactURI(other, relaytype.ArtifactLogs))
	require.Empty(t, c.Text)
	require.Equal(t, []byte("\xff\xfe binary"), c.Blob)

	for _, uri := range []string{
		"mcp://jobs/job_nope/status",
		"mcp://jobs/job_nope/events",
		"mcp://jobs/job_nope/artifacts/patch.diff",
		"mcp://jobs/" + other + "/artifacts/patch.diff", // not produced
		"mcp://jobs/" + id + "/artifacts/secrets.txt",   // not a kind
		"mcp://jobs/../status",
		"mcp://jobs/" + id + "/nope",
		"mcp://jobs/" + id + "/asks", // no ask service
	} {
		_, err := b.cs.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: uri})
		var werr *jsonrpc.Error
		require.True(t, errors.As(err, &werr), "%s: %v", uri, err)
		requireNotFound(t, werr, uri)
	}
}

func TestSubscribe(t *testing.T) {
	t.Parallel()
	for _, protocol := range []string{legacyProtocol, modernProtocol} {
		t.Run(protocol, func(t *testing.T) {
			t.Parallel()
			b := setupWith(t, newFakeJobs(), nil, protocol)
			ctx := context.Background()
			a := b.submit(t, "a").JobID
			other := b.submit(t, "b").JobID
			barrier := b.submit(t, "c").JobID

			b.subscribe(t, statusURI(a))
			b.subscribe(t, relaytype.ArtifactURI(a, relaytype.ArtifactPatch))
			b.subscribe(t, statusURI(barrier))

			// The submits above published changes that may reach the
			// server only now; flush them with a change no submit makes.
			flush := relaytype.ArtifactURI(other, relaytype.ArtifactPR)
			b.subscribe(t, flush)
			b.fake.emit(relay.Change{JobID: other, Artifact: relaytype.ArtifactPR})
			b.updatesUntil(t, flush)

			// A state change of a notifies its status.
			_, err := b.fake.transition(ctx, a, relaytype.StateRunning, "", "")
			require.NoError(t, err)
			require.Equal(t, statusURI(a), b.nextUpdate(t))

			// Changes nobody subscribed to notify nothing: another job's
			// state, and an artifact of a other than the subscribed one.
			_, err = b.fake.transition(ctx, other, relaytype.StateRunning, "", "")
			require.NoError(t, err)
			b.fake.putArtifact(other, relaytype.ArtifactPatch, "x")
			b.fake.putArtifact(a, relaytype.ArtifactLogs, "log") // a's status, not its logs
			b.fake.putArtifact(a, relaytype.ArtifactPatch, "diff")
			b.fake.emit(relay.Change{JobID: barrier, State: relaytype.StateQueued, StateVersion: 1})
			got := b.updatesUntil(t, statusURI(barrier))
			require.NotContains(t, got, statusURI(other))
			require.NotContains(t, got, relaytype.ArtifactURI(other, relaytype.ArtifactPatch))
			require.NotContains(t, got, relaytype.ArtifactURI(a, relaytype.ArtifactLogs))
			require.Contains(t, got, relaytype.ArtifactURI(a, relaytype.ArtifactPatch))
			require.Contains(t, got, statusURI(a))
			require.NotContains(t, got, listURI)

			// After unsubscribing, a's status is quiet.
			require.NoError(t, b.cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: statusURI(a)}))
			if protocol == legacyProtocol { // modern unsubscribe is asynchronous
				_, err = b.fake.transition(ctx, a, relaytype.StateSucceeded, "", "")
				require.NoError(t, err)
				b.fake.emit(relay.Change{JobID: barrier, State: relaytype.StateQueued, StateVersion: 1})
				require.Equal(t, []string{statusURI(barrier)}, b.updatesUntil(t, statusURI(barrier)))
			}

			// The job list is notified on any state change.
			b.subscribe(t, listURI)
			_, err = b.fake.Cancel(ctx, other)
			require.NoError(t, err)
			require.Equal(t, listURI, b.nextUpdate(t))
		})
	}
}

// requireNotFound checks that err is the SDK's resource-not-found error.
func requireNotFound(t *testing.T, err *jsonrpc.Error, uri string) {
	t.Helper()
	require.EqualValues(t, jsonrpc.CodeInvalidParams, err.Code, uri)
	require.Equal(t, "Resource not found", err.Message, uri)
	require.JSONEq(t, fmt.Sprintf(`{"uri":%q}`, uri), string(err.Data), uri)
}

func TestSubscribeUnknown(t *testing.T) {
	t.Parallel()
	b := setupWith(t, newFakeJobs(), nil, legacyProtocol)
	for _, uri := range []string{"mcp://jobs/job_nope/status", "mcp://jobs/x/y/z", "file:///etc/passwd"} {
		err := b.cs.Subscribe(context.Background(), &mcp.SubscribeParams{URI: uri})
		var werr *jsonrpc.Error
		require.True(t, errors.As(err, &werr), "%s: %v", uri, err)
		requireNotFound(t, werr, uri)
	}
}

// TestSessionsSharePump runs two sessions on one Server: each change is
// announced once to each subscribed session, and the relay subscription
// ends with the last session.
func TestSessionsSharePump(t *testing.T) {
	t.Parallel()
	fake := newFakeJobs()
	srv, err := New(Config{Jobs: fake, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)

	t.Run("sessions", func(t *testing.T) {
		b1 := setupWith(t, fake, srv, legacyProtocol)
		b2 := setupWith(t, fake, srv, legacyProtocol)
		require.Equal(t, 1, fake.subscribers(), "one relay subscription for both sessions")
		id := b1.submit(t, "a").JobID
		barrier := b1.submit(t, "b").JobID
		for _, b := range []*bundle{b1, b2} {
			b.subscribe(t, statusURI(id))
			b.subscribe(t, statusURI(barrier))
		}
		_, err := fake.transition(context.Background(), id, relaytype.StateRunning, "", "")
		require.NoError(t, err)
		fake.emit(relay.Change{JobID: barrier, State: relaytype.StateQueued, StateVersion: 1})
		for _, b := range []*bundle{b1, b2} {
			require.Equal(t, []string{statusURI(id), statusURI(barrier)}, b.updatesUntil(t, statusURI(barrier)))
		}
	})
	// The subtest's cleanups have closed both sessions and waited for Run.
	require.Zero(t, fake.subscribers(), "relay subscription ended with the last session")
	srv.subsMu.Lock()
	defer srv.subsMu.Unlock()
	require.Empty(t, srv.subs, "subscriptions of ended sessions are dropped")
}

func TestRunContextCanceled(t *testing.T) {
	t.Parallel()
	fake := newFakeJobs()
	srv, err := New(Config{Jobs: fake, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	serverT, clientT := mcp.NewInMemoryTransports()
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run(ctx, serverT) }()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "v0"}, nil).Connect(context.Background(), clientT, nil)
	require.NoError(t, err)
	defer cs.Close()
	require.Equal(t, 1, fake.subscribers())
	cancel()
	select {
	case err := <-runErr:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return after ctx ended")
	}
	require.Zero(t, fake.subscribers())
}

func TestWatch(t *testing.T) {
	t.Parallel()
	fake := newFakeJobs()
	srv, err := New(Config{Jobs: fake, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Watch(ctx) }()
	// Connect a session directly, as an HTTP handler would.
	serverT, clientT := mcp.NewInMemoryTransports()
	ss, err := srv.MCP().Connect(context.Background(), serverT, nil)
	require.NoError(t, err)
	defer ss.Close()
	updates := make(chan string, 10)
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "v0"}, &mcp.ClientOptions{
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) { updates <- req.Params.URI },
	}).Connect(context.Background(), clientT, &mcp.ClientSessionOptions{ProtocolVersion: legacyProtocol})
	require.NoError(t, err)
	defer cs.Close()
	require.NoError(t, cs.Subscribe(context.Background(), &mcp.SubscribeParams{URI: listURI}))

	select {
	case <-fake.subscribed:
	case <-time.After(waitTimeout):
		t.Fatal("Watch did not subscribe to the relay")
	}
	fake.emit(relay.Change{JobID: "job_x", State: relaytype.StateQueued, StateVersion: 1})
	select {
	case uri := <-updates:
		require.Equal(t, listURI, uri)
	case <-time.After(waitTimeout):
		t.Fatal("no notification")
	}
	cancel()
	<-done
	require.Zero(t, fake.subscribers())
}

func TestChangedURIs(t *testing.T) {
	t.Parallel()
	got := changedURIs([]relay.Change{
		{JobID: "job_a", State: relaytype.StateRunning, StateVersion: 2},
		{JobID: "job_a", Artifact: relaytype.ArtifactOut},
		{JobID: "job_a", Artifact: relaytype.ArtifactPatch},
		{JobID: "job_a", State: relaytype.StateSucceeded, StateVersion: 3},
	})
	require.Equal(t, []string{
		"mcp://jobs/job_a/status",
		"mcp://jobs/job_a/events",
		"mcp://jobs/job_a/asks",
		"mcp://jobs/list",
		"mcp://jobs/job_a/artifacts/out.md",
		"mcp://jobs/job_a/artifacts/patch.diff",
	}, got)

	// An ask created or answered touches the job's asks, status and events.
	got = changedURIs([]relay.Change{{JobID: "job_b", Asks: true}})
	require.Equal(t, []string{"mcp://jobs/job_b/asks", "mcp://jobs/job_b/status", "mcp://jobs/job_b/events"}, got)
}

func TestParseURI(t *testing.T) {
	t.Parallel()
	for uri, want := range map[string]*resourceRef{
		"mcp://jobs/list":                      {kind: resList},
		"mcp://jobs/job_1/status":              {kind: resStatus, jobID: "job_1"},
		"mcp://jobs/job_1/events":              {kind: resEvents, jobID: "job_1"},
		"mcp://jobs/job_1/asks":                {kind: resAsks, jobID: "job_1"},
		"mcp://jobs/job_1/asks/x":              nil,
		"mcp://jobs/job_1/artifacts/out.md":    {kind: resArtifact, jobID: "job_1", artifact: relaytype.ArtifactOut},
		"mcp://jobs/job_1/artifacts/../status": nil,
		"mcp://jobs/job_1/artifacts/x":         nil,
		"mcp://jobs/job_1/status/x":            nil,
		"mcp://jobs/job_1":                     nil,
		"mcp://jobs/../x/status":               nil,
		"mcp://jobs/":                          nil,
		"mcp://other/job_1/status":             nil,
	} {
		got, ok := parseURI(uri)
		if want == nil {
			require.False(t, ok, uri)
			continue
		}
		require.True(t, ok, uri)
		require.Equal(t, *want, got, uri)
	}
}
