package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/sqlite"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// testProgressEvery is how often jobs_wait reports progress in tests.
const testProgressEvery = 50 * time.Millisecond

// setupAsks is setupWith over a fake relay and a fake ask service, with
// the server's clock on the fake's and progress every testProgressEvery.
func setupAsks(t *testing.T, protocol string) (*bundle, *fakeAsks) {
	t.Helper()
	fake := newFakeJobs()
	asks := newFakeAsks(fake)
	srv, err := New(Config{Jobs: fake, Asks: asks, Logger: slog.New(slog.DiscardHandler), Version: "test"})
	require.NoError(t, err)
	srv.now = fake.clock
	srv.progressEvery = testProgressEvery
	return setupWith(t, fake, srv, protocol), asks
}

// running submits a job and moves it to RUNNING.
func (b *bundle) running(t *testing.T, key string) string {
	t.Helper()
	id := b.submit(t, key).JobID
	_, err := b.fake.transition(context.Background(), id, relaytype.StateRunning, "", "")
	require.NoError(t, err)
	return id
}

type callOutcome struct {
	res *mcp.CallToolResult
	err error
}

// start calls a tool in the background, with a progress token unless
// token is nil.
func (b *bundle) start(ctx context.Context, name string, args any, token any) <-chan callOutcome {
	params := &mcp.CallToolParams{Name: name, Arguments: args}
	if token != nil {
		params.SetProgressToken(token)
	}
	done := make(chan callOutcome, 1)
	go func() {
		res, err := b.cs.CallTool(ctx, params)
		done <- callOutcome{res, err}
	}()
	return done
}

// await waits for a call started with start that must succeed and decodes
// its result into out.
func (b *bundle) await(t *testing.T, name string, done <-chan callOutcome, out any) {
	t.Helper()
	select {
	case c := <-done:
		require.NoError(t, c.err)
		b.decodeOK(t, name, c.res, out)
	case <-time.After(waitTimeout):
		t.Fatalf("%s did not return", name)
	}
}

// awaitGet waits until the relay is asked for job id: a jobs_wait in
// flight has read the state it waits to change.
func awaitGet(t *testing.T, gets <-chan string, id string) {
	t.Helper()
	for {
		select {
		case got := <-gets:
			if got == id {
				return
			}
		case <-time.After(waitTimeout):
			t.Fatalf("job %s was not read", id)
		}
	}
}

func TestAsksTools(t *testing.T) {
	t.Parallel()
	b, _ := setupAsks(t, "")
	res, err := b.cs.ListTools(context.Background(), nil)
	require.NoError(t, err)
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
		require.Equal(t, "object", toSchema(t, tool.OutputSchema).Type, tool.Name)
	}
	require.ElementsMatch(t, []string{"jobs_submit", "jobs_get", "jobs_list", "jobs_cancel", "jobs_wait", "asks_list", "asks_answer"}, names)
	// The instructions carry the loop, the ask steps and the error format
	// once; the tools' descriptions do not repeat them.
	for _, s := range []string{"jobs_submit", "jobs_wait", "WAITING_ON_ANSWER", "asks_list", "asks_answer", "REJECTED", "patch.diff", `{"code","message","field"}`} {
		require.Contains(t, b.cs.InitializeResult().Instructions, s)
	}
	// Without an ask service the instructions leave the ask steps out.
	require.NotContains(t, setup(t).cs.InitializeResult().Instructions, "asks_answer")
}

