// Package storetest owns the conformance suite that every store.Store
// implementation runs, in the manner of River's riverdrivertest: an
// implementation's own test calls Exercise with a constructor, and the suite
// checks the job state machine, idempotency, claims (by project, host and
// executor), leases and fenced writes, rescue, expiry, events, artifacts,
// the outbox and, for a store that implements it, store.Registry against
// the contract of store.Store and the job state machine of relaytype.
//
// Every check passes explicit times (a fixed base time plus offsets), so the
// suite never sleeps and never reads the wall clock. All times used are
// whole milliseconds: a store must keep at least millisecond precision.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Exercise runs the conformance suite against stores made by newStore.
// Every subtest calls newStore(t) for a fresh, empty store; the constructor
// registers the store's cleanup with t.Cleanup. Subtests run in parallel, so
// stores made by one constructor must not share state.
func Exercise(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()

	t.Run("JobInsert", func(t *testing.T) { t.Parallel(); exerciseJobInsert(t, newStore) })
	t.Run("Idempotency", func(t *testing.T) { t.Parallel(); exerciseIdempotency(t, newStore) })
	t.Run("JobGet", func(t *testing.T) { t.Parallel(); exerciseJobGet(t, newStore) })
	t.Run("JobList", func(t *testing.T) { t.Parallel(); exerciseJobList(t, newStore) })
	t.Run("Projects", func(t *testing.T) { t.Parallel(); exerciseProjects(t, newStore) })
	t.Run("JobClaim", func(t *testing.T) { t.Parallel(); exerciseJobClaim(t, newStore) })
	t.Run("JobHeartbeat", func(t *testing.T) { t.Parallel(); exerciseJobHeartbeat(t, newStore) })
	t.Run("JobTransition", func(t *testing.T) { t.Parallel(); exerciseJobTransition(t, newStore) })
	t.Run("JobRescue", func(t *testing.T) { t.Parallel(); exerciseJobRescue(t, newStore) })
	t.Run("JobExpire", func(t *testing.T) { t.Parallel(); exerciseJobExpire(t, newStore) })
	t.Run("JobNextWake", func(t *testing.T) { t.Parallel(); exerciseJobNextWake(t, newStore) })
	t.Run("Events", func(t *testing.T) { t.Parallel(); exerciseEvents(t, newStore) })
	t.Run("Artifacts", func(t *testing.T) { t.Parallel(); exerciseArtifacts(t, newStore) })
	t.Run("Asks", func(t *testing.T) { t.Parallel(); exerciseAsks(t, newStore) })
	t.Run("AskAttempts", func(t *testing.T) { t.Parallel(); exerciseAskAttempts(t, newStore) })
	t.Run("UsageAndCache", func(t *testing.T) { t.Parallel(); exerciseUsageAndCache(t, newStore) })
	t.Run("Outbox", func(t *testing.T) { t.Parallel(); exerciseOutbox(t, newStore) })
	t.Run("Fencing", func(t *testing.T) { t.Parallel(); exerciseFencing(t, newStore) })
	t.Run("HostClaims", func(t *testing.T) { t.Parallel(); exerciseHostClaims(t, newStore) })
	t.Run("Registry", func(t *testing.T) { t.Parallel(); exerciseRegistry(t, newStore) })
	t.Run("StateMachineProperty", func(t *testing.T) { t.Parallel(); exerciseProperty(t, newStore) })
}

// baseTime is the suite's fixed "now"; tests move time by adding offsets.
var baseTime = time.Date(2030, time.January, 2, 3, 4, 5, 0, time.UTC)

// Defaults used by the helpers when a test does not care.
const (
	testLeaseTTL          = 30 * time.Second
	testIdempotencyWindow = time.Hour
	testBaseline          = "0123456789abcdef0123456789abcdef01234567"
	testExecutor          = "codex"
)

// idSeq makes job IDs unique within a test binary.
var idSeq atomic.Int64

// testingT is what the helpers need from *testing.T and *rapid.T alike.
type testingT interface {
	require.TestingT
	Helper()
}

// bundle is what every subtest works with: a fresh store, a context and the
// base time.
type bundle struct {
	ctx   context.Context
	store store.Store
	now   time.Time
}

