package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/internal/httpapi"
	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/sqlite"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

var quiet = slog.New(slog.DiscardHandler)

const baseline = "0123456789abcdef0123456789abcdef01234567"

// holdHandler keeps every job RUNNING until the test sends its outcome on
// finish(jobID) or the run's context ends.
type holdHandler struct {
	mu     sync.Mutex
	finish map[string]chan relay.Outcome
}

func (h *holdHandler) ch(jobID string) chan relay.Outcome {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.finish == nil {
		h.finish = map[string]chan relay.Outcome{}
	}
	c := h.finish[jobID]
	if c == nil {
		c = make(chan relay.Outcome, 1)
		h.finish[jobID] = c
	}
	return c
}

func (h *holdHandler) Admit(context.Context, *relaytype.JobSpec) (string, string, error) {
	return "test", baseline, nil
}

func (h *holdHandler) Handle(ctx context.Context, job *relaytype.Job) relay.Outcome {
	select {
	case <-ctx.Done():
		return relay.Outcome{}
	case out := <-h.ch(job.ID):
		return out
	}
}

type bundle struct {
	relay   *relay.Relay
	asks    *ask.Service
	tokens  *ask.Tokens
	srv     *httpapi.Server
	handler *holdHandler
	url     string
	// parked receives the ask id of every long poll about to park.
	parked chan string
	// arts is where the relay reads artifacts from.
	arts relay.ArtifactDir
}

type options struct {
	relayStopped bool
	config       func(*httpapi.Config)
}

type option func(*options)

// relayStopped leaves the relay unstarted, so submitted jobs stay QUEUED.
func relayStopped() option { return func(o *options) { o.relayStopped = true } }

func withConfig(f func(*httpapi.Config)) option { return func(o *options) { o.config = f } }

// newStack builds store, relay, ask service and API server, without
// serving it.
func newStack(t *testing.T, opts ...option) *bundle {
	t.Helper()
	var o options
	for _, f := range opts {
		f(&o)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	h := &holdHandler{}
	arts := relay.ArtifactDir{Root: t.TempDir()}
	r, err := relay.New(relay.Config{Store: st, Handler: h, Artifacts: arts, Logger: quiet})
	require.NoError(t, err)
	if !o.relayStopped {
		require.NoError(t, r.Start(ctx))
		t.Cleanup(r.Stop)
	}
	svc, err := ask.New(ask.Config{Store: st, Logger: quiet, OnChange: func(j *relaytype.Job) { r.Notify(j, true) }})
	require.NoError(t, err)
	require.NoError(t, svc.Start(ctx))
	t.Cleanup(svc.Stop)
	tokens, err := ask.NewTokens("tro_test-operator-token-0123456789")
	require.NoError(t, err)
	parked := make(chan string, 16)
	cfg := httpapi.Config{Asks: svc, Jobs: r, Tokens: tokens, Logger: quiet, OnWait: func(id string) {
		select {
		case parked <- id:
		default:
		}
	}}
	if o.config != nil {
		o.config(&cfg)
	}
	srv, err := httpapi.New(cfg)
	require.NoError(t, err)
	return &bundle{relay: r, asks: svc, tokens: tokens, srv: srv, handler: h, parked: parked, arts: arts}
}

// setup builds the stack and serves it with httptest.
func setup(t *testing.T, opts ...option) *bundle {
	t.Helper()
	b := newStack(t, opts...)
	ts := httptest.NewServer(b.srv.Handler())
	t.Cleanup(ts.Close)
	b.url = ts.URL
	return b
}

func (b *bundle) operator() string { return b.tokens.Operator() }

// submit queues a job.
func (b *bundle) submit(t *testing.T) *relaytype.Job {
	t.Helper()
	j, created, err := b.relay.Submit(context.Background(), &relaytype.JobSpec{
		Repo:           relaytype.Repo{Type: "local", Path: t.TempDir()},
		Task:           relaytype.Task{Title: "t", Description: "d"},
		IdempotencyKey: uuid.NewString(),
	})
	require.NoError(t, err)
	require.True(t, created)
	return j
}

// running submits a job and waits until it runs.
func (b *bundle) running(t *testing.T) *relaytype.Job {
	t.Helper()
	j := b.submit(t)
	return b.waitState(t, j.ID, relaytype.StateRunning)
}

// waitState polls a job until it is in state want.
func (b *bundle) waitState(t *testing.T, id string, want relaytype.JobState) *relaytype.Job {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := b.relay.Get(context.Background(), id)
		require.NoError(t, err)
		if j.State == want {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s is %s, want %s", id, j.State, want)
		}
		time.Sleep(time.Millisecond)
	}
}

func (b *bundle) state(t *testing.T, id string) *relaytype.Job {
	t.Helper()
	j, err := b.relay.Get(context.Background(), id)
	require.NoError(t, err)
	return j
}

func envelope(t *testing.T) (json.RawMessage, string) {
	t.Helper()
	e := relaytype.NewEnvelope("github.com/u/r", baseline, "prod", "2.0", "code_reviewer",
		map[string]any{"branch": "main"}, map[string]any{"database": map[string]any{"timeout_ms": 5000, "read_only": true}})
	raw, err := json.Marshal(e)
	require.NoError(t, err)
	h, err := e.Hash()
	require.NoError(t, err)
	return raw, h
}

func newAsk(t *testing.T, jobID string) *relaytype.Ask {
	t.Helper()
	raw, h := envelope(t)
	return &relaytype.Ask{
		Type: "Ask", AskID: uuid.NewString(), JobID: jobID, StepID: "step-1",
		AskType: relaytype.AskClarification, Prompt: "Which branch?", ContextHash: h, ContextEnvelope: raw,
	}
}

