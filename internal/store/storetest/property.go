package storetest

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Timing of the state-machine property. Every action but submit runs on
// whole seconds; submits run half a second earlier and the lease TTL has a
// half second, so no deadline (TTL end, lease end, idempotency window) ever
// falls exactly on a "now" and the model needs no boundary rules.
const (
	propLeaseTTL     = 20*time.Second + 500*time.Millisecond
	propWindow       = 90 * time.Second
	propSubmitOffset = -500 * time.Millisecond
)

// propOwners are the workers of the property.
var propOwners = []string{"worker-a", "worker-b", "worker-c"}

// propKeys are the idempotency keys submits reuse.
var propKeys = []string{"key-0", "key-1", "key-2"}

// modelJob is what the model expects of one job.
type modelJob struct {
	id          string
	key         string
	rank        int
	seq         int
	state       relaytype.JobState
	version     int64
	attempt     int
	maxAttempts int
	ttl         time.Duration
	expiresAt   time.Time
	owner       string
	leaseExp    time.Time
	finishedAt  time.Time
	reason      relaytype.FailReason
	// staleAt is when the job last went STALE.
	staleAt time.Time
	// asked says whether the job has asks.
	asked bool

	// terminal is the JSON of the job when first seen terminal.
	terminal string
	// Where the check of the event log got to.
	lastEventID  int64
	chainState   relaytype.JobState
	chainVersion int64
}

// machine runs random actions against a store and a model of it.
type machine struct {
	b     *bundle
	clock time.Time
	jobs  []*modelJob
	byID  map[string]*modelJob
	seq   int
	// touched holds the jobs the last action read or changed.
	touched map[string]bool
	asks    []*modelAsk
	askByID map[string]*modelAsk
	// allAsks makes the next check read every ask.
	allAsks bool
}

// exerciseProperty runs random sequences of submits, claims, heartbeats,
// clock moves, rescues, expiries, cancels, completions, releases, asks,
// answers and ask deadline sweeps against an empty store per check,
// comparing it with a model and checking the state-machine invariants after
// every action, and those that bind asks to attempts: no ask of an
// attempt that is over is PENDING, a WAITING_ON_ANSWER job has a PENDING
// ask of its current attempt, and answers to an attempt that is over are
// refused.
//
// A store that is an Emptier is opened once and emptied before each
// check; any other store is opened anew for each check. The number of
// checks is rapid's (see PropertyChecks).
func exerciseProperty(t *testing.T, newStore func(t *testing.T) store.Store) {
	fresh := freshStores(t, newStore)
	rapid.Check(t, func(rt *rapid.T) {
		m := &machine{
			b:       fresh(rt),
			clock:   baseTime,
			byID:    map[string]*modelJob{},
			touched: map[string]bool{},
			askByID: map[string]*modelAsk{},
		}
		// Actions listed twice are drawn twice as often: jobs should get
		// claimed and finished, not mostly canceled while queued.
		rt.Repeat(map[string]func(*rapid.T){
			"submit":    m.submit,
			"submit2":   m.submit,
			"claim":     m.claim,
			"claim2":    m.claim,
			"heartbeat": m.heartbeat,
			"advance":   m.advance,
			"advance2":  m.advance,
			"rescue":    m.rescue,
			"expire":    m.expire,
			"cancel":    m.cancel,
			"complete":  m.complete,
			"complete2": m.complete,
			"ask":       m.ask,
			"answer":    m.answer,
			"answer2":   m.answer,
			"repost":    m.repost,
			"sweepAsks": m.sweepAsks,
			"release":   m.release,
			"unwait":    m.unwait,
			"":          m.check,
		})
		m.checkAll(rt)
	})
}

