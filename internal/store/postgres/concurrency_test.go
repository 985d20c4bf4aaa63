package postgres_test

// Tests of what a multi-connection backend must guarantee that a single
// SQLite writer gets for free: they run many goroutines, each on its own
// pooled connection, against one store.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/postgres"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

var base = time.Date(2030, time.January, 2, 3, 4, 5, 0, time.UTC)

func spec(key string) *relaytype.JobSpec {
	s := &relaytype.JobSpec{
		Repo:           relaytype.Repo{Type: "local", Path: "/src/repo"},
		Task:           relaytype.Task{Title: "t " + key, Description: "d"},
		IdempotencyKey: key,
	}
	s.ApplyDefaults()
	return s
}

func insert(ctx context.Context, s store.Store, id, key string) (*relaytype.Job, bool, error) {
	return s.JobInsert(ctx, &store.JobInsertParams{
		ID: id, Spec: spec(key), Executor: "codex", Now: base, IdempotencyWindow: time.Hour, Project: "p",
	})
}

// run calls fn(i) for i in [0, n) in n goroutines released together.
func run(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}

func TestConcurrentSubmitsOfOneKeyMakeOneJob(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	const submitters = 12
	for round := range 5 {
		key := fmt.Sprintf("key-%d", round)
		jobs := make([]*relaytype.Job, submitters)
		created := make([]bool, submitters)
		errs := make([]error, submitters)
		run(submitters, func(i int) {
			jobs[i], created[i], errs[i] = insert(ctx, s, fmt.Sprintf("job_%d_%d", round, i), key)
		})
		winners := 0
		for i := range submitters {
			require.NoError(t, errs[i], "submit %d", i)
			require.Equal(t, jobs[0].ID, jobs[i].ID, "submit %d got another job", i)
			if created[i] {
				winners++
			}
		}
		require.Equal(t, 1, winners, "round %d: exactly one submit creates the job", round)
	}
	project := "p"
	_, total, err := s.JobList(ctx, &store.JobListParams{Project: &project})
	require.NoError(t, err)
	require.Equal(t, 5, total)

	// Once the job ended (not SUCCEEDED), the key makes one new job, even
	// under concurrent submits.
	first, _, err := insert(ctx, s, "job_lookup", "key-0")
	require.NoError(t, err)
	j, err := s.JobTransition(ctx, &store.JobTransitionParams{ID: first.ID, To: relaytype.StateCanceled, Now: base})
	require.NoError(t, err)
	require.Equal(t, relaytype.StateCanceled, j.State)
	ids := make([]string, submitters)
	createdAgain := make([]bool, submitters)
	run(submitters, func(i int) {
		job, c, err := insert(ctx, s, fmt.Sprintf("job_again_%d", i), "key-0")
		if err == nil {
			ids[i], createdAgain[i] = job.ID, c
		}
	})
	winners := 0
	for i := range submitters {
		require.Equal(t, ids[0], ids[i])
		require.NotEqual(t, j.ID, ids[i], "the canceled job is not reused")
		if createdAgain[i] {
			winners++
		}
	}
	require.Equal(t, 1, winners)
}

func TestConcurrentClaimersClaimEachJobOnce(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	const jobs, claimers = 40, 8
	for i := range jobs {
		_, created, err := insert(ctx, s, fmt.Sprintf("job_%d", i), fmt.Sprintf("key-%d", i))
		require.NoError(t, err)
		require.True(t, created)
	}
	var mu sync.Mutex
	claimedBy := map[string]string{}
	var failures []error
	run(claimers, func(i int) {
		owner := fmt.Sprintf("worker-%d", i)
		for {
			got, err := s.JobClaim(ctx, &store.JobClaimParams{Owner: owner, Now: base.Add(time.Second), LeaseTTL: time.Minute, Limit: 3})
			mu.Lock()
			if err != nil {
				failures = append(failures, err)
			}
			for _, j := range got {
				if prev, ok := claimedBy[j.ID]; ok {
					failures = append(failures, fmt.Errorf("job %s claimed by %s and %s", j.ID, prev, owner))
				}
				claimedBy[j.ID] = owner
			}
			mu.Unlock()
			if err != nil || len(got) == 0 {
				return
			}
		}
	})
	require.Empty(t, failures)
	require.Len(t, claimedBy, jobs)
	for id, owner := range claimedBy {
		j, err := s.JobGet(ctx, &store.JobGetParams{ID: id})
		require.NoError(t, err)
		require.Equal(t, relaytype.StateRunning, j.State)
		require.Equal(t, owner, j.LeaseOwner)
		require.Equal(t, 1, j.Attempt)
		require.EqualValues(t, 2, j.StateVersion)
	}
}