func TestAsksList(t *testing.T) {
	t.Parallel()
	b, asks := setupAsks(t, "")
	ctx := context.Background()
	a := b.running(t, "a")
	other := b.running(t, "b")
	q1 := asks.create(a, "Which branch?")
	q2 := asks.create(a, "Which database?")
	q3 := asks.create(other, "May I delete the cache?")
	_, _, err := asks.Answer(ctx, &relaytype.Answer{AskID: q2.AskID, Status: relaytype.StatusAnswered, AnswerText: "postgres",
		Attestation: &relaytype.Attestation{AnsweredBy: "runner"}})
	require.NoError(t, err)

	ids := func(r asksResult) []string {
		var out []string
		for _, it := range r.Items {
			out = append(out, it.AskID)
		}
		return out
	}

	// Pending asks of every job by default.
	var out asksResult
	b.ok(t, "asks_list", map[string]any{}, &out)
	require.Equal(t, []string{q1.AskID, q3.AskID}, ids(out))
	require.Equal(t, 2, out.Total)

	b.ok(t, "asks_list", map[string]any{"jobId": a}, &out)
	require.Equal(t, []string{q1.AskID}, ids(out))
	it := out.Items[0]
	require.Equal(t, a, it.JobID)
	require.Equal(t, "step-1", it.StepID)
	require.Equal(t, relaytype.AskClarification, it.AskType)
	require.Equal(t, "Which branch?", it.Prompt)
	require.Equal(t, "orchestrator", it.Route)
	require.Equal(t, q1.ContextHash, it.ContextHash)
	require.JSONEq(t, string(q1.ContextEnvelope), string(it.ContextEnvelope), "the envelope is a JSON object, not a string")
	require.Equal(t, &askConstraints{TimeoutS: 600, AllowedTools: []string{"grep"}}, it.Constraints)
	require.Equal(t, relaytype.StatusPending, it.Status)
	require.Equal(t, stamp(q1.CreatedAt), it.CreatedAt)
	require.Equal(t, stamp(q1.DeadlineAt), it.DeadlineAt)
	require.Equal(t, int64(b.fake.clock().Sub(q1.CreatedAt)/time.Second), it.AgeSeconds)
	require.Nil(t, it.Answer)

	// Every status, case-insensitively; "" means every status too.
	for _, status := range []string{"ALL", "all", ""} {
		b.ok(t, "asks_list", map[string]any{"jobId": a, "status": status}, &out)
		require.Equal(t, []string{q1.AskID, q2.AskID}, ids(out), status)
	}
	require.Nil(t, out.Items[0].Answer)
	require.Equal(t, &askAnswer{Status: answerStatus(relaytype.StatusAnswered), AnswerText: "postgres", AnsweredBy: "runner",
		AnsweredAt: stamp(q1.CreatedAt.Add(2 * time.Second))}, out.Items[1].Answer)

	b.ok(t, "asks_list", map[string]any{"status": "answered"}, &out)
	require.Equal(t, []string{q2.AskID}, ids(out))
	b.ok(t, "asks_list", map[string]any{"status": "REJECTED"}, &out)
	require.Empty(t, out.Items)
	require.NotNil(t, out.Items, "items is [] rather than null")
	require.Zero(t, out.Total)

	for _, tc := range []struct {
		args  map[string]any
		code  relaytype.ErrorCode
		field string
	}{
		{map[string]any{"status": "DONE"}, relaytype.CodeInvalidRequest, "status"},
		{map[string]any{"status": 1}, relaytype.CodeInvalidRequest, "status"},
		{map[string]any{"jobId": "../x"}, relaytype.CodeInvalidRequest, "jobId"},
		{map[string]any{"askId": q1.AskID}, relaytype.CodeInvalidRequest, "askId"},
		{map[string]any{"jobId": "job_nope"}, relaytype.CodeJobNotFound, ""},
	} {
		body := b.fail(t, "asks_list", tc.args)
		require.Equal(t, tc.code, body.Code, body.Message)
		require.Equal(t, tc.field, body.Field, body.Message)
	}
}