// submit inserts a job, sometimes with a key an earlier job used.
func (m *machine) submit(t *rapid.T) {
	var key string
	if rapid.IntRange(0, 4).Draw(t, "reuseKey") < 3 {
		key = rapid.SampledFrom(propKeys).Draw(t, "key")
	} else {
		key = fmt.Sprintf("unique-%d", m.seq)
	}
	prio := rapid.SampledFrom([]relaytype.Priority{relaytype.PriorityP0, relaytype.PriorityP1, relaytype.PriorityP2}).Draw(t, "priority")
	maxAttempts := rapid.IntRange(1, 3).Draw(t, "maxAttempts")
	ttl := rapid.IntRange(1, 120).Draw(t, "ttlS")
	now := m.clock.Add(propSubmitOffset)
	id := fmt.Sprintf("job_prop_%04d", m.seq)

	existing := m.idempotent(key, now)
	var before snapshot
	if existing != nil {
		before = m.b.snap(t, existing.id)
	}
	p := m.b.insertParams(jobOpts{ID: id, Key: key, Priority: prio, TTLS: ttl, MaxAttempts: maxAttempts, At: now, Window: propWindow})
	job, created, err := m.b.store.JobInsert(m.b.ctx, p)
	require.NoError(t, err)
	m.touched[id] = true
	if existing != nil {
		m.touched[existing.id] = true
		require.False(t, created, "key %s matches %s (%s): want created=false", key, existing.id, existing.state)
		require.Equal(t, existing.id, job.ID)
		m.b.requireUnchanged(t, existing.id, before)
		return
	}
	require.True(t, created, "key %s matches no live job: want created=true", key)
	require.Equal(t, id, job.ID)
	require.Equal(t, relaytype.StateQueued, job.State)
	require.Equal(t, int64(1), job.StateVersion)
	mj := &modelJob{
		id: id, key: key, rank: prio.Rank(), seq: m.seq,
		state: relaytype.StateQueued, version: 1, maxAttempts: maxAttempts,
		ttl:        time.Duration(ttl) * time.Second,
		expiresAt:  now.Add(time.Duration(ttl) * time.Second),
		chainState: relaytype.StateQueued, chainVersion: 1,
	}
	m.seq++
	m.jobs = append(m.jobs, mj)
	m.byID[id] = mj
}

// idempotent returns the job a submit with key at now must return, if any.
func (m *machine) idempotent(key string, now time.Time) *modelJob {
	for _, j := range m.jobs {
		if j.key != key {
			continue
		}
		if !j.state.Terminal() || (j.state == relaytype.StateSucceeded && now.Sub(j.finishedAt) < propWindow) {
			return j
		}
	}
	return nil
}

// claim claims up to a random number of jobs for a random owner.
func (m *machine) claim(t *rapid.T) {
	owner := rapid.SampledFrom(propOwners).Draw(t, "owner")
	limit := rapid.IntRange(1, 3).Draw(t, "limit")

	var want []*modelJob
	for _, j := range m.jobs {
		if j.state == relaytype.StateQueued && j.expiresAt.After(m.clock) {
			want = append(want, j)
		}
	}
	slices.SortFunc(want, func(x, y *modelJob) int { return cmp.Or(cmp.Compare(x.rank, y.rank), cmp.Compare(x.seq, y.seq)) })
	want = want[:min(limit, len(want))]

	got, err := m.b.store.JobClaim(m.b.ctx, &store.JobClaimParams{Owner: owner, Now: m.clock, LeaseTTL: propLeaseTTL, Limit: limit})
	require.NoError(t, err)
	wantIDs := make([]string, len(want))
	for i, j := range want {
		wantIDs[i] = j.id
	}
	require.ElementsMatch(t, wantIDs, ids(got), "claimed jobs (limit %d)", limit)
	for _, j := range want {
		m.touched[j.id] = true
		j.state = relaytype.StateRunning
		j.version++
		j.attempt++
		j.owner = owner
		j.leaseExp = m.clock.Add(propLeaseTTL)
		m.endAsks(j, j.attempt)
	}
	for _, job := range got {
		require.Equal(t, relaytype.StateRunning, job.State)
		require.Equal(t, owner, job.LeaseOwner)
	}
}

