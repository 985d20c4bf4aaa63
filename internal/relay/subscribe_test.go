package relay_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// TestSubscriptionsClosedWhenRelayStops: stopping the relay closes every
// subscription's channel (after the changes already queued), so that its
// readers return; a subscription made afterwards is closed from the start,
// and ending a subscription after the stop is harmless.
func TestSubscriptionsClosedWhenRelayStops(t *testing.T) {
	t.Parallel()
	b := setup(t, &funcHandler{HandleFunc: succeed}, nil)
	require.NoError(t, b.relay.Start(context.Background()))
	ch, unsub := b.relay.Subscribe()
	j, _, err := b.relay.Submit(context.Background(), spec("sub-close", ""))
	require.NoError(t, err)
	waitState(t, b.relay, j.ID, relaytype.StateSucceeded)
	b.relay.Stop()

	var seen []relaytype.JobState
	closed := false
	deadline := time.After(10 * time.Second)
	for !closed {
		select {
		case c, ok := <-ch:
			if !ok {
				closed = true
				break
			}
			if c.JobID == j.ID && c.State != "" {
				seen = append(seen, c.State)
			}
		case <-deadline:
			t.Fatal("subscription channel not closed after Stop")
		}
	}
	require.Equal(t, []relaytype.JobState{relaytype.StateQueued, relaytype.StateRunning, relaytype.StateSucceeded}, seen,
		"changes queued before the stop are still delivered")
	unsub()

	late, unsubLate := b.relay.Subscribe()
	defer unsubLate()
	_, ok := <-late
	require.False(t, ok, "a subscription to a stopped relay is closed")

	// Publishing after the stop (an ask answered late) reaches no one and
	// does not panic on the closed channels.
	b.relay.Notify(&relaytype.Job{ID: j.ID, State: relaytype.StateSucceeded, StateVersion: 99}, true)
	b.relay.Stop() // twice is fine
}
