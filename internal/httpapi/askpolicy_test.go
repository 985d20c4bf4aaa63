package httpapi_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// An ask of a job whose execution.askPolicy is never is refused with 403
// E_ASK_POLICY, and nothing is stored.
func TestPostAskRefusedByAskPolicy(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	j, _, err := b.relay.Submit(ctx, &relaytype.JobSpec{
		Repo:           relaytype.Repo{Type: "local", Path: t.TempDir()},
		Task:           relaytype.Task{Title: "t", Description: "d"},
		Execution:      relaytype.Execution{AskPolicy: relaytype.AskPolicyNever},
		IdempotencyKey: uuid.NewString(),
	})
	require.NoError(t, err)
	job := b.waitState(t, j.ID, relaytype.StateRunning)
	a := newAsk(t, job.ID)
	e := b.do(t, http.MethodPost, "/asks", b.tokens.Mint(job.ID), a).requireError(t, http.StatusForbidden, relaytype.CodeAskPolicy, "")
	require.Contains(t, e.Message, "execution.askPolicy")
	require.Contains(t, e.Message, "never")

	asks, err := b.asks.List(ctx, job.ID, "")
	require.NoError(t, err)
	require.Empty(t, asks, "a refused ask is not stored")
	require.Equal(t, relaytype.StateRunning, b.state(t, job.ID).State)
	b.do(t, http.MethodGet, "/asks/"+a.AskID+"/answer", b.operator(), nil).requireError(t, http.StatusNotFound, relaytype.CodeAskNotFound, "")
}
