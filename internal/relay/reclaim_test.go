package relay_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// deadPID returns the pid of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	return cmd.Process.Pid
}

// TestStartReleasesJobsOfDeadRelays: a job whose lease is held by a relay
// process of this host that no longer exists is retried as soon as a relay
// starts, not when the lease lapses; a lease of a live process is kept.
func TestStartReleasesJobsOfDeadRelays(t *testing.T) {
	t.Parallel()
	ran := make(chan string, 4)
	h := &funcHandler{HandleFunc: func(_ context.Context, job *relaytype.Job) relay.Outcome {
		ran <- job.ID
		return relay.Outcome{State: relaytype.StateSucceeded, Summary: "ok"}
	}}
	b := setup(t, h, func(c *relay.Config) { c.LeaseTTL = time.Hour; c.HeartbeatInterval = time.Minute })
	ctx := context.Background()
	host, _ := os.Hostname()
	insertClaimed := func(key, owner string) string {
		j, _, err := b.relay.Submit(ctx, spec(key, relaytype.PriorityP1))
		require.NoError(t, err)
		claimed, err := b.store.JobClaim(ctx, &store.JobClaimParams{Owner: owner, Host: host, Now: time.Now(), LeaseTTL: time.Hour, Limit: 1})
		require.NoError(t, err)
		require.Len(t, claimed, 1)
		require.Equal(t, j.ID, claimed[0].ID)
		return j.ID
	}
	dead := insertClaimed("dead", fmt.Sprintf("%s:%d:abcdefgh", host, deadPID(t)))
	alive := insertClaimed("alive", fmt.Sprintf("%s:%d:abcdefgh", host, os.Getppid()))
	other := insertClaimed("other-host", fmt.Sprintf("elsewhere.invalid:%d:abcdefgh", deadPID(t)))

	b.start(t)
	select {
	case id := <-ran:
		require.Equal(t, dead, id, "only the dead relay's job is retried")
	case <-time.After(10 * time.Second):
		t.Fatal("the dead relay's job was not retried at start")
	}
	j := waitState(t, b.relay, dead, relaytype.StateSucceeded)
	require.Equal(t, 2, j.Attempt)
	for _, id := range []string{alive, other} {
		j, err := b.relay.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, relaytype.StateRunning, j.State, "job %s keeps its lease", id)
	}
}
