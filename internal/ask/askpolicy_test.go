package ask_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// runningJobWithPolicy inserts a RUNNING job whose execution.askPolicy is
// policy.
func (b *bundle) runningJobWithPolicy(t *testing.T, id, policy string) {
	t.Helper()
	spec := &relaytype.JobSpec{Repo: relaytype.Repo{Type: "local", Path: "/r"}, Task: relaytype.Task{Title: "t", Description: "d"},
		Execution: relaytype.Execution{AskPolicy: policy}, IdempotencyKey: id}
	spec.ApplyDefaults()
	ctx := context.Background()
	_, _, err := b.store.JobInsert(ctx, &store.JobInsertParams{ID: id, Spec: spec, Executor: "x", Now: time.Now()})
	require.NoError(t, err)
	jobs, err := b.store.JobClaim(ctx, &store.JobClaimParams{Owner: "w", Now: time.Now(), LeaseTTL: time.Hour, Limit: 1})
	require.NoError(t, err)
	require.Len(t, jobs, 1)
}

func TestAskPolicyNeverRefusesAsks(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	b.runningJobWithPolicy(t, "job_never", relaytype.AskPolicyNever)
	_, _, err := b.svc.Create(ctx, newAsk(t, "job_never"))
	require.ErrorIs(t, err, relaytype.ErrAskPolicy)
	require.Equal(t, relaytype.CodeAskPolicy, relaytype.CodeOf(err))
	require.Contains(t, err.Error(), `execution.askPolicy "never"`)

	// Nothing was stored and the job runs on.
	asks, err := b.store.AskList(ctx, &store.AskListParams{JobID: "job_never"})
	require.NoError(t, err)
	require.Empty(t, asks)
	require.Equal(t, relaytype.StateRunning, b.state(t, "job_never").State)
	require.Empty(t, b.changes())

	// An invalid ask is still reported as such.
	bad := newAsk(t, "job_never")
	bad.Prompt = ""
	_, _, err = b.svc.Create(ctx, bad)
	require.Equal(t, relaytype.CodeInvalidRequest, relaytype.CodeOf(err))
}

func TestAskPolicyOtherValuesMayAsk(t *testing.T) {
	t.Parallel()
	// One store for the four jobs (a store's migrations are most of this
	// test's time under the race detector).
	b := setup(t, nil)
	for _, policy := range []string{"", relaytype.AskPolicyUntrusted, relaytype.AskPolicyOnRequest, relaytype.AskPolicyOnFailure} {
		id := "job_p" + map[string]string{"": "none"}[policy] + policy
		b.runningJobWithPolicy(t, id, policy)
		_, created, err := b.svc.Create(context.Background(), newAsk(t, id))
		require.NoError(t, err, policy)
		require.True(t, created)
		require.Equal(t, relaytype.StateWaitingOnAnswer, b.state(t, id).State)
	}
}