// A reader that pages a job's events by id while other connections
// append to it sees every event exactly once, in id order: ids become
// visible in commit order.
func TestConcurrentEventAppendsAreNeverSkipped(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	_, _, err := insert(ctx, s, "job_ev", "key-ev")
	require.NoError(t, err)
	const writers, each = 6, 40
	done := make(chan struct{})
	var seen []*relaytype.Event
	readErr := make(chan error, 1)
	go func() {
		var after int64
		finished := false
		for {
			select {
			case <-done:
				finished = true
			default:
			}
			evs, err := s.EventList(ctx, &store.EventListParams{JobID: "job_ev", AfterID: after, Limit: 7})
			if err != nil {
				readErr <- err
				return
			}
			for _, ev := range evs {
				if ev.ID <= after {
					readErr <- fmt.Errorf("event %d after %d: ids not increasing", ev.ID, after)
					return
				}
				after = ev.ID
				seen = append(seen, ev)
			}
			if finished && len(evs) == 0 {
				readErr <- nil
				return
			}
		}
	}()
	errs := make([]error, writers)
	run(writers, func(w int) {
		for n := range each {
			payload, _ := json.Marshal(map[string]int{"writer": w, "n": n})
			if _, err := s.EventAppend(ctx, &store.EventAppendParams{JobID: "job_ev", Type: relaytype.EventLog,
				Payload: payload, Now: base}); err != nil {
				errs[w] = err
				return
			}
		}
	})
	close(done)
	require.NoError(t, <-readErr)
	for _, err := range errs {
		require.NoError(t, err)
	}
	all, err := s.EventList(ctx, &store.EventListParams{JobID: "job_ev"})
	require.NoError(t, err)
	require.Len(t, all, writers*each+1, "the submitted event and every appended one")
	require.Equal(t, len(all), len(seen), "the paging reader skipped events")
	for i := range all {
		require.Equal(t, all[i].ID, seen[i].ID)
	}
	// Each writer's events keep its order.
	last := map[int]int{}
	for _, ev := range all[1:] {
		var p struct{ Writer, N int }
		require.NoError(t, json.Unmarshal(ev.Payload, &p))
		if n, ok := last[p.Writer]; ok {
			require.Equal(t, n+1, p.N)
		}
		last[p.Writer] = p.N
	}
}

// Two jobs' executors posting one ask id at once: one stores it, the
// other gets ErrAskConflict (whether it lost the race on the primary key
// or saw the stored ask).
func TestConcurrentAskIDOnTwoJobsConflicts(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	for i := range 2 {
		_, _, err := insert(ctx, s, fmt.Sprintf("job_ask_%d", i), fmt.Sprintf("key-ask-%d", i))
		require.NoError(t, err)
	}
	claimed, err := s.JobClaim(ctx, &store.JobClaimParams{Owner: "w", Now: base, LeaseTTL: time.Minute, Limit: 2})
	require.NoError(t, err)
	require.Len(t, claimed, 2)
	for round := range 5 {
		askID := fmt.Sprintf("00000000-0000-4000-8000-%012d", round)
		errs := make([]error, 2)
		run(2, func(i int) {
			_, _, _, errs[i] = s.AskInsert(ctx, &store.AskInsertParams{Ask: &relaytype.AskRecord{
				AskID: askID, JobID: fmt.Sprintf("job_ask_%d", i), StepID: "attempt-1",
				AskType: relaytype.AskClarification, Prompt: "which?", ContextHash: "abc",
				ContextEnvelope: json.RawMessage(`{"job_snapshot":{}}`), Route: "orchestrator",
				Status: relaytype.StatusPending, CreatedAt: base, DeadlineAt: base.Add(time.Hour),
			}, PayloadHash: "h", Now: base})
		})
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
				continue
			}
			require.ErrorIs(t, err, relaytype.ErrAskConflict)
		}
		require.Equal(t, 1, ok, "round %d: one job stores the ask", round)
	}
}

