package storetest

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// exerciseJobInsert checks that a new job is QUEUED at stateVersion 1 with
// attempt 0 and a "submitted" event, and that every field round-trips.
func exerciseJobInsert(t *testing.T, newStore func(t *testing.T) store.Store) {
	b := setup(t, newStore)

	p := b.insertParams(jobOpts{ID: "job_insert", Key: "insert-key", Priority: relaytype.PriorityP0, TTLS: 120, MaxAttempts: 2})
	job, created, err := b.store.JobInsert(b.ctx, p)
	require.NoError(t, err)
	require.True(t, created)

	want := &relaytype.Job{
		ID:             "job_insert",
		IdempotencyKey: "insert-key",
		State:          relaytype.StateQueued,
		StateVersion:   1,
		Priority:       relaytype.PriorityP0,
		Attempt:        0,
		MaxAttempts:    2,
		Executor:       testExecutor,
		BaselineCommit: testBaseline,
		CreatedAt:      b.now,
		UpdatedAt:      b.now,
		ExpiresAt:      b.now.Add(120 * time.Second),
		Spec:           *p.Spec,
	}
	requireJobFields(t, want, job)
	requireJobFields(t, want, b.get(t, "job_insert"))

	evs := b.events(t, "job_insert")
	require.Len(t, evs, 1, "a new job has exactly its submitted event")
	require.Equal(t, relaytype.EventSubmitted, evs[0].Type)
	require.Equal(t, "job_insert", evs[0].JobID)
	requireTime(t, b.now, &evs[0].Time, "submitted event time")

	// The spec's defaults decide priority and maxAttempts.
	job = b.insert(t, jobOpts{ID: "job_insert_defaults"})
	require.Equal(t, relaytype.PriorityP1, job.Priority)
	require.Equal(t, relaytype.DefaultMaxAttempts, job.MaxAttempts)
	requireTime(t, b.now.Add(relaytype.DefaultTTLS*time.Second), &job.ExpiresAt, "default ExpiresAt")
}

// requireJobFields compares a fresh job with want, field by field, the spec
// as JSON.
func requireJobFields(t testingT, want, got *relaytype.Job) {
	t.Helper()
	require.Equal(t, want.ID, got.ID)
	require.Equal(t, want.IdempotencyKey, got.IdempotencyKey)
	require.Equal(t, want.State, got.State)
	require.Equal(t, want.StateVersion, got.StateVersion)
	require.Equal(t, want.Priority, got.Priority)
	require.Equal(t, want.Attempt, got.Attempt)
	require.Equal(t, want.MaxAttempts, got.MaxAttempts)
	require.Equal(t, want.Executor, got.Executor)
	require.Equal(t, want.BaselineCommit, got.BaselineCommit)
	requireTime(t, want.CreatedAt, &got.CreatedAt, "CreatedAt")
	requireTime(t, want.UpdatedAt, &got.UpdatedAt, "UpdatedAt")
	requireTime(t, want.ExpiresAt, &got.ExpiresAt, "ExpiresAt")
	require.Nil(t, got.StartedAt, "StartedAt")
	require.Nil(t, got.FinishedAt, "FinishedAt")
	require.Empty(t, got.LeaseOwner, "LeaseOwner")
	require.Nil(t, got.LeaseExpiresAt, "LeaseExpiresAt")
	require.Empty(t, got.ReasonCode, "ReasonCode")
	wantSpec, err := json.Marshal(want.Spec)
	require.NoError(t, err)
	gotSpec, err := json.Marshal(got.Spec)
	require.NoError(t, err)
	require.JSONEq(t, string(wantSpec), string(gotSpec), "Spec")
}