func TestAsksAnswer(t *testing.T) {
	t.Parallel()
	b, asks := setupAsks(t, "")
	ctx := context.Background()
	id := b.running(t, "a")
	q1 := asks.create(id, "Which branch?")
	q2 := asks.create(id, "Pick one")

	var out answerResult
	b.ok(t, "asks_answer", map[string]any{"askId": q1.AskID, "answerText": "main"}, &out)
	require.Equal(t, answerResult{AskID: q1.AskID, JobID: id, Status: answerStatus(relaytype.StatusAnswered), Created: true,
		JobState: relaytype.StateWaitingOnAnswer}, out, "q2 is still pending")
	rec, err := asks.AnswerOf(ctx, q1.AskID)
	require.NoError(t, err)
	require.Equal(t, "main", rec.AnswerText)
	require.Equal(t, &relaytype.Attestation{AnsweredBy: "orchestrator"}, rec.Attestation)

	// The same answer again is no error; a different one is a conflict.
	b.ok(t, "asks_answer", map[string]any{"askId": q1.AskID, "answerText": "main", "status": "answered"}, &out)
	require.False(t, out.Created)
	body := b.fail(t, "asks_answer", map[string]any{"askId": q1.AskID, "answerText": "develop"})
	require.Equal(t, relaytype.CodeConflict, body.Code, body.Message)

	for _, tc := range []struct {
		args  map[string]any
		code  relaytype.ErrorCode
		field string
	}{
		// The service's answer_text is reported as the argument answerText.
		{map[string]any{"askId": q2.AskID}, relaytype.CodeInvalidRequest, "answerText"},
		{map[string]any{"askId": q2.AskID, "answerJson": nil}, relaytype.CodeInvalidRequest, "answerText"},
		{map[string]any{"askId": q2.AskID, "status": "MAYBE", "answerText": "x"}, relaytype.CodeInvalidRequest, "status"},
		{map[string]any{"askId": q2.AskID, "status": "TIMEOUT"}, relaytype.CodeInvalidRequest, "status"},
		{map[string]any{"askId": q2.AskID, "status": "PENDING"}, relaytype.CodeInvalidRequest, "status"},
		{map[string]any{"askId": q2.AskID, "answerText": 3}, relaytype.CodeInvalidRequest, "answerText"},
		{map[string]any{"answerText": "x"}, relaytype.CodeInvalidRequest, "askId"},
		{map[string]any{"askId": q2.AskID, "answer": "x"}, relaytype.CodeInvalidRequest, "answer"},
		{map[string]any{"askId": uuid.NewString(), "answerText": "x"}, relaytype.CodeAskNotFound, ""},
	} {
		body := b.fail(t, "asks_answer", tc.args)
		require.Equal(t, tc.code, body.Code, body.Message)
		require.Equal(t, tc.field, body.Field, body.Message)
	}

	// A JSON answer to the last pending ask sets the job running again.
	b.ok(t, "asks_answer", map[string]any{"askId": q2.AskID, "answerJson": map[string]any{"choice": 2}}, &out)
	require.Equal(t, answerResult{AskID: q2.AskID, JobID: id, Status: answerStatus(relaytype.StatusAnswered), Created: true,
		JobState: relaytype.StateRunning}, out)
	rec, err = asks.AnswerOf(ctx, q2.AskID)
	require.NoError(t, err)
	require.JSONEq(t, `{"choice":2}`, string(rec.AnswerJSON))

	// REJECTED fails the job.
	other := b.running(t, "b")
	q3 := asks.create(other, "May I drop the table?")
	b.ok(t, "asks_answer", map[string]any{"askId": q3.AskID, "status": "rejected", "error": "never"}, &out)
	require.Equal(t, answerStatus(relaytype.StatusRejected), out.Status)
	require.Equal(t, relaytype.StateFailed, out.JobState)
	job, err := b.fake.Get(ctx, other)
	require.NoError(t, err)
	require.Equal(t, relaytype.ReasonPolicy, job.ReasonCode)
}

func TestAsksDisabled(t *testing.T) {
	t.Parallel()
	b := setupWith(t, newFakeJobs(), nil, legacyProtocol)
	id := b.submit(t, "a").JobID
	body := b.fail(t, "jobs_wait", map[string]any{"jobId": "job_nope"})
	require.Equal(t, relaytype.CodeJobNotFound, body.Code)
	res, err := b.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "asks_list", Arguments: map[string]any{}})
	if err == nil {
		require.True(t, res.IsError, "asks_list is not offered")
	}
	err = b.cs.Subscribe(context.Background(), &mcp.SubscribeParams{URI: asksURI(id)})
	var werr *jsonrpc.Error
	require.True(t, errors.As(err, &werr), "%v", err)
	requireNotFound(t, werr, asksURI(id))

	// jobs_wait works without it and reports no pending asks.
	_, err = b.fake.Cancel(context.Background(), id)
	require.NoError(t, err)
	var out waitResult
	b.ok(t, "jobs_wait", map[string]any{"jobId": id}, &out)
	require.Equal(t, relaytype.StateCanceled, out.State)
	require.Zero(t, out.PendingAsks)
}