func answered(askID string) *relaytype.Answer {
	return &relaytype.Answer{Type: "Answer", AskID: askID, Status: relaytype.StatusAnswered, AnswerText: "main"}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// errBody is the JSON of an error response.
type errBody struct {
	Code    relaytype.ErrorCode `json:"code"`
	Message string              `json:"message"`
	Field   string              `json:"field"`
}

func (r response) err(t *testing.T) errBody {
	t.Helper()
	require.Equal(t, "application/json", r.header.Get("Content-Type"), "body: %s", r.body)
	var e errBody
	require.NoError(t, json.Unmarshal(r.body, &e), "body: %s", r.body)
	require.NotEmpty(t, e.Code)
	require.NotEmpty(t, e.Message)
	return e
}

// requireError checks an error response's status, code and field.
func (r response) requireError(t *testing.T, status int, code relaytype.ErrorCode, field string) errBody {
	t.Helper()
	require.Equal(t, status, r.status, "body: %s", r.body)
	e := r.err(t)
	require.Equal(t, code, e.Code, "body: %s", r.body)
	require.Equal(t, field, e.Field, "body: %s", r.body)
	return e
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), "body: %s", r.body)
}

// request is one HTTP request of a test. body may be nil, a string or
// []byte (sent as is) or anything else (sent as JSON).
type request struct {
	method, path, token string
	body                any
	header              map[string]string
}

func (b *bundle) send(t *testing.T, ctx context.Context, q request) response {
	t.Helper()
	var rd io.Reader
	switch v := q.body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	case []byte:
		rd = bytes.NewReader(v)
	default:
		raw, err := json.Marshal(v)
		require.NoError(t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, q.method, b.url+q.path, rd)
	require.NoError(t, err)
	if q.token != "" {
		req.Header.Set("Authorization", "Bearer "+q.token)
	}
	if q.body != nil {
		req.Header.Set("Content-Type", "application/json")
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

func (b *bundle) do(t *testing.T, method, path, token string, body any) response {
	t.Helper()
	return b.send(t, context.Background(), request{method: method, path: path, token: token, body: body})
}

// postAsk posts an ask with token and requires 202.
func (b *bundle) postAsk(t *testing.T, token string, a *relaytype.Ask) *relaytype.AskRecord {
	t.Helper()
	r := b.do(t, http.MethodPost, "/asks", token, a)
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	var rec relaytype.AskRecord
	r.decode(t, &rec)
	return &rec
}

// postAnswer posts an answer with the operator token and requires 202.
func (b *bundle) postAnswer(t *testing.T, a *relaytype.Answer) *relaytype.AnswerRecord {
	t.Helper()
	r := b.do(t, http.MethodPost, "/answers", b.operator(), a)
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	var rec relaytype.AnswerRecord
	r.decode(t, &rec)
	return &rec
}

// longPoll is the outcome of a GET answer run in the background.
type longPoll struct {
	resp response
	at   time.Time
}

// startLongPoll GETs an answer with ?wait= in the background and waits
// until the handler is about to park.
func (b *bundle) startLongPoll(t *testing.T, askID, token, wait string) <-chan longPoll {
	t.Helper()
	out := make(chan longPoll, 1)
	go func() {
		// No require in this goroutine: report through the channel.
		req, _ := http.NewRequest(http.MethodGet, b.url+"/asks/"+askID+"/answer?wait="+wait, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- longPoll{resp: response{status: -1, body: []byte(err.Error())}, at: time.Now()}
			return
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out <- longPoll{resp: response{status: resp.StatusCode, header: resp.Header, body: data}, at: time.Now()}
	}()
	select {
	case id := <-b.parked:
		require.Equal(t, askID, id)
	case lp := <-out:
		t.Fatalf("long poll returned before parking: %d %s", lp.resp.status, lp.resp.body)
	case <-time.After(10 * time.Second):
		t.Fatal("long poll did not park")
	}
	return out
}

func recv[T any](t *testing.T, ch <-chan T, within time.Duration) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(within):
		t.Fatalf("nothing received within %s", within)
		var zero T
		return zero
	}
}

// sseEvent is one Server-Sent Event as read off the wire.
type sseEvent struct {
	id, event, data, retry string
}

// openSSE connects to a job's event stream; the channel closes when the
// stream ends. Cancel ctx to disconnect (every stream must be, or the
// test server's Close waits for it).
func (b *bundle) openSSE(t *testing.T, ctx context.Context, jobID, token string, header map[string]string) (*http.Response, <-chan sseEvent) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url+"/jobs/"+jobID+"/events", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	ch := make(chan sseEvent, 256)
	if resp.StatusCode != http.StatusOK {
		close(ch)
		return resp, ch
	}
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			if line == "" {
				select {
				case ch <- ev:
				case <-ctx.Done():
					return
				}
				ev = sseEvent{}
				continue
			}
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			switch k {
			case "id":
				ev.id = v
			case "event":
				ev.event = v
			case "data":
				if ev.data != "" {
					ev.data += "\n"
				}
				ev.data += v
			case "retry":
				ev.retry = v
			}
		}
	}()
	return resp, ch
}

// nextEvent returns the next event that is not a heartbeat.
func nextEvent(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	for {
		select {
		case ev, ok := <-ch:
			require.True(t, ok, "stream ended")
			if ev.event != "heartbeat" {
				return ev
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10s")
		}
	}
}

// waitClosed drains ch until it closes.
func waitClosed[T any](t *testing.T, ch <-chan T, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("still open after %s", within)
		}
	}
}