// exerciseIdempotency checks submit idempotency: a key matching a job that is not
// terminal, or SUCCEEDED within the window, returns that job; after FAILED,
// CANCELED, EXPIRED or a success older than the window it starts a new job.
func exerciseIdempotency(t *testing.T, newStore func(t *testing.T) store.Store) {
	const owner = "worker-1"
	claim := func(t *testing.T, b *bundle, id string) {
		t.Helper()
		b.claimOne(t, id, owner, b.at(time.Minute))
	}
	finish := func(to relaytype.JobState) func(t *testing.T, b *bundle, id string) {
		return func(t *testing.T, b *bundle, id string) {
			t.Helper()
			claim(t, b, id)
			p := &store.JobTransitionParams{ID: id, To: to, Owner: owner, Now: b.at(10 * time.Minute)}
			if to == relaytype.StateFailed {
				p.Reason = relaytype.ReasonExecutorError
			}
			b.transition(t, p)
		}
	}

	tests := []struct {
		name string
		// prepare drives the first job to the state under test.
		prepare func(t *testing.T, b *bundle, id string)
		// resubmit is the offset from the base time of the second submit.
		resubmit time.Duration
		wantSame bool
	}{
		{name: "Queued", prepare: func(*testing.T, *bundle, string) {}, resubmit: 2 * time.Minute, wantSame: true},
		{name: "Running", prepare: claim, resubmit: 2 * time.Minute, wantSame: true},
		{name: "WaitingOnAnswer", prepare: func(t *testing.T, b *bundle, id string) {
			claim(t, b, id)
			b.transition(t, &store.JobTransitionParams{ID: id, To: relaytype.StateWaitingOnAnswer, Owner: owner, LeaseTTL: testLeaseTTL, Now: b.at(time.Minute)})
		}, resubmit: 2 * time.Minute, wantSame: true},
		{name: "Stale", prepare: func(t *testing.T, b *bundle, id string) {
			claim(t, b, id)
			b.transition(t, &store.JobTransitionParams{ID: id, To: relaytype.StateStale, Now: b.at(2 * time.Minute)})
		}, resubmit: 3 * time.Minute, wantSame: true},
		// The window runs from the success, not from the submit: the job was
		// created more than a window before the resubmit.
		{name: "SucceededWithinWindow", prepare: finish(relaytype.StateSucceeded), resubmit: 10*time.Minute + testIdempotencyWindow - time.Second, wantSame: true},
		{name: "SucceededOutsideWindow", prepare: finish(relaytype.StateSucceeded), resubmit: 10*time.Minute + testIdempotencyWindow + time.Second},
		{name: "Failed", prepare: finish(relaytype.StateFailed), resubmit: 11 * time.Minute},
		{name: "Canceled", prepare: func(t *testing.T, b *bundle, id string) {
			b.transition(t, &store.JobTransitionParams{ID: id, To: relaytype.StateCanceled, Now: b.at(time.Minute)})
		}, resubmit: 2 * time.Minute},
		{name: "Expired", prepare: func(t *testing.T, b *bundle, id string) {
			expired, err := b.store.JobExpire(b.ctx, &store.JobExpireParams{Now: b.at(10*time.Minute + time.Second)})
			require.NoError(t, err)
			require.Equal(t, []string{id}, ids(expired))
		}, resubmit: 11 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, newStore)

			first := b.insert(t, jobOpts{ID: "job_first", Key: "same-key", TTLS: 600})
			tt.prepare(t, b, first.ID)
			before := b.snap(t, first.ID)
			current := b.get(t, first.ID)

			p := b.insertParams(jobOpts{ID: "job_second", Key: "same-key", At: b.at(tt.resubmit)})
			job, created, err := b.store.JobInsert(b.ctx, p)
			require.NoError(t, err)
			_, total, err := b.store.JobList(b.ctx, &store.JobListParams{Limit: 10})
			require.NoError(t, err)
			if tt.wantSame {
				require.False(t, created, "want the existing job, created=false")
				require.Equal(t, first.ID, job.ID)
				require.Equal(t, current.State, job.State)
				require.Equal(t, current.StateVersion, job.StateVersion)
				require.Equal(t, 1, total, "no second job stored")
				_, err := b.store.JobGet(b.ctx, &store.JobGetParams{ID: "job_second"})
				requireErrorIs(t, err, relaytype.ErrJobNotFound)
			} else {
				require.True(t, created, "want a new job, created=true")
				require.Equal(t, "job_second", job.ID)
				require.Equal(t, relaytype.StateQueued, job.State)
				require.Equal(t, int64(1), job.StateVersion)
				require.Equal(t, 2, total)
			}
			b.requireUnchanged(t, first.ID, before)
		})
	}

	t.Run("ConcurrentSubmit", func(t *testing.T) {
		t.Parallel()
		b := setup(t, newStore)

		const n = 20
		type result struct {
			id      string
			created bool
			err     error
		}
		results := make([]result, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				p := b.insertParams(jobOpts{ID: fmt.Sprintf("job_concurrent_%02d", i), Key: "racy-key"})
				<-start
				job, created, err := b.store.JobInsert(b.ctx, p)
				results[i] = result{created: created, err: err}
				if err == nil {
					results[i].id = job.ID
				}
			})
		}
		close(start)
		wg.Wait()

		var createdID string
		for i, r := range results {
			require.NoError(t, r.err, "submit %d", i)
			if r.created {
				require.Empty(t, createdID, "two submits with one key both created a job")
				createdID = r.id
			}
		}
		require.NotEmpty(t, createdID, "no submit created the job")
		for i, r := range results {
			require.Equal(t, createdID, r.id, "submit %d returned another job", i)
		}
		_, total, err := b.store.JobList(b.ctx, &store.JobListParams{Limit: 100})
		require.NoError(t, err)
		require.Equal(t, 1, total)
		require.Len(t, b.events(t, createdID), 1, "one submitted event")
	})
}