func TestAsksResource(t *testing.T) {
	t.Parallel()
	b, asks := setupAsks(t, "")
	id := b.running(t, "a")
	other := b.submit(t, "b").JobID
	q1 := asks.create(id, "Which branch?")
	q2 := asks.create(id, "Which database?")
	var ans answerResult
	b.ok(t, "asks_answer", map[string]any{"askId": q1.AskID, "answerText": "main"}, &ans)

	tmpls, err := b.cs.ListResourceTemplates(context.Background(), nil)
	require.NoError(t, err)
	var uriTemplates []string
	for _, rt := range tmpls.ResourceTemplates {
		uriTemplates = append(uriTemplates, rt.URITemplate)
	}
	require.Contains(t, uriTemplates, "mcp://jobs/{jobId}/asks")

	c := b.read(t, asksURI(id))
	require.Equal(t, "application/json", c.MIMEType)
	requireValid(t, b.outputSchema(t, "asks_list"), c.Text)
	var out asksResult
	require.NoError(t, json.Unmarshal([]byte(c.Text), &out))
	require.Equal(t, 2, out.Total)
	require.Equal(t, q1.AskID, out.Items[0].AskID)
	require.Equal(t, relaytype.StatusAnswered, out.Items[0].Status)
	require.Equal(t, "orchestrator", out.Items[0].Answer.AnsweredBy)
	require.Equal(t, q2.AskID, out.Items[1].AskID)
	require.Equal(t, relaytype.StatusPending, out.Items[1].Status)

	c = b.read(t, asksURI(other))
	require.JSONEq(t, `{"items":[],"total":0}`, c.Text)

	_, err = b.cs.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: asksURI("job_nope")})
	var werr *jsonrpc.Error
	require.True(t, errors.As(err, &werr), "%v", err)
	requireNotFound(t, werr, asksURI("job_nope"))
}

func TestAsksSubscribe(t *testing.T) {
	t.Parallel()
	for _, protocol := range []string{legacyProtocol, modernProtocol} {
		t.Run(protocol, func(t *testing.T) {
			t.Parallel()
			b, asks := setupAsks(t, protocol)
			id := b.running(t, "a")
			barrier := b.submit(t, "barrier").JobID
			b.subscribe(t, asksURI(id))
			b.subscribe(t, statusURI(barrier))
			flush := func() []string {
				b.fake.emit(relay.Change{JobID: barrier, State: relaytype.StateQueued, StateVersion: 1})
				return b.updatesUntil(t, statusURI(barrier))
			}
			flush() // changes made before the subscriptions

			// An ask created (the job goes WAITING_ON_ANSWER) and answered.
			q := asks.create(id, "Which branch?")
			require.Contains(t, flush(), asksURI(id))
			var out answerResult
			b.ok(t, "asks_answer", map[string]any{"askId": q.AskID, "answerText": "main"}, &out)
			require.Equal(t, relaytype.StateRunning, out.JobState)
			require.Contains(t, flush(), asksURI(id))

			// An ask change alone, and a state change (ending the job
			// closes its asks), notify the asks too.
			b.fake.emit(relay.Change{JobID: id, Asks: true})
			require.Contains(t, flush(), asksURI(id))
			_, err := b.fake.Cancel(context.Background(), id)
			require.NoError(t, err)
			require.Equal(t, []string{asksURI(id), statusURI(barrier)}, flush())
		})
	}
}

func TestWaitChange(t *testing.T) {
	t.Parallel()
	b, asks := setupAsks(t, "")
	ctx := context.Background()
	id := b.submit(t, "a").JobID
	other := b.submit(t, "b").JobID

	// A state change ends the wait.
	b.fake.drainGets()
	done := b.start(ctx, "jobs_wait", map[string]any{"jobId": id, "timeoutS": maxWaitS}, nil)
	awaitGet(t, b.fake.gets, id)
	_, err := b.fake.transition(ctx, other, relaytype.StateRunning, "", "") // another job's
	require.NoError(t, err)
	b.fake.putArtifact(id, relaytype.ArtifactLogs, "log")
	_, err = b.fake.transition(ctx, id, relaytype.StateRunning, "", "")
	require.NoError(t, err)
	var out waitResult
	b.await(t, "jobs_wait", done, &out)
	require.True(t, out.Changed)
	require.Equal(t, id, out.ID)
	require.Equal(t, relaytype.StateRunning, out.State)
	require.EqualValues(t, 2, out.StateVersion)
	require.Len(t, out.Artifacts, 1, "the status includes artifacts")
	require.Zero(t, out.PendingAsks)

	// So does an ask: the first moves the job to WAITING_ON_ANSWER, a
	// second changes only the asks.
	b.fake.drainGets()
	done = b.start(ctx, "jobs_wait", map[string]any{"jobId": id}, nil)
	awaitGet(t, b.fake.gets, id)
	asks.create(id, "Which branch?")
	b.await(t, "jobs_wait", done, &out)
	require.True(t, out.Changed)
	require.Equal(t, relaytype.StateWaitingOnAnswer, out.State)
	require.EqualValues(t, 3, out.StateVersion)
	require.Equal(t, 1, out.PendingAsks)

	b.fake.drainGets()
	done = b.start(ctx, "jobs_wait", map[string]any{"jobId": id}, nil)
	awaitGet(t, b.fake.gets, id)
	asks.create(id, "Which database?")
	b.await(t, "jobs_wait", done, &out)
	require.True(t, out.Changed)
	require.Equal(t, relaytype.StateWaitingOnAnswer, out.State)
	require.EqualValues(t, 3, out.StateVersion)
	require.Equal(t, 2, out.PendingAsks)
}

