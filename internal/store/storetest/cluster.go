package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// exerciseHostClaims checks that jobs keep the host they are bound to and
// that a claim takes only jobs of its host (or of none) and of its
// executors.
func exerciseHostClaims(t *testing.T, newStore func(t *testing.T) store.Store) {
	b := setup(t, newStore)
	insert := func(id, host, executor string, at time.Duration) {
		p := b.insertParams(jobOpts{ID: id, At: b.at(at)})
		p.Host, p.Executor = host, executor
		j, created, err := b.store.JobInsert(b.ctx, p)
		require.NoError(t, err)
		require.True(t, created)
		require.Equal(t, host, j.Host)
		require.Equal(t, host, b.get(t, id).Host)
	}
	insert("job_host_free", "", "codex", 0)
	insert("job_host_h1", "h1", "codex", time.Second)
	insert("job_host_h2_claude", "h2", "claude", 2*time.Second)
	insert("job_host_free_claude", "", "claude", 3*time.Second)

	claim := func(host string, executors []string) []string {
		t.Helper()
		jobs, err := b.store.JobClaim(b.ctx, &store.JobClaimParams{Host: host, Executors: executors, Owner: "w-" + host,
			Now: b.at(time.Minute), LeaseTTL: testLeaseTTL, Limit: 10})
		require.NoError(t, err)
		for _, j := range jobs {
			require.Equal(t, relaytype.StateRunning, j.State)
			require.Contains(t, []string{"", host}, j.Host)
			if executors != nil {
				require.Contains(t, executors, j.Executor)
			}
		}
		return ids(jobs)
	}
	require.Empty(t, claim("h1", []string{}), "an empty executor list claims nothing")
	require.Empty(t, claim("h3", []string{"gemini"}))
	require.Equal(t, []string{"job_host_free"}, claim("", []string{"codex"}), "a relay without a host takes unbound jobs only")
	require.Equal(t, []string{"job_host_free_claude"}, claim("h1", []string{"claude"}))
	require.Equal(t, []string{"job_host_h1"}, claim("h1", nil))
	require.Equal(t, []string{"job_host_h2_claude"}, claim("h2", []string{"codex", "claude"}))
	require.Empty(t, claim("h2", nil), "queue drained")
	require.Equal(t, "h1", b.get(t, "job_host_h1").Host, "the host stays with the job")
}

// exerciseRegistry checks store.Registry, for stores that implement it.
func exerciseRegistry(t *testing.T, newStore func(t *testing.T) store.Store) {
	b := setup(t, newStore)
	reg, ok := store.As[store.Registry](b.store)
	if !ok {
		t.Skip("the store does not implement store.Registry")
	}
	list := func() []*store.RelayRecord {
		t.Helper()
		out, err := reg.RelayList(b.ctx)
		require.NoError(t, err)
		return out
	}
	require.Empty(t, list())

	r1 := &store.RelayRecord{ID: "h1:/data/a", Host: "h1", DataDir: "/data/a", Instance: "relay-h1-1", Version: "1.0.0",
		Projects: nil, Executors: []string{}, StartedAt: b.now, SeenAt: b.at(time.Second)}
	r2 := &store.RelayRecord{ID: "h2:/data/b", Host: "h2", DataDir: "/data/b", Instance: "relay-h2-1", Version: "1.1.0",
		Projects: []string{"/p/a", "/p/b"}, Executors: []string{"codex", "claude"}, StartedAt: b.now, SeenAt: b.at(time.Minute)}
	require.NoError(t, reg.RelayUpsert(b.ctx, r1))
	require.NoError(t, reg.RelayUpsert(b.ctx, r2))
	got := list()
	require.Len(t, got, 2)
	requireRelay(t, r2, got[0])
	requireRelay(t, r1, got[1])
	require.Nil(t, got[1].Projects, "nil (any project) stays nil")
	require.NotNil(t, got[1].Executors, "empty (no executor) stays empty")
	require.Empty(t, got[1].Executors)

	// A restart of r1 refreshes every field of its record.
	r1 = &store.RelayRecord{ID: "h1:/data/a", Host: "h1.example", DataDir: "/data/a2", Instance: "relay-h1-2", Version: "1.2.0",
		Projects: []string{}, Executors: nil, StartedAt: b.at(2 * time.Minute), SeenAt: b.at(3 * time.Minute)}
	require.NoError(t, reg.RelayUpsert(b.ctx, r1))
	got = list()
	require.Len(t, got, 2)
	requireRelay(t, r1, got[0])
	requireRelay(t, r2, got[1])
	require.NotNil(t, got[0].Projects)
	require.Nil(t, got[0].Executors)

	// A heartbeat of r2 moves it first again.
	r2.SeenAt = b.at(4 * time.Minute)
	require.NoError(t, reg.RelayUpsert(b.ctx, r2))
	got = list()
	require.Equal(t, []string{r2.ID, r1.ID}, []string{got[0].ID, got[1].ID})
	requireRelay(t, r2, got[0])
}

// requireRelay compares two relay records field by field.
func requireRelay(t testingT, want, got *store.RelayRecord) {
	t.Helper()
	require.Equal(t, want.ID, got.ID)
	require.Equal(t, want.Host, got.Host)
	require.Equal(t, want.DataDir, got.DataDir)
	require.Equal(t, want.Instance, got.Instance)
	require.Equal(t, want.Version, got.Version)
	require.Equal(t, want.Projects, got.Projects)
	require.Equal(t, want.Executors, got.Executors)
	requireTime(t, want.StartedAt, &got.StartedAt, "StartedAt")
	requireTime(t, want.SeenAt, &got.SeenAt, "SeenAt")
}