// exerciseJobGet checks the not-found error of JobGet.
func exerciseJobGet(t *testing.T, newStore func(t *testing.T) store.Store) {
	b := setup(t, newStore)

	_, err := b.store.JobGet(b.ctx, &store.JobGetParams{ID: "job_missing"})
	requireErrorIs(t, err, relaytype.ErrJobNotFound)
	require.Equal(t, relaytype.CodeJobNotFound, relaytype.CodeOf(err))

	b.insert(t, jobOpts{ID: "job_present"})
	_, err = b.store.JobGet(b.ctx, &store.JobGetParams{ID: "job_missing"})
	requireErrorIs(t, err, relaytype.ErrJobNotFound)
}

// exerciseJobList checks totals, the state filter, paging and the
// newest-first order of JobList.
func exerciseJobList(t *testing.T, newStore func(t *testing.T) store.Store) {
	b := setup(t, newStore)

	jobs, total, err := b.store.JobList(b.ctx, &store.JobListParams{Limit: 10})
	require.NoError(t, err)
	require.Empty(t, jobs)
	require.Zero(t, total)

	// job_list_0 … job_list_4, one minute apart; 1 and 3 canceled.
	for i := range 5 {
		b.insert(t, jobOpts{ID: fmt.Sprintf("job_list_%d", i), At: b.at(time.Duration(i) * time.Minute)})
	}
	for _, i := range []int{1, 3} {
		b.transition(t, &store.JobTransitionParams{ID: fmt.Sprintf("job_list_%d", i), To: relaytype.StateCanceled, Now: b.at(10 * time.Minute)})
	}

	tests := []struct {
		name      string
		params    store.JobListParams
		wantIDs   []string
		wantTotal int
	}{
		{"All", store.JobListParams{Limit: 10}, []string{"job_list_4", "job_list_3", "job_list_2", "job_list_1", "job_list_0"}, 5},
		{"FirstPage", store.JobListParams{Limit: 2}, []string{"job_list_4", "job_list_3"}, 5},
		{"SecondPage", store.JobListParams{Limit: 2, Offset: 2}, []string{"job_list_2", "job_list_1"}, 5},
		{"LastPage", store.JobListParams{Limit: 2, Offset: 4}, []string{"job_list_0"}, 5},
		{"PastTheEnd", store.JobListParams{Limit: 2, Offset: 5}, nil, 5},
		{"Queued", store.JobListParams{State: relaytype.StateQueued, Limit: 10}, []string{"job_list_4", "job_list_2", "job_list_0"}, 3},
		{"QueuedPaged", store.JobListParams{State: relaytype.StateQueued, Limit: 1, Offset: 1}, []string{"job_list_2"}, 3},
		{"Canceled", store.JobListParams{State: relaytype.StateCanceled, Limit: 10}, []string{"job_list_3", "job_list_1"}, 2},
		{"NoneRunning", store.JobListParams{State: relaytype.StateRunning, Limit: 10}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jobs, total, err := b.store.JobList(b.ctx, &tt.params)
			require.NoError(t, err)
			require.Equal(t, tt.wantTotal, total, "total")
			if len(tt.wantIDs) == 0 {
				require.Empty(t, jobs)
				return
			}
			require.Equal(t, tt.wantIDs, ids(jobs))
		})
	}
}