// setup makes a fresh store for t.
func setup(t *testing.T, newStore func(t *testing.T) store.Store) *bundle {
	t.Helper()
	s := newStore(t)
	require.NotNil(t, s)
	return &bundle{ctx: t.Context(), store: s, now: baseTime}
}

// at returns the base time plus d.
func (b *bundle) at(d time.Duration) time.Time { return b.now.Add(d) }

// jobOpts describes a job to insert; zero fields take defaults.
type jobOpts struct {
	ID          string
	Key         string
	Priority    relaytype.Priority
	TTLS        int
	MaxAttempts int
	At          time.Time
	Window      time.Duration
}

// newSpec returns a valid spec with defaults applied.
func newSpec(key string, prio relaytype.Priority, ttlS, maxAttempts int) *relaytype.JobSpec {
	s := &relaytype.JobSpec{
		Repo: relaytype.Repo{Type: "local", Path: "/src/repo", BaseBranch: "main", BaselineCommit: testBaseline},
		Task: relaytype.Task{
			Title:       "Fix the flaky test " + key,
			Description: "Make TestFoo deterministic.",
			Acceptance:  []string{"go test ./... passes", "no sleeps"},
		},
		Scope: relaytype.Scope{ReadPaths: []string{"internal/"}, FileGlobs: []string{"*.go"}, DisallowReformatting: true},
		Context: &relaytype.TaskContext{
			DirTreeDigest: "sha256:abc",
			KeySignatures: []string{"func Foo() error"},
			CodeSnippets:  []relaytype.CodeSnippet{{Path: "foo.go", From: 1, To: 9}},
		},
		OutputContract: []string{"DIFF", "TEST_PLAN", "NOTES"},
		Execution: relaytype.Execution{
			PreferredModel: "gpt-5", Sandbox: "workspace-write", AskPolicy: "auto",
			TimeoutS: 600, Priority: prio, TTLS: ttlS, Executor: testExecutor, MaxAttempts: maxAttempts,
		},
		IdempotencyKey: key,
		Notify:         &relaytype.Notify{Webhook: "https://example.com/hook"},
	}
	s.ApplyDefaults()
	return s
}

// insertParams turns o into JobInsertParams, filling defaults.
func (b *bundle) insertParams(o jobOpts) *store.JobInsertParams {
	if o.ID == "" {
		o.ID = fmt.Sprintf("job_%d", idSeq.Add(1))
	}
	if o.Key == "" {
		o.Key = "key-" + o.ID
	}
	if o.At.IsZero() {
		o.At = b.now
	}
	if o.Window == 0 {
		o.Window = testIdempotencyWindow
	}
	return &store.JobInsertParams{
		ID:                o.ID,
		Spec:              newSpec(o.Key, o.Priority, o.TTLS, o.MaxAttempts),
		Executor:          testExecutor,
		BaselineCommit:    testBaseline,
		Now:               o.At,
		IdempotencyWindow: o.Window,
	}
}

// insert inserts a job and requires that it was created.
func (b *bundle) insert(t testingT, o jobOpts) *relaytype.Job {
	t.Helper()
	job, created, err := b.store.JobInsert(b.ctx, b.insertParams(o))
	require.NoError(t, err)
	require.True(t, created, "JobInsert: want created=true")
	return job
}

// get returns a job that must exist.
func (b *bundle) get(t testingT, id string) *relaytype.Job {
	t.Helper()
	job, err := b.store.JobGet(b.ctx, &store.JobGetParams{ID: id})
	require.NoError(t, err)
	require.Equal(t, id, job.ID)
	return job
}

// claim claims up to limit jobs for owner at time at.
func (b *bundle) claim(t testingT, owner string, at time.Time, limit int) []*relaytype.Job {
	t.Helper()
	jobs, err := b.store.JobClaim(b.ctx, &store.JobClaimParams{Owner: owner, Now: at, LeaseTTL: testLeaseTTL, Limit: limit})
	require.NoError(t, err)
	return jobs
}

// claimOne claims exactly one job for owner and requires it to be id.
func (b *bundle) claimOne(t testingT, id, owner string, at time.Time) *relaytype.Job {
	t.Helper()
	jobs := b.claim(t, owner, at, 1)
	require.Len(t, jobs, 1, "JobClaim: want one job")
	require.Equal(t, id, jobs[0].ID)
	return jobs[0]
}

