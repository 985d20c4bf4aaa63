package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/httpapi"
	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// stored checks that an SSE event carries a stored event of type typ
// (sent under name), with the SSE id equal to the event's id, and returns
// the event.
func stored(t *testing.T, ev sseEvent, name, typ string) *relaytype.Event {
	t.Helper()
	require.Equal(t, name, ev.event, "event %+v", ev)
	var e relaytype.Event
	require.NoError(t, json.Unmarshal([]byte(ev.data), &e), ev.data)
	require.Equal(t, typ, e.Type, "event %+v", ev)
	require.Equal(t, strconv.FormatInt(e.ID, 10), ev.id)
	return &e
}

func transitionTo(t *testing.T, e *relaytype.Event) relaytype.JobState {
	t.Helper()
	var p relaytype.TransitionPayload
	require.NoError(t, json.Unmarshal(e.Payload, &p))
	return p.To
}

func TestEventStreamReplayLiveResume(t *testing.T) {
	t.Parallel()
	b := setup(t, withConfig(func(c *httpapi.Config) { c.SSEHeartbeat = 50 * time.Millisecond }))
	job := b.running(t)
	op := b.operator()

	ctx1, disconnect := context.WithCancel(context.Background())
	defer disconnect()
	resp, events := b.openSSE(t, ctx1, job.ID, op, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))

	hello := nextEvent(t, events)
	require.Equal(t, "connected", hello.event)
	require.Equal(t, "0", hello.id)
	require.Equal(t, "2000", hello.retry)
	var h struct {
		JobID        string             `json:"jobId"`
		State        relaytype.JobState `json:"state"`
		StateVersion int64              `json:"stateVersion"`
	}
	require.NoError(t, json.Unmarshal([]byte(hello.data), &h))
	require.Equal(t, job.ID, h.JobID)
	require.Equal(t, relaytype.StateRunning, h.State)
	require.Equal(t, job.StateVersion, h.StateVersion)

	// Replay: submitted, then QUEUED → RUNNING.
	stored(t, nextEvent(t, events), "status", relaytype.EventSubmitted)
	e := stored(t, nextEvent(t, events), "status", relaytype.EventTransition)
	require.Equal(t, relaytype.StateRunning, transitionTo(t, e))

	// Live: an ask and its answer.
	a := newAsk(t, job.ID)
	b.postAsk(t, b.tokens.Mint(job.ID), a)
	stored(t, nextEvent(t, events), "ask", relaytype.EventAsk)
	e = stored(t, nextEvent(t, events), "status", relaytype.EventTransition)
	require.Equal(t, relaytype.StateWaitingOnAnswer, transitionTo(t, e))
	b.postAnswer(t, answered(a.AskID))
	stored(t, nextEvent(t, events), "answer", relaytype.EventAnswer)
	e = stored(t, nextEvent(t, events), "status", relaytype.EventTransition)
	require.Equal(t, relaytype.StateRunning, transitionTo(t, e))
	lastSeen := e.ID

	// Heartbeats carry the id of the last stored event sent.
	for {
		ev := recv(t, events, 5*time.Second)
		if ev.event == "heartbeat" {
			require.Equal(t, strconv.FormatInt(lastSeen, 10), ev.id)
			break
		}
		t.Fatalf("unexpected event %+v", ev)
	}

	disconnect()
	waitClosed(t, events, 5*time.Second)

	// While disconnected: another ask and answer.
	a2 := newAsk(t, job.ID)
	b.postAsk(t, b.tokens.Mint(job.ID), a2)
	b.postAnswer(t, answered(a2.AskID))

	// Resume: exactly the missed events, in order, then live again.
	ctx2, disconnect2 := context.WithCancel(context.Background())
	defer disconnect2()
	resp, events = b.openSSE(t, ctx2, job.ID, op,
		map[string]string{"Last-Event-ID": strconv.FormatInt(lastSeen, 10)})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	hello = nextEvent(t, events)
	require.Equal(t, "connected", hello.event)
	require.Equal(t, strconv.FormatInt(lastSeen, 10), hello.id)
	want := []struct{ name, typ string }{
		{"ask", relaytype.EventAsk}, {"status", relaytype.EventTransition},
		{"answer", relaytype.EventAnswer}, {"status", relaytype.EventTransition},
	}
	prev := lastSeen
	for _, w := range want {
		e := stored(t, nextEvent(t, events), w.name, w.typ)
		require.Greater(t, e.ID, prev)
		prev = e.ID
	}
	// The job ends: its terminal status is the very next event (nothing
	// was sent twice), and the stream stays open.
	b.handler.ch(job.ID) <- relay.Outcome{State: relaytype.StateSucceeded, Summary: "done"}
	e = stored(t, nextEvent(t, events), "status", relaytype.EventTransition)
	require.Equal(t, relaytype.StateSucceeded, transitionTo(t, e))
	require.Greater(t, e.ID, prev)
	for {
		ev := recv(t, events, 5*time.Second)
		if ev.event == "heartbeat" {
			require.Equal(t, strconv.FormatInt(e.ID, 10), ev.id)
			break
		}
		t.Fatalf("unexpected event %+v", ev)
	}
}

func TestEventStreamResumeFromQuery(t *testing.T) {
	t.Parallel()
	b := setup(t)
	job := b.running(t)
	op := b.operator()
	evs, err := b.relay.Events(context.Background(), job.ID, 0, 0)
	require.NoError(t, err)
	require.Len(t, evs, 2)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		b.url+"/jobs/"+job.ID+"/events?lastEventId="+strconv.FormatInt(evs[0].ID, 10), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+op)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	buf := make([]byte, 4096)
	var got string
	for !containsEventID(got, evs[1].ID) {
		n, err := resp.Body.Read(buf)
		require.NoError(t, err)
		got += string(buf[:n])
	}
	require.NotContains(t, got, "\nid: "+strconv.FormatInt(evs[0].ID, 10)+"\nevent: status")
}

func containsEventID(s string, id int64) bool {
	return strings.Contains(s, "id: "+strconv.FormatInt(id, 10)+"\nevent: status\n")
}

func TestEventStreamErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	op := b.operator()
	b.do(t, http.MethodGet, "/jobs/job_NOPE/events", op, nil).requireError(t, 404, relaytype.CodeJobNotFound, "")
	job := b.running(t)
	r := b.send(t, context.Background(), request{method: http.MethodGet, path: "/jobs/" + job.ID + "/events", token: op,
		header: map[string]string{"Last-Event-ID": "x"}})
	r.requireError(t, 400, relaytype.CodeInvalidRequest, "Last-Event-ID")
}