func TestWaitTimeout(t *testing.T) {
	t.Parallel()
	b, _ := setupAsks(t, "")
	id := b.submit(t, "a").JobID
	began := time.Now()
	var out waitResult
	b.ok(t, "jobs_wait", map[string]any{"jobId": id, "timeoutS": 1}, &out)
	require.GreaterOrEqual(t, time.Since(began), time.Second)
	require.False(t, out.Changed)
	require.Equal(t, relaytype.StateQueued, out.State)
	require.EqualValues(t, 1, out.StateVersion)
	require.Empty(t, b.progress, "no progress without a progress token")
}

func TestWaitTerminal(t *testing.T) {
	t.Parallel()
	b, _ := setupAsks(t, "")
	id := b.submit(t, "a").JobID
	_, err := b.fake.Cancel(context.Background(), id)
	require.NoError(t, err)
	began := time.Now()
	var out waitResult
	b.ok(t, "jobs_wait", map[string]any{"jobId": id, "timeoutS": maxWaitS}, &out)
	require.Less(t, time.Since(began), waitTimeout, "returns at once")
	require.False(t, out.Changed)
	require.Equal(t, relaytype.StateCanceled, out.State)
	require.NotEmpty(t, out.FinishedAt)
}

func TestWaitProgress(t *testing.T) {
	t.Parallel()
	b, _ := setupAsks(t, "")
	ctx := context.Background()
	id := b.submit(t, "a").JobID
	done := b.start(ctx, "jobs_wait", map[string]any{"jobId": id}, "tok-1")
	last := 0.0
	for range 3 {
		select {
		case p := <-b.progress:
			require.Equal(t, "tok-1", p.ProgressToken)
			require.Greater(t, p.Progress, last, "progress increases")
			require.Less(t, p.Progress, float64(defaultWaitS))
			require.EqualValues(t, defaultWaitS, p.Total)
			require.Equal(t, string(relaytype.StateQueued), p.Message)
			last = p.Progress
		case <-time.After(waitTimeout):
			t.Fatal("no notifications/progress")
		}
	}
	_, err := b.fake.transition(ctx, id, relaytype.StateRunning, "", "")
	require.NoError(t, err)
	var out waitResult
	b.await(t, "jobs_wait", done, &out)
	require.True(t, out.Changed)
	require.Equal(t, relaytype.StateRunning, out.State)
}

func TestWaitCanceled(t *testing.T) {
	t.Parallel()
	b, _ := setupAsks(t, "")
	id := b.submit(t, "a").JobID
	require.Equal(t, 1, b.fake.subscribers(), "the pump")
	b.fake.drainGets()
	ctx, cancel := context.WithCancel(context.Background())
	done := b.start(ctx, "jobs_wait", map[string]any{"jobId": id}, nil)
	awaitGet(t, b.fake.gets, id)
	require.Equal(t, 2, b.fake.subscribers(), "the pump and the wait")
	cancel()
	select {
	case c := <-done:
		require.ErrorIs(t, c.err, context.Canceled)
	case <-time.After(waitTimeout):
		t.Fatal("jobs_wait did not return after the client canceled it")
	}
	// The server ends the wait, and its relay subscription, too.
	require.Eventually(t, func() bool { return b.fake.subscribers() == 1 }, waitTimeout, time.Millisecond)
}

