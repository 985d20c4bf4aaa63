package jobstate_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/jobstate"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// A write that names attempt 1 of a job now on attempt 2, by the same
// lease owner, is refused by every rule that takes a fence.
func TestFencedWritesCheckTheAttempt(t *testing.T) {
	j := job(relaytype.StateRunning, 2) // leased to w1
	s := jobstate.Snapshot{Job: j}

	_, err := jobstate.Heartbeat(j, &store.JobHeartbeatParams{Owner: "w1", Attempt: 1, Now: t0, LeaseTTL: time.Minute})
	require.ErrorIs(t, err, relaytype.ErrLeaseLost)
	n, err := jobstate.Heartbeat(j, &store.JobHeartbeatParams{Owner: "w1", Attempt: 2, Now: t0, LeaseTTL: time.Minute})
	require.NoError(t, err)
	require.Equal(t, t0.Add(time.Minute), *n.LeaseExpiresAt)

	_, err = jobstate.Transition(s, &store.JobTransitionParams{To: relaytype.StateSucceeded, Owner: "w1", Attempt: 1, Now: t0})
	require.ErrorIs(t, err, relaytype.ErrLeaseLost)
	_, err = jobstate.Transition(s, &store.JobTransitionParams{To: relaytype.StateSucceeded, Attempt: 1, Now: t0})
	require.ErrorIs(t, err, relaytype.ErrLeaseLost, "an attempt fences without an owner too")
	c, err := jobstate.Transition(s, &store.JobTransitionParams{To: relaytype.StateSucceeded, Owner: "w1", Attempt: 2, Now: t0})
	require.NoError(t, err)
	require.Equal(t, relaytype.StateSucceeded, c.Job.State)

	_, err = jobstate.Release(s, &store.JobReleaseParams{Owner: "w1", Attempt: 1, Now: t0})
	require.ErrorIs(t, err, relaytype.ErrLeaseLost)
	changes, err := jobstate.Release(s, &store.JobReleaseParams{Owner: "w1", Attempt: 2, Now: t0})
	require.NoError(t, err)
	require.Len(t, changes, 1)

	require.ErrorIs(t, jobstate.Fence(j, "w1", 1), relaytype.ErrLeaseLost)
	require.ErrorIs(t, jobstate.Fence(j, "w2", 2), relaytype.ErrLeaseLost)
	require.ErrorIs(t, jobstate.Fence(job(relaytype.StateStale, 2), "w1", 2), relaytype.ErrLeaseLost, "a STALE job's lease is over")
	require.ErrorIs(t, jobstate.Fence(job(relaytype.StateQueued, 2), "", 2), relaytype.ErrLeaseLost)
	require.NoError(t, jobstate.Fence(j, "w1", 2))
	require.NoError(t, jobstate.Fence(j, "", 2))
	require.NoError(t, jobstate.Fence(job(relaytype.StateQueued, 0), "", 0), "an unfenced write passes")
}

// A start that names an attempt must name the one it starts: a worker of
// attempt 1 moving a requeued job to RUNNING does not claim attempt 2.
func TestFencedStartNamesTheNewAttempt(t *testing.T) {
	s := jobstate.Snapshot{Job: job(relaytype.StateQueued, 1)}
	_, err := jobstate.Transition(s, &store.JobTransitionParams{To: relaytype.StateRunning, Owner: "w1", Attempt: 1, LeaseTTL: time.Minute, Now: t0})
	require.ErrorIs(t, err, relaytype.ErrLeaseLost)
	c, err := jobstate.Transition(s, &store.JobTransitionParams{To: relaytype.StateRunning, Owner: "w1", Attempt: 2, LeaseTTL: time.Minute, Now: t0})
	require.NoError(t, err)
	require.Equal(t, 2, c.Job.Attempt)
}