// pick draws a job, preferring active ones when asked to.
func (m *machine) pick(t *rapid.T) *modelJob {
	if len(m.jobs) == 0 {
		t.Skip("no jobs yet")
	}
	if rapid.IntRange(0, 3).Draw(t, "preferActive") > 0 {
		var active []*modelJob
		for _, j := range m.jobs {
			if j.state.Active() {
				active = append(active, j)
			}
		}
		if len(active) > 0 {
			return active[rapid.IntRange(0, len(active)-1).Draw(t, "activeJob")]
		}
	}
	return m.jobs[rapid.IntRange(0, len(m.jobs)-1).Draw(t, "job")]
}

// drawOwner returns j's owner or, sometimes, another worker.
func (m *machine) drawOwner(t *rapid.T, j *modelJob) string {
	if j.owner != "" && rapid.IntRange(0, 3).Draw(t, "wrongOwner") > 0 {
		return j.owner
	}
	return rapid.SampledFrom(propOwners).Draw(t, "owner")
}

// ownerOutcome says whether owner may move j to state to now: yes, no, or
// (for a lapsed lease not yet rescued) either, which the contract leaves
// open. Moving a job that holds no lease to RUNNING starts a lease for
// owner, like a claim.
func (m *machine) ownerOutcome(j *modelJob, owner string, to relaytype.JobState) (ok, lost bool) {
	switch {
	case owner == "":
		return true, false
	case to == relaytype.StateRunning && !j.state.Active():
		return true, false
	case !j.state.Active() || owner != j.owner:
		return false, true
	case j.leaseExp.Before(m.clock):
		return true, true
	}
	return true, false
}

// heartbeat renews a random job's lease as its owner or another worker.
func (m *machine) heartbeat(t *rapid.T) {
	j := m.pick(t)
	owner := m.drawOwner(t, j)
	ok, lost := m.ownerOutcome(j, owner, "")
	m.touched[j.id] = true
	before := m.b.snap(t, j.id)

	job, err := m.b.store.JobHeartbeat(m.b.ctx, &store.JobHeartbeatParams{ID: j.id, Owner: owner, Now: m.clock, LeaseTTL: propLeaseTTL})
	if err != nil {
		require.True(t, lost, "heartbeat of %s (%s, owner %s) by %s: %v", j.id, j.state, j.owner, owner, err)
		requireErrorIs(t, err, relaytype.ErrLeaseLost)
		m.b.requireUnchanged(t, j.id, before)
		return
	}
	require.True(t, ok, "heartbeat of %s (%s, owner %q) by %s succeeded; want ErrLeaseLost", j.id, j.state, j.owner, owner)
	require.Equal(t, j.version, job.StateVersion, "a heartbeat is not a transition")
	j.leaseExp = m.clock.Add(propLeaseTTL)
}

// advance moves the clock by whole seconds.
func (m *machine) advance(t *rapid.T) {
	m.clock = m.clock.Add(time.Duration(rapid.IntRange(0, 40).Draw(t, "seconds")) * time.Second)
}

// rescue runs JobRescue and checks which jobs it requeued or failed.
func (m *machine) rescue(t *rapid.T) {
	var want []string
	for _, j := range m.jobs {
		if (j.state.Active() && j.leaseExp.Before(m.clock)) || j.state == relaytype.StateStale {
			want = append(want, j.id)
		}
	}
	got, err := m.b.store.JobRescue(m.b.ctx, &store.JobRescueParams{Now: m.clock})
	require.NoError(t, err)
	require.ElementsMatch(t, want, ids(got), "rescued jobs")
	for _, job := range got {
		j := m.byID[job.ID]
		m.touched[j.id] = true
		steps := int64(1) // STALE → QUEUED or FAILED
		switch j.state {
		case relaytype.StateRunning:
			steps = 2
		case relaytype.StateWaitingOnAnswer:
			steps = 3
		}
		m.endAsks(j, 0)
		if j.attempt >= j.maxAttempts {
			j.state, j.reason, j.finishedAt = relaytype.StateFailed, relaytype.ReasonInternalError, m.clock
		} else {
			j.state = relaytype.StateQueued
		}
		require.Equal(t, j.state, job.State, "rescued %s (attempt %d of %d)", j.id, j.attempt, j.maxAttempts)
		require.Equal(t, j.version+steps, job.StateVersion, "rescue goes through STALE")
		j.version = job.StateVersion
		j.owner, j.leaseExp = "", time.Time{}
		if j.state == relaytype.StateQueued {
			// The contract leaves open whether a retry keeps the TTL of the
			// submit or queues for a fresh one.
			fresh := m.clock.Add(j.ttl)
			require.True(t, job.ExpiresAt.Equal(j.expiresAt) || job.ExpiresAt.Equal(fresh),
				"%s: requeued ExpiresAt %s is neither the submit's %s nor a fresh %s", j.id, job.ExpiresAt, j.expiresAt, fresh)
			j.expiresAt = job.ExpiresAt
		}
	}
}

