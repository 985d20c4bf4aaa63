package httpapi_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

func TestAuthRequiresBearerToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	job := b.running(t)
	routes := []struct{ method, path string }{
		{http.MethodPost, "/asks"},
		{http.MethodGet, "/asks/00000000-0000-4000-8000-000000000000/answer"},
		{http.MethodPost, "/answers"},
		{http.MethodGet, "/jobs/" + job.ID + "/asks"},
		{http.MethodGet, "/jobs/" + job.ID + "/events"},
	}
	for _, rt := range routes {
		for name, auth := range map[string]string{
			"none":        "",
			"bad token":   "Bearer not-a-token",
			"forged":      "Bearer " + b.tokens.Mint(job.ID) + "x",
			"wrong kind":  "Basic " + b.operator(),
			"empty token": "Bearer ",
		} {
			q := request{method: rt.method, path: rt.path, header: map[string]string{}}
			if auth != "" {
				q.header["Authorization"] = auth
			}
			r := b.send(t, context.Background(), q)
			r.requireError(t, 401, relaytype.CodeUnauthorized, "")
			require.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer", "%s %s (%s)", rt.method, rt.path, name)
		}
	}
	// Health checks need no token.
	r := b.do(t, http.MethodGet, "/healthz", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	require.JSONEq(t, `{"ok":true}`, string(r.body))
}

func TestJobTokenScope(t *testing.T) {
	t.Parallel()
	b := setup(t)
	jobA, jobB := b.running(t), b.running(t)
	tokA := b.tokens.Mint(jobA.ID)
	op := b.operator()

	// A's token asks for A and reads the answers to A's asks.
	askA := newAsk(t, jobA.ID)
	b.postAsk(t, tokA, askA)
	require.Equal(t, http.StatusNoContent, b.do(t, http.MethodGet, "/asks/"+askA.AskID+"/answer", tokA, nil).status)
	b.postAnswer(t, answered(askA.AskID))
	require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, "/asks/"+askA.AskID+"/answer?wait=1s", tokA, nil).status)

	// B's ask, posted by the operator.
	askB := newAsk(t, jobB.ID)
	b.postAsk(t, op, askB)

	forbidden := []request{
		{method: http.MethodPost, path: "/asks", body: newAsk(t, jobB.ID)},
		{method: http.MethodGet, path: "/asks/" + askB.AskID + "/answer"},
		{method: http.MethodGet, path: "/asks/" + askB.AskID + "/answer?wait=5s"},
		{method: http.MethodPost, path: "/answers", body: answered(askA.AskID)},
		{method: http.MethodPost, path: "/answers", body: answered(askB.AskID)},
		{method: http.MethodGet, path: "/jobs/" + jobA.ID + "/asks"},
		{method: http.MethodGet, path: "/jobs/" + jobB.ID + "/asks"},
		{method: http.MethodGet, path: "/jobs/" + jobA.ID + "/events"},
	}
	for _, q := range forbidden {
		q.token = tokA
		b.send(t, context.Background(), q).requireError(t, 403, relaytype.CodeForbidden, "")
	}
	// A job token of a job that does not exist can do nothing either.
	ghost := b.tokens.Mint("job_GHOST")
	b.send(t, context.Background(), request{method: http.MethodPost, path: "/asks", token: ghost, body: newAsk(t, jobA.ID)}).
		requireError(t, 403, relaytype.CodeForbidden, "")

	// B's ask is still pending: nothing above answered it.
	require.Equal(t, relaytype.StateWaitingOnAnswer, b.state(t, jobB.ID).State)

	// The operator may do all of it.
	require.Equal(t, http.StatusNoContent, b.do(t, http.MethodGet, "/asks/"+askB.AskID+"/answer", op, nil).status)
	require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, "/jobs/"+jobB.ID+"/asks", op, nil).status)
	b.postAnswer(t, answered(askB.AskID))
	require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, "/asks/"+askB.AskID+"/answer", op, nil).status)
	b.postAsk(t, op, newAsk(t, jobA.ID))
}