// An append waits for the job's row lock, which every transaction that
// appends to the job holds: an event id drawn by a transaction still in
// flight is smaller than any drawn after it, and becomes visible first.
func TestEventAppendWaitsForTheJobLock(t *testing.T) {
	t.Parallel()
	s, url := openTestSchema(t)
	ctx := t.Context()
	_, _, err := insert(ctx, s, "job_lock", "key-lock")
	require.NoError(t, err)
	before, err := s.EventList(ctx, &store.EventListParams{JobID: "job_lock"})
	require.NoError(t, err)

	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	// What a slow transition does: lock the job, append its event.
	_, err = tx.Exec(ctx, `SELECT 1 FROM jobs WHERE id = 'job_lock' FOR UPDATE`)
	require.NoError(t, err)
	var inFlight int64
	require.NoError(t, tx.QueryRow(ctx, `INSERT INTO job_events (job_id, ts, type) VALUES ('job_lock', 0, 'log') RETURNING id`).Scan(&inFlight))

	appended := make(chan *relaytype.Event, 1)
	go func() {
		ev, err := s.EventAppend(ctx, &store.EventAppendParams{JobID: "job_lock", Type: relaytype.EventLog, Now: base})
		if err != nil {
			t.Error(err)
		}
		appended <- ev
	}()
	select {
	case ev := <-appended:
		t.Fatalf("EventAppend returned event %d while another transaction holds the job", ev.ID)
	case <-time.After(300 * time.Millisecond):
	}
	evs, err := s.EventList(ctx, &store.EventListParams{JobID: "job_lock", AfterID: before[len(before)-1].ID})
	require.NoError(t, err)
	require.Empty(t, evs, "nothing committed yet")

	require.NoError(t, tx.Commit(ctx))
	ev := <-appended
	require.NotNil(t, ev)
	require.Greater(t, ev.ID, inFlight, "the later append draws the larger id")
	evs, err = s.EventList(ctx, &store.EventListParams{JobID: "job_lock", AfterID: before[len(before)-1].ID})
	require.NoError(t, err)
	require.Len(t, evs, 2)
	require.Equal(t, inFlight, evs[0].ID)
	require.Equal(t, ev.ID, evs[1].ID)
}