// expire runs JobExpire and checks which jobs it expired. A job whose TTL
// ends exactly now may or may not expire (a requeued job's fresh TTL can end
// on a whole second).
func (m *machine) expire(t *rapid.T) {
	var must []string
	for _, j := range m.jobs {
		if j.state == relaytype.StateQueued && j.expiresAt.Before(m.clock) {
			must = append(must, j.id)
		}
	}
	got, err := m.b.store.JobExpire(m.b.ctx, &store.JobExpireParams{Now: m.clock})
	require.NoError(t, err)
	gotIDs := ids(got)
	for _, id := range must {
		require.Contains(t, gotIDs, id, "job past its TTL not expired")
	}
	for _, job := range got {
		j, ok := m.byID[job.ID]
		require.True(t, ok, "expired unknown job %s", job.ID)
		m.touched[j.id] = true
		require.True(t, j.state == relaytype.StateQueued && !j.expiresAt.After(m.clock), "expired %s (%s, ExpiresAt %s)", j.id, j.state, j.expiresAt)
		require.Equal(t, relaytype.StateExpired, job.State)
		j.state, j.finishedAt = relaytype.StateExpired, m.clock
		j.version++
	}
}

// cancel cancels a random job without naming an owner.
func (m *machine) cancel(t *rapid.T) {
	m.transition(t, m.pick(t), relaytype.StateCanceled, "", "")
}

// complete ends a random job SUCCEEDED or FAILED as its owner (or, sometimes,
// as another worker).
func (m *machine) complete(t *rapid.T) {
	j := m.pick(t)
	owner := m.drawOwner(t, j)
	if rapid.Bool().Draw(t, "succeed") {
		m.transition(t, j, relaytype.StateSucceeded, owner, "")
		return
	}
	reason := rapid.SampledFrom([]relaytype.FailReason{relaytype.ReasonExecutorError, relaytype.ReasonTimeout, relaytype.ReasonBadArtifacts}).Draw(t, "reason")
	m.transition(t, j, relaytype.StateFailed, owner, reason)
}

// unwait moves a random job back to RUNNING, as a worker whose executor
// finished with asks pending does (or starts a queued or STALE one).
func (m *machine) unwait(t *rapid.T) {
	j := m.pick(t)
	m.transition(t, j, relaytype.StateRunning, m.drawOwner(t, j), "")
}