func TestWaitErrors(t *testing.T) {
	t.Parallel()
	b, _ := setupAsks(t, "")
	id := b.submit(t, "a").JobID
	for _, tc := range []struct {
		args  map[string]any
		code  relaytype.ErrorCode
		field string
	}{
		{map[string]any{}, relaytype.CodeInvalidRequest, "jobId"},
		{map[string]any{"jobId": id, "timeoutS": 0}, relaytype.CodeInvalidRequest, "timeoutS"},
		{map[string]any{"jobId": id, "timeoutS": maxWaitS + 1}, relaytype.CodeInvalidRequest, "timeoutS"},
		{map[string]any{"jobId": id, "timeoutS": 1.5}, relaytype.CodeInvalidRequest, "timeoutS"},
		{map[string]any{"jobId": id, "timeoutS": "10"}, relaytype.CodeInvalidRequest, "timeoutS"},
		{map[string]any{"jobId": id, "timeout": 10}, relaytype.CodeInvalidRequest, "timeout"},
		{map[string]any{"jobId": "job_nope"}, relaytype.CodeJobNotFound, ""},
	} {
		body := b.fail(t, "jobs_wait", tc.args)
		require.Equal(t, tc.code, body.Code, body.Message)
		require.Equal(t, tc.field, body.Field, body.Message)
	}
}

// blockingHandler admits every spec and runs each job until it is
// released or its context ends.
type blockingHandler struct {
	started chan string
	release chan struct{}
}

func (h *blockingHandler) Admit(context.Context, *relaytype.JobSpec) (string, string, error) {
	return "test", strings.Repeat("a", 40), nil
}

func (h *blockingHandler) Handle(ctx context.Context, job *relaytype.Job) relay.Outcome {
	h.started <- job.ID
	select {
	case <-ctx.Done():
		return relay.Outcome{}
	case <-h.release:
		return relay.Outcome{State: relaytype.StateSucceeded, Summary: "done"}
	}
}

// readSignalingRelay is the real relay, telling on every job it reads.
type readSignalingRelay struct {
	*relay.Relay
	gets chan string
}

func (r *readSignalingRelay) Get(ctx context.Context, id string) (*relaytype.Job, error) {
	job, err := r.Relay.Get(ctx, id)
	if err == nil {
		select {
		case r.gets <- id:
		default:
		}
	}
	return job, err
}

func (r *readSignalingRelay) drainGets() {
	for {
		select {
		case <-r.gets:
		default:
			return
		}
	}
}

