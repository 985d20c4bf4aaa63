package postgres

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
)

func payload(t *testing.T, origin, jobID string) string {
	t.Helper()
	b, err := json.Marshal(wireNote{Notification: store.Notification{Kind: store.NotifyJob, JobID: jobID}, Origin: origin})
	require.NoError(t, err)
	return string(b)
}

// A listener whose buffer is full drops notifications and owes one
// resync for all of them, delivered as soon as there is room; it skips
// its own store's notifications and garbage.
func TestListenerOverflowCoalescesIntoOneResync(t *testing.T) {
	l := &listener{s: &Store{origin: "me"}, out: make(chan store.Notification, 2), wake: make(chan struct{}, 1)}
	// resync is not running yet: deliveries cannot race it.
	l.deliver(payload(t, "me", "job_own"))
	l.deliver("not json")
	l.deliver(payload(t, "other", "job_1"))
	l.deliver(payload(t, "other", "job_2"))
	require.False(t, l.lost.Load(), "room for both")
	for i := 3; i <= 10; i++ {
		l.deliver(payload(t, "other", "job_"+strconv.Itoa(i)))
	}
	require.True(t, l.lost.Load(), "dropped while full")

	go l.resync(t.Context())
	next := func() store.Notification {
		t.Helper()
		select {
		case n := <-l.out:
			return n
		case <-time.After(10 * time.Second):
			require.FailNow(t, "no notification")
			return store.Notification{}
		}
	}
	require.Equal(t, "job_1", next().JobID)
	require.Equal(t, "job_2", next().JobID)
	require.Equal(t, store.NotifyResync, next().Kind, "one resync once there is room")
	l.deliver(payload(t, "other", "job_11"))
	require.Equal(t, "job_11", next().JobID, "the eight drops owed one resync only")
	require.Empty(t, l.out)
}

func TestChannelName(t *testing.T) {
	require.Equal(t, "mcp_task_relay", channelName(""))
	require.Equal(t, "mcp_task_relay_tenant_a", channelName("tenant_a"))
	require.NotEqual(t, channelName("tenant_a"), channelName("tenant_b"))
	long := strings.Repeat("s", 63)
	name := channelName(long)
	require.LessOrEqual(t, len(name), maxIdentifier)
	require.True(t, strings.HasPrefix(name, "mcp_task_relay_"))
	require.NotEqual(t, name, channelName(strings.Repeat("t", 63)))
}