// transition performs a transition that must succeed.
func (b *bundle) transition(t testingT, p *store.JobTransitionParams) *relaytype.Job {
	t.Helper()
	job, err := b.store.JobTransition(b.ctx, p)
	require.NoError(t, err, "JobTransition %s → %s", p.ID, p.To)
	require.Equal(t, p.To, job.State)
	return job
}

// events returns all events of a job.
func (b *bundle) events(t testingT, id string) []*relaytype.Event {
	t.Helper()
	evs, err := b.store.EventList(b.ctx, &store.EventListParams{JobID: id})
	require.NoError(t, err)
	return evs
}

// transitions returns the decoded payloads of a job's transition events.
func (b *bundle) transitions(t testingT, id string) []relaytype.TransitionPayload {
	t.Helper()
	return transitionPayloads(t, b.events(t, id))
}

// transitionPayloads decodes the transition events among evs.
func transitionPayloads(t testingT, evs []*relaytype.Event) []relaytype.TransitionPayload {
	t.Helper()
	var out []relaytype.TransitionPayload
	for _, ev := range evs {
		if ev.Type != relaytype.EventTransition {
			continue
		}
		var p relaytype.TransitionPayload
		require.NoError(t, json.Unmarshal(ev.Payload, &p), "transition event %d payload %s", ev.ID, ev.Payload)
		out = append(out, p)
	}
	return out
}

// requireChain checks that a job's transition events form a legal chain from
// QUEUED to the job's state, with stateVersion rising by one from 1 (the
// insert) to the job's StateVersion.
func requireChain(t testingT, job *relaytype.Job, trs []relaytype.TransitionPayload) {
	t.Helper()
	state, version := relaytype.StateQueued, int64(1)
	for i, tr := range trs {
		require.Equal(t, state, tr.From, "job %s transition %d: from", job.ID, i)
		require.True(t, relaytype.CanTransition(tr.From, tr.To), "job %s transition %d: illegal %s → %s", job.ID, i, tr.From, tr.To)
		require.Equal(t, version+1, tr.StateVersion, "job %s transition %d (%s → %s): stateVersion", job.ID, i, tr.From, tr.To)
		state, version = tr.To, tr.StateVersion
	}
	require.Equal(t, state, job.State, "job %s: state vs last transition event", job.ID)
	require.Equal(t, version, job.StateVersion, "job %s: stateVersion vs transition events", job.ID)
}

// snapshot captures everything observable about a job, to check that a
// failed call changed nothing.
type snapshot struct {
	job       string
	events    int
	artifacts int
}

// snap takes a snapshot of job id.
func (b *bundle) snap(t testingT, id string) snapshot {
	t.Helper()
	job := b.get(t, id)
	raw, err := json.Marshal(job)
	require.NoError(t, err)
	arts, err := b.store.ArtifactList(b.ctx, &store.ArtifactListParams{JobID: id})
	require.NoError(t, err)
	return snapshot{job: string(raw), events: len(b.events(t, id)), artifacts: len(arts)}
}

// requireUnchanged checks that job id still matches before.
func (b *bundle) requireUnchanged(t testingT, id string, before snapshot) {
	t.Helper()
	after := b.snap(t, id)
	require.JSONEq(t, before.job, after.job, "job %s changed", id)
	require.Equal(t, before.events, after.events, "job %s: events appended", id)
	require.Equal(t, before.artifacts, after.artifacts, "job %s: artifacts changed", id)
}

// requireTime checks that got is the instant want.
func requireTime(t testingT, want time.Time, got *time.Time, msgAndArgs ...any) {
	t.Helper()
	require.NotNil(t, got, msgAndArgs...)
	require.True(t, want.Equal(*got), "want %s, got %s: %s", want.Format(time.RFC3339Nano), got.Format(time.RFC3339Nano), fmt.Sprint(msgAndArgs...))
}

// requireErrorIs checks that err wraps one of targets.
func requireErrorIs(t testingT, err error, targets ...error) {
	t.Helper()
	require.Error(t, err)
	if slices.ContainsFunc(targets, func(target error) bool { return errors.Is(err, target) }) {
		return
	}
	require.Failf(t, "unexpected error", "error %q wraps none of %v", err, targets)
}

// ids returns the IDs of jobs, in order.
func ids(jobs []*relaytype.Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}