// TestRealAskService drives the ask loop over the real relay, ask service
// and SQLite store: a running job asks, the orchestrator lists and answers
// the ask, and jobs_wait sees the job running again.
func TestRealAskService(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	st, err := sqlite.Open(ctx, sqlite.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	h := &blockingHandler{started: make(chan string, 1), release: make(chan struct{})}
	r, err := relay.New(relay.Config{Store: st, Handler: h, Artifacts: relay.ArtifactDir{Root: t.TempDir()}, Logger: quiet})
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	t.Cleanup(r.Stop)
	svc, err := ask.New(ask.Config{Store: st, Logger: quiet, OnChange: func(j *relaytype.Job) { r.Notify(j, true) }})
	require.NoError(t, err)
	jobs := &readSignalingRelay{Relay: r, gets: make(chan string, 100)}
	srv, err := New(Config{Jobs: jobs, Asks: svc, Logger: quiet, Version: "test"})
	require.NoError(t, err)
	b := setupWith(t, nil, srv, "")

	id := b.submit(t, "real").JobID
	select {
	case got := <-h.started:
		require.Equal(t, id, got)
	case <-time.After(waitTimeout):
		t.Fatal("the job did not start")
	}

	// The executor asks.
	env := relaytype.NewEnvelope("github.com/test/repo", strings.Repeat("a", 40), "dev", "1.0", "clarifier",
		map[string]any{"branch": "main"}, nil)
	raw, err := json.Marshal(env)
	require.NoError(t, err)
	hash, err := env.Hash()
	require.NoError(t, err)
	askID := uuid.NewString()
	_, created, err := svc.Create(ctx, &relaytype.Ask{
		AskID: askID, JobID: id, StepID: "plan", AskType: relaytype.AskClarification,
		Prompt: "Which branch should the fix target?", ContextHash: hash, ContextEnvelope: raw,
		Constraints: &relaytype.AskConstraints{TimeoutS: 600},
	})
	require.NoError(t, err)
	require.True(t, created)

	var list asksResult
	b.ok(t, "asks_list", map[string]any{"jobId": id}, &list)
	require.Len(t, list.Items, 1)
	it := list.Items[0]
	require.Equal(t, askID, it.AskID)
	require.Equal(t, relaytype.StatusPending, it.Status)
	require.Equal(t, "orchestrator", it.Route)
	require.Equal(t, hash, it.ContextHash)
	require.JSONEq(t, `{"job_snapshot":{"repo":"github.com/test/repo","commit_sha":"`+strings.Repeat("a", 40)+`"},"facts":{"branch":"main"},"role":"clarifier"}`,
		string(it.ContextEnvelope))
	require.Equal(t, &askConstraints{TimeoutS: 600}, it.Constraints)

	// The service's field names come back as the tool's argument names.
	body := b.fail(t, "asks_answer", map[string]any{"askId": askID})
	require.Equal(t, toolErrorBody{Code: relaytype.CodeInvalidRequest, Field: "answerText",
		Message: "answerText: an ANSWERED answer needs answer_text or answer_json"}, body)
	body = b.fail(t, "asks_answer", map[string]any{"askId": "nope", "answerText": "x"})
	require.Equal(t, relaytype.CodeInvalidRequest, body.Code)
	require.Equal(t, "askId", body.Field)
	body = b.fail(t, "asks_answer", map[string]any{"askId": uuid.NewString(), "answerText": "x"})
	require.Equal(t, relaytype.CodeAskNotFound, body.Code)

	// A wait in flight sees the answer set the job running again.
	var waited waitResult
	b.ok(t, "jobs_wait", map[string]any{"jobId": id, "timeoutS": 1}, &waited)
	require.Equal(t, relaytype.StateWaitingOnAnswer, waited.State)
	require.Equal(t, 1, waited.PendingAsks)
	jobs.drainGets()
	done := b.start(ctx, "jobs_wait", map[string]any{"jobId": id}, nil)
	awaitGet(t, jobs.gets, id)
	var ans answerResult
	b.ok(t, "asks_answer", map[string]any{"askId": strings.ToUpper(askID), "answerText": "main"}, &ans)
	require.Equal(t, answerResult{AskID: askID, JobID: id, Status: answerStatus(relaytype.StatusAnswered), Created: true, JobState: relaytype.StateRunning}, ans)
	b.await(t, "jobs_wait", done, &waited)
	require.True(t, waited.Changed)
	require.Equal(t, relaytype.StateRunning, waited.State)
	require.Greater(t, waited.StateVersion, int64(3))
	require.Zero(t, waited.PendingAsks)

	rec, err := svc.AnswerOf(ctx, askID)
	require.NoError(t, err)
	require.Equal(t, "main", rec.AnswerText)
	require.Equal(t, "orchestrator", rec.Attestation.AnsweredBy)
	require.Equal(t, hash, rec.Attestation.ContextHash, "the service fills in the context hash")

	// The same answer is idempotent; another conflicts.
	b.ok(t, "asks_answer", map[string]any{"askId": askID, "answerText": "main"}, &ans)
	require.False(t, ans.Created)
	body = b.fail(t, "asks_answer", map[string]any{"askId": askID, "status": "REJECTED", "error": "no"})
	require.Equal(t, relaytype.CodeConflict, body.Code)

	b.ok(t, "asks_list", map[string]any{"jobId": id}, &list)
	require.Empty(t, list.Items, "nothing pending")
	b.ok(t, "asks_list", map[string]any{"jobId": id, "status": "ALL"}, &list)
	require.Len(t, list.Items, 1)
	require.Equal(t, relaytype.StatusAnswered, list.Items[0].Status)
	require.Equal(t, "main", list.Items[0].Answer.AnswerText)
	require.Equal(t, "orchestrator", list.Items[0].Answer.AnsweredBy)

	// The executor finishes; jobs_wait reports the terminal state.
	close(h.release)
	// Whether the wait begins before the job ends (changed) or after (at
	// once), it reports SUCCEEDED.
	b.ok(t, "jobs_wait", map[string]any{"jobId": id, "timeoutS": 10}, &waited)
	require.Equal(t, relaytype.StateSucceeded, waited.State)
}