func TestFencedAskInsert(t *testing.T) {
	s := jobstate.Snapshot{Job: job(relaytype.StateRunning, 2)}
	ask := &relaytype.AskRecord{AskID: "a1", JobID: "job_1", StepID: "attempt-1", DeadlineAt: t0.Add(time.Hour)}
	_, err := jobstate.AskInsert(s, nil, &store.AskInsertParams{Ask: ask, Attempt: 1, PayloadHash: "h", Now: t0})
	require.ErrorIs(t, err, store.ErrAttemptOver)
	require.ErrorIs(t, err, relaytype.ErrLeaseLost)
	require.Equal(t, relaytype.CodeLeaseLost, relaytype.CodeOf(err))
	var over *store.AttemptOverError
	require.False(t, errors.As(err, &over), "not a repost or an answer: no AttemptOverError")

	// The same, for a repeat of an ask attempt 1 stored.
	existing := &jobstate.StoredAsk{Record: ask, PayloadHash: "h", Attempt: 1}
	_, err = jobstate.AskInsert(s, existing, &store.AskInsertParams{Ask: ask, Attempt: 1, PayloadHash: "h", Now: t0})
	require.ErrorIs(t, err, store.ErrAttemptOver)
	require.ErrorIs(t, err, relaytype.ErrLeaseLost)

	o, err := jobstate.AskInsert(s, nil, &store.AskInsertParams{Ask: ask, Attempt: 2, PayloadHash: "h", Now: t0})
	require.NoError(t, err)
	require.Equal(t, 2, o.Insert.Attempt)
}

func TestClaimableBy(t *testing.T) {
	j := job(relaytype.StateQueued, 0) // project /p, executor codex
	cases := []struct {
		name string
		host string
		p    store.JobClaimParams
		want bool
	}{
		{"any", "", store.JobClaimParams{}, true},
		{"unbound job, any host", "", store.JobClaimParams{Host: "h1"}, true},
		{"bound job, its host", "h1", store.JobClaimParams{Host: "h1"}, true},
		{"bound job, another host", "h1", store.JobClaimParams{Host: "h2"}, false},
		{"bound job, no host", "h1", store.JobClaimParams{}, false},
		{"executor listed", "", store.JobClaimParams{Executors: []string{"claude", "codex"}}, true},
		{"executor not listed", "", store.JobClaimParams{Executors: []string{"claude"}}, false},
		{"no executors", "", store.JobClaimParams{Executors: []string{}}, false},
		{"project listed", "", store.JobClaimParams{Projects: []string{"/p"}}, true},
		{"project not listed", "", store.JobClaimParams{Projects: []string{"/q"}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j.Host = tc.host
			require.Equal(t, tc.want, jobstate.ClaimableBy(j, &tc.p))
		})
	}
}

func TestTransitionCarriesContents(t *testing.T) {
	s := jobstate.Snapshot{Job: job(relaytype.StateRunning, 1)}
	c, err := jobstate.Transition(s, &store.JobTransitionParams{To: relaytype.StateSucceeded, Owner: "w1", Now: t0,
		Artifacts: []*relaytype.Artifact{{Kind: relaytype.ArtifactPatch, Size: 3}, {Kind: relaytype.ArtifactOut}},
		Contents:  map[relaytype.ArtifactKind][]byte{relaytype.ArtifactPatch: []byte("abc"), relaytype.ArtifactLogs: []byte("x")}})
	require.NoError(t, err)
	require.Equal(t, map[relaytype.ArtifactKind][]byte{relaytype.ArtifactPatch: []byte("abc")}, c.Contents,
		"the bytes of the change's artifacts only")
}

func TestNewJobKeepsHost(t *testing.T) {
	j, _ := jobstate.NewJob(&store.JobInsertParams{ID: "job_h", Host: "h1", Now: t0,
		Spec: &relaytype.JobSpec{IdempotencyKey: "k", Execution: relaytype.Execution{TTLS: 60, MaxAttempts: 1}}})
	require.Equal(t, "h1", j.Host)
}