// Several relays share the database: three Store values on one schema
// sweep the same lapsed leases and expired queued jobs at once, again
// and again. Every job is changed exactly once: one rescue or expiry, its
// transitions each recorded once, its asks closed once.
func TestSeveralSweepersChangeEachJobOnce(t *testing.T) {
	t.Parallel()
	stores, _ := openShared(t, 3)
	ctx := t.Context()
	s := stores[0]
	const lapsed, expiring = 24, 24
	for i := range lapsed {
		sp := spec(fmt.Sprintf("key-lapsed-%d", i))
		if i%4 == 0 {
			sp.Execution.MaxAttempts = 1 // its rescue fails it
		}
		_, _, err := s.JobInsert(ctx, &store.JobInsertParams{ID: fmt.Sprintf("job_lapsed_%02d", i), Spec: sp,
			Executor: "codex", Now: base, IdempotencyWindow: time.Hour, Project: "p"})
		require.NoError(t, err)
	}
	claimed, err := s.JobClaim(ctx, &store.JobClaimParams{Owner: "dead-relay", Now: base, LeaseTTL: time.Minute, Limit: lapsed})
	require.NoError(t, err)
	require.Len(t, claimed, lapsed)
	asks := map[string]string{} // job → its pending ask
	for i, j := range claimed {
		if i%2 == 1 {
			continue
		}
		askID := fmt.Sprintf("00000000-0000-4000-8000-1%011d", i)
		_, _, _, err := s.AskInsert(ctx, &store.AskInsertParams{Ask: &relaytype.AskRecord{
			AskID: askID, JobID: j.ID, StepID: "attempt-1", AskType: relaytype.AskClarification, Prompt: "which?",
			ContextHash: "abc", ContextEnvelope: json.RawMessage(`{}`), Route: "orchestrator",
			Status: relaytype.StatusPending, CreatedAt: base, DeadlineAt: base.Add(time.Hour),
		}, Attempt: 1, PayloadHash: "h", Now: base})
		require.NoError(t, err)
		asks[j.ID] = askID
	}
	for i := range expiring {
		sp := spec(fmt.Sprintf("key-expiring-%d", i))
		sp.Execution.TTLS = 60
		_, _, err := s.JobInsert(ctx, &store.JobInsertParams{ID: fmt.Sprintf("job_expiring_%02d", i), Spec: sp,
			Executor: "codex", Now: base.Add(2 * time.Second), IdempotencyWindow: time.Hour, Project: "p"})
		require.NoError(t, err)
	}

	// Every sweeper runs both sweeps, several times, at the same instant:
	// each lease lapsed and each queue ttl ran out by then, and no
	// requeued job expires yet.
	now := base.Add(10 * time.Minute)
	const sweepers, rounds = 3, 6
	var mu sync.Mutex
	rescuedBy, expiredBy := map[string]int{}, map[string]int{}
	errs := make([]error, sweepers)
	run(sweepers, func(i int) {
		for range rounds {
			rescued, err := stores[i].JobRescue(ctx, &store.JobRescueParams{Now: now})
			if err != nil {
				errs[i] = err
				return
			}
			expired, err := stores[i].JobExpire(ctx, &store.JobExpireParams{Now: now})
			if err != nil {
				errs[i] = err
				return
			}
			mu.Lock()
			for _, j := range rescued {
				rescuedBy[j.ID]++
			}
			for _, j := range expired {
				expiredBy[j.ID]++
			}
			mu.Unlock()
		}
	})
	for i, err := range errs {
		require.NoError(t, err, "sweeper %d", i)
	}
	require.Len(t, rescuedBy, lapsed)
	require.Len(t, expiredBy, expiring)
	for id, n := range rescuedBy {
		require.Equal(t, 1, n, "%s rescued %d times", id, n)
	}
	for id, n := range expiredBy {
		require.Equal(t, 1, n, "%s expired %d times", id, n)
	}

	transitions := func(id string) (trs []relaytype.TransitionPayload, answers int) {
		evs, err := s.EventList(ctx, &store.EventListParams{JobID: id})
		require.NoError(t, err)
		for _, ev := range evs {
			switch ev.Type {
			case relaytype.EventTransition:
				var p relaytype.TransitionPayload
				require.NoError(t, json.Unmarshal(ev.Payload, &p))
				trs = append(trs, p)
			case relaytype.EventAnswer:
				answers++
			}
		}
		return trs, answers
	}
	for i := range lapsed {
		id := fmt.Sprintf("job_lapsed_%02d", i)
		j, err := s.JobGet(ctx, &store.JobGetParams{ID: id})
		require.NoError(t, err)
		want := []relaytype.JobState{relaytype.StateRunning}
		if _, ok := asks[id]; ok {
			want = append(want, relaytype.StateWaitingOnAnswer, relaytype.StateRunning)
		}
		want = append(want, relaytype.StateStale)
		if i%4 == 0 {
			require.Equal(t, relaytype.StateFailed, j.State, id)
			require.Equal(t, relaytype.ReasonInternalError, j.ReasonCode)
			want = append(want, relaytype.StateFailed)
		} else {
			require.Equal(t, relaytype.StateQueued, j.State, id)
			want = append(want, relaytype.StateQueued)
		}
		require.Equal(t, 1, j.Attempt, "%s: a rescue counts no attempt", id)
		require.EqualValues(t, 1+len(want), j.StateVersion, id)
		trs, answers := transitions(id)
		require.Len(t, trs, len(want), "%s: one event per transition", id)
		for k, tr := range trs {
			require.Equal(t, want[k], tr.To, "%s transition %d", id, k)
			require.EqualValues(t, k+2, tr.StateVersion, "%s transition %d", id, k)
		}
		if askID, ok := asks[id]; ok {
			require.Equal(t, 1, answers, "%s: its ask closed once", id)
			a, err := s.AskGet(ctx, &store.AskGetParams{AskID: askID})
			require.NoError(t, err)
			require.Equal(t, relaytype.StatusError, a.Status)
		} else {
			require.Zero(t, answers, id)
		}
	}
	for i := range expiring {
		id := fmt.Sprintf("job_expiring_%02d", i)
		j, err := s.JobGet(ctx, &store.JobGetParams{ID: id})
		require.NoError(t, err)
		require.Equal(t, relaytype.StateExpired, j.State)
		require.EqualValues(t, 2, j.StateVersion)
		trs, _ := transitions(id)
		require.Len(t, trs, 1, id)
		require.Equal(t, relaytype.StateExpired, trs[0].To)
	}
}