// transition calls JobTransition and checks the outcome against the model.
// When a call is both illegal and made by a non-owner, either error is
// accepted: the contract does not order the two checks.
func (m *machine) transition(t *rapid.T, j *modelJob, to relaytype.JobState, owner string, reason relaytype.FailReason) {
	legal := relaytype.CanTransition(j.state, to)
	start := to.Active() && !j.state.Active()
	if start && j.attempt >= j.maxAttempts {
		legal = false // a job that has used its attempts is not started again
	}
	ok, lost := m.ownerOutcome(j, owner, to)
	m.touched[j.id] = true
	before := m.b.snap(t, j.id)

	job, err := m.b.store.JobTransition(m.b.ctx, &store.JobTransitionParams{
		ID: j.id, To: to, Owner: owner, LeaseTTL: propLeaseTTL, Now: m.clock, Reason: reason,
	})
	what := fmt.Sprintf("%s %s → %s by %q (owner %q)", j.id, j.state, to, owner, j.owner)
	if err != nil {
		switch {
		case errors.Is(err, relaytype.ErrIllegalTransition):
			require.False(t, legal, "%s is legal: %v", what, err)
		case errors.Is(err, relaytype.ErrLeaseLost):
			require.True(t, lost, "%s: owner holds the lease: %v", what, err)
		default:
			require.NoError(t, err, what)
		}
		m.b.requireUnchanged(t, j.id, before)
		return
	}
	require.True(t, legal, "%s succeeded; want ErrIllegalTransition", what)
	require.True(t, ok, "%s succeeded; want ErrLeaseLost", what)
	j.state = to
	j.version++
	require.Equal(t, to, job.State, what)
	require.Equal(t, j.version, job.StateVersion, what)
	switch {
	case start:
		// Whether a start outside JobClaim counts an attempt is left open.
		require.Contains(t, []int{j.attempt, j.attempt + 1}, job.Attempt, what)
		j.attempt, j.owner, j.leaseExp = job.Attempt, owner, m.clock.Add(propLeaseTTL)
		m.endAsks(j, j.attempt)
	case to.Terminal():
		j.owner, j.leaseExp, j.finishedAt, j.reason = "", time.Time{}, m.clock, reason
		m.endAsks(j, 0)
	case to == relaytype.StateStale:
		j.owner, j.leaseExp, j.staleAt = "", time.Time{}, m.clock
		m.endAsks(j, 0)
	case to.Active():
		j.leaseExp = m.clock.Add(propLeaseTTL)
	}
}

// check compares the store with the model and checks the invariants. To
// keep the property fast it reads every job through one JobList, and reads
// JobGet and the event log only of jobs the last action touched or whose
// version moved, and the asks only after an action touched a job that has
// asks; checkAll, run at the end, reads everything.
func (m *machine) check(t *rapid.T) {
	listed, total, err := m.b.store.JobList(m.b.ctx, &store.JobListParams{Limit: 1000})
	require.NoError(t, err)
	require.Equal(t, len(m.jobs), total, "JobList total: no job lost or invented")
	require.Len(t, listed, len(m.jobs), "JobList returns every job")
	byID := make(map[string]*relaytype.Job, len(listed))
	for _, job := range listed {
		byID[job.ID] = job
	}

	var wake time.Time
	for _, j := range m.jobs {
		job, ok := byID[j.id]
		require.True(t, ok, "%s: missing from JobList", j.id)
		m.checkJob(t, j, job)
		if m.touched[j.id] {
			requireSameJob(t, job, m.b.get(t, j.id))
		}
		if m.touched[j.id] || job.StateVersion != j.chainVersion {
			m.checkEvents(t, j)
		}

		var due time.Time
		switch {
		case j.state == relaytype.StateQueued:
			due = j.expiresAt
		case j.state.Active():
			due = j.leaseExp
		case j.state == relaytype.StateStale:
			due = j.staleAt
		}
		if !due.IsZero() && (wake.IsZero() || due.Before(wake)) {
			wake = due
		}
	}
	asks := m.allAsks
	for id := range m.touched {
		if j := m.byID[id]; j != nil && j.asked {
			asks = true
		}
	}
	clear(m.touched)
	if asks {
		m.checkAsks(t, byID)
	}

	got, err := m.b.store.JobNextWake(m.b.ctx)
	require.NoError(t, err)
	if wake.IsZero() {
		require.True(t, got.IsZero(), "JobNextWake: want zero, got %s", got)
	} else {
		requireTime(t, wake, &got, "JobNextWake")
	}
}

// checkAll reads every job with JobGet and checks its whole event log.
func (m *machine) checkAll(t *rapid.T) {
	m.allAsks = true
	m.check(t)
	for _, j := range m.jobs {
		m.checkJob(t, j, m.b.get(t, j.id))
		j.lastEventID, j.chainState, j.chainVersion = 0, relaytype.StateQueued, 1
		m.checkEvents(t, j)
	}
	m.checkAllAsks(t)
}