// Two relays time out the same due ask at once: one answer is stored and
// fails the job once; the other relay's answer (another payload) is a
// conflict, and the same answer twice is the stored one.
func TestSeveralRelaysTimeOutOneAsk(t *testing.T) {
	t.Parallel()
	stores, _ := openShared(t, 2)
	ctx := t.Context()
	for round := range 6 {
		sameHash := round%2 == 1
		id := fmt.Sprintf("job_to_%d", round)
		_, _, err := insert(ctx, stores[0], id, "key-"+id)
		require.NoError(t, err)
		_, err = stores[0].JobTransition(ctx, &store.JobTransitionParams{ID: id, To: relaytype.StateRunning, Owner: "w",
			LeaseTTL: time.Hour, Now: base})
		require.NoError(t, err)
		askID := fmt.Sprintf("00000000-0000-4000-8000-2%011d", round)
		_, _, _, err = stores[0].AskInsert(ctx, &store.AskInsertParams{Ask: &relaytype.AskRecord{
			AskID: askID, JobID: id, StepID: "attempt-1", AskType: relaytype.AskClarification, Prompt: "which?",
			ContextHash: "abc", ContextEnvelope: json.RawMessage(`{}`), Route: "orchestrator",
			Status: relaytype.StatusPending, CreatedAt: base, DeadlineAt: base.Add(time.Minute),
		}, Attempt: 1, PayloadHash: "h", Now: base})
		require.NoError(t, err)
		due, err := stores[1].AskDue(ctx, &store.AskDueParams{Now: base.Add(time.Minute)})
		require.NoError(t, err)
		require.Len(t, due, 1)

		created := make([]bool, 2)
		errs := make([]error, 2)
		run(2, func(i int) {
			hash := fmt.Sprintf("timeout-by-relay-%d", i)
			if sameHash {
				hash = "timeout"
			}
			_, created[i], _, errs[i] = stores[i].AnswerInsert(ctx, &store.AnswerInsertParams{Answer: &relaytype.AnswerRecord{
				AskID: askID, JobID: id, StepID: "attempt-1", Status: relaytype.StatusTimeout,
				Error: fmt.Sprintf("no answer within 60s (relay %d)", i)}, PayloadHash: hash, Now: base.Add(time.Minute)})
		})
		wins := 0
		for i := range 2 {
			if created[i] {
				require.NoError(t, errs[i])
				wins++
				continue
			}
			if sameHash {
				require.NoError(t, errs[i], "round %d: the same answer again is the stored one", round)
			} else {
				require.ErrorIs(t, errs[i], relaytype.ErrAnswerConflict, "round %d", round)
			}
		}
		require.Equal(t, 1, wins, "round %d: one answer stored", round)

		j, err := stores[0].JobGet(ctx, &store.JobGetParams{ID: id})
		require.NoError(t, err)
		require.Equal(t, relaytype.StateFailed, j.State)
		require.Equal(t, relaytype.ReasonTimeout, j.ReasonCode)
		evs, err := stores[0].EventList(ctx, &store.EventListParams{JobID: id})
		require.NoError(t, err)
		answers, failed := 0, 0
		for _, ev := range evs {
			if ev.Type == relaytype.EventAnswer {
				answers++
			}
			if ev.Type == relaytype.EventTransition && strings.Contains(string(ev.Payload), `"to":"FAILED"`) {
				failed++
			}
		}
		require.Equal(t, 1, answers, "round %d: one answer event", round)
		require.Equal(t, 1, failed, "round %d: failed once", round)
	}
}