// requireSameJob checks that two reads of a job agree.
func requireSameJob(t testingT, want, got *relaytype.Job) {
	t.Helper()
	w, err := json.Marshal(want)
	require.NoError(t, err)
	g, err := json.Marshal(got)
	require.NoError(t, err)
	require.JSONEq(t, string(w), string(g), "JobList and JobGet disagree on %s", want.ID)
}

// checkJob compares one stored job with the model.
func (m *machine) checkJob(t *rapid.T, j *modelJob, job *relaytype.Job) {
	require.True(t, job.State.Valid(), "%s: invalid state %q", j.id, job.State)
	require.Equal(t, j.state, job.State, "%s: state", j.id)
	require.Equal(t, j.version, job.StateVersion, "%s: stateVersion", j.id)
	require.Equal(t, j.attempt, job.Attempt, "%s: attempt", j.id)
	require.Equal(t, j.maxAttempts, job.MaxAttempts, "%s: maxAttempts", j.id)
	require.LessOrEqual(t, job.Attempt, job.MaxAttempts, "%s: attempt ≤ maxAttempts", j.id)
	requireTime(t, j.expiresAt, &job.ExpiresAt, j.id, " ExpiresAt")
	if job.State.Active() {
		require.Equal(t, j.owner, job.LeaseOwner, "%s: an active job has its owner's lease", j.id)
		requireTime(t, j.leaseExp, job.LeaseExpiresAt, j.id, " LeaseExpiresAt")
	} else if job.State != relaytype.StateStale {
		// A STALE job may name the owner whose attempt ended; it holds
		// no lease either way (no heartbeat or owner check passes).
		require.Empty(t, job.LeaseOwner, "%s: a %s job holds no lease", j.id, job.State)
	}
	// The spec asks for a webhook: exactly one notification once the job
	// ended, none before.
	msgs, err := m.b.store.OutboxList(m.b.ctx, &store.OutboxListParams{JobID: j.id})
	require.NoError(t, err)
	if !job.State.Terminal() {
		require.Empty(t, msgs, "%s: a %s job has no notification", j.id, job.State)
		return
	}
	require.Len(t, msgs, 1, "%s: a %s job has exactly one notification", j.id, job.State)
	requireTime(t, j.finishedAt, job.FinishedAt, j.id, " FinishedAt")
	if job.State == relaytype.StateFailed {
		require.Equal(t, j.reason, job.ReasonCode, "%s: reason", j.id)
	}
	raw, err := json.Marshal(job)
	require.NoError(t, err)
	if j.terminal == "" {
		j.terminal = string(raw)
	}
	require.JSONEq(t, j.terminal, string(raw), "%s: a terminal job never changes", j.id)
}

// checkEvents checks the events of j appended since the last check: IDs
// rise, and transition events continue a legal chain that ends at the job's
// state and version.
func (m *machine) checkEvents(t *rapid.T, j *modelJob) {
	evs, err := m.b.store.EventList(m.b.ctx, &store.EventListParams{JobID: j.id, AfterID: j.lastEventID})
	require.NoError(t, err)
	for _, ev := range evs {
		require.Greater(t, ev.ID, j.lastEventID, "%s: event IDs rise", j.id)
		require.Equal(t, j.id, ev.JobID)
		j.lastEventID = ev.ID
	}
	for _, tr := range transitionPayloads(t, evs) {
		require.Equal(t, j.chainState, tr.From, "%s: transition %s → %s does not continue from %s", j.id, tr.From, tr.To, j.chainState)
		require.True(t, relaytype.CanTransition(tr.From, tr.To), "%s: illegal transition event %s → %s", j.id, tr.From, tr.To)
		require.Equal(t, j.chainVersion+1, tr.StateVersion, "%s: transition %s → %s stateVersion", j.id, tr.From, tr.To)
		j.chainState, j.chainVersion = tr.To, tr.StateVersion
	}
	require.Equal(t, j.state, j.chainState, "%s: state vs last transition event", j.id)
	require.Equal(t, j.version, j.chainVersion, "%s: stateVersion vs transition events", j.id)
}