// Three relays' deliverers claim from one outbox: every message is leased
// to exactly one of them, once.
func TestSeveralDeliverersLeaseEachMessageOnce(t *testing.T) {
	t.Parallel()
	stores, _ := openShared(t, 3)
	ctx := t.Context()
	const messages = 60
	for i := range messages {
		_, created, err := stores[i%3].OutboxEnqueue(ctx, &store.OutboxEnqueueParams{Now: base, Message: &store.OutboxMessage{
			ID: fmt.Sprintf("msg_%02d", i), Kind: "test", Target: "https://example.com/hook", Payload: json.RawMessage(`{}`)}})
		require.NoError(t, err)
		require.True(t, created)
	}
	var mu sync.Mutex
	leasedTo := map[string]string{}
	var failures []error
	run(3, func(i int) {
		owner := fmt.Sprintf("relay-%d", i)
		for {
			got, err := stores[i].OutboxClaim(ctx, &store.OutboxClaimParams{Owner: owner, Now: base.Add(time.Second),
				LeaseTTL: time.Minute, Limit: 4})
			mu.Lock()
			if err != nil {
				failures = append(failures, err)
			}
			for _, m := range got {
				if prev, ok := leasedTo[m.ID]; ok {
					failures = append(failures, fmt.Errorf("message %s leased to %s and %s", m.ID, prev, owner))
				}
				leasedTo[m.ID] = owner
				if m.LeaseOwner != owner || m.Attempts != 1 {
					failures = append(failures, fmt.Errorf("message %s: lease %q, attempts %d", m.ID, m.LeaseOwner, m.Attempts))
				}
			}
			mu.Unlock()
			if err != nil || len(got) == 0 {
				return
			}
		}
	})
	require.Empty(t, failures)
	require.Len(t, leasedTo, messages)
	all, err := stores[0].OutboxList(ctx, &store.OutboxListParams{})
	require.NoError(t, err)
	require.Len(t, all, messages)
	for _, m := range all {
		require.Equal(t, 1, m.Attempts, m.ID)
		require.Equal(t, leasedTo[m.ID], m.LeaseOwner, m.ID)
	}
}

// Relays that start together on a fresh database migrate one at a time
// (a session advisory lock per schema): every Open succeeds and the
// schema is migrated once.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	const n = 4
	errs := make(chan error, n)
	stores := make(chan *postgres.Store, n)
	for range n {
		go func() {
			s, err := postgres.Open(t.Context(), postgres.Config{URL: url, Schema: schema, MaxConns: 2})
			if err == nil {
				stores <- s
			}
			errs <- err
		}()
	}
	for range n {
		require.NoError(t, <-errs)
	}
	close(stores)
	for s := range stores {
		require.NoError(t, s.Close())
	}
	conn := adminConn(t, url)
	defer conn.Close(context.Background())
	var applied, distinct int
	require.NoError(t, conn.QueryRow(t.Context(),
		`SELECT count(*), count(DISTINCT version_id) FROM `+schema+`.goose_db_version WHERE version_id > 0`).Scan(&applied, &distinct))
	require.Equal(t, distinct, applied, "each migration applied once")
	require.Equal(t, 8, distinct)
}
