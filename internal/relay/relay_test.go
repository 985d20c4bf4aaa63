package relay_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/sqlite"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// funcHandler is a Handler built from functions.
type funcHandler struct {
	AdmitFunc  func(ctx context.Context, spec *relaytype.JobSpec) (string, string, error)
	HandleFunc func(ctx context.Context, job *relaytype.Job) relay.Outcome
}

func (h *funcHandler) Admit(ctx context.Context, spec *relaytype.JobSpec) (string, string, error) {
	if h.AdmitFunc != nil {
		return h.AdmitFunc(ctx, spec)
	}
	return "test", "0123456789abcdef0123456789abcdef01234567", nil
}

func (h *funcHandler) Handle(ctx context.Context, job *relaytype.Job) relay.Outcome {
	return h.HandleFunc(ctx, job)
}

type bundle struct {
	relay *relay.Relay
	store store.Store
}

func setup(t *testing.T, h relay.Handler, mutate func(*relay.Config)) *bundle {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	cfg := relay.Config{Store: st, Handler: h, Artifacts: relay.ArtifactDir{Root: t.TempDir()}, Logger: quiet}
	if mutate != nil {
		mutate(&cfg)
	}
	r, err := relay.New(cfg)
	require.NoError(t, err)
	return &bundle{relay: r, store: st}
}

func (b *bundle) start(t *testing.T) {
	t.Helper()
	require.NoError(t, b.relay.Start(context.Background()))
	t.Cleanup(b.relay.Stop)
}

func spec(key string, prio relaytype.Priority) *relaytype.JobSpec {
	return &relaytype.JobSpec{
		Repo:           relaytype.Repo{Type: "local", Path: "/tmp"},
		Task:           relaytype.Task{Title: "t", Description: "d"},
		Execution:      relaytype.Execution{Priority: prio},
		IdempotencyKey: key,
	}
}

// waitState polls the job until it reaches want or the deadline passes.
func waitState(t *testing.T, r *relay.Relay, id string, want relaytype.JobState) *relaytype.Job {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := r.Get(context.Background(), id)
		require.NoError(t, err)
		if j.State == want {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s is %s, want %s", id, j.State, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func succeed(context.Context, *relaytype.Job) relay.Outcome {
	return relay.Outcome{State: relaytype.StateSucceeded, Summary: "ok"}
}

func TestSubmitRunsJobToSuccess(t *testing.T) {
	t.Parallel()
	b := setup(t, &funcHandler{HandleFunc: succeed}, nil)
	b.start(t)
	ch, unsub := b.relay.Subscribe()
	defer unsub()
	j, created, err := b.relay.Submit(context.Background(), spec("k1", ""))
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, relaytype.PriorityP1, j.Priority)
	final := waitState(t, b.relay, j.ID, relaytype.StateSucceeded)
	require.Equal(t, 1, final.Attempt)
	require.Equal(t, int64(3), final.StateVersion)

	// Subscribers saw QUEUED, RUNNING and SUCCEEDED in order.
	var seen []relaytype.JobState
	for len(seen) < 3 {
		select {
		case c := <-ch:
			if c.JobID == j.ID && c.State != "" {
				seen = append(seen, c.State)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("changes seen: %v", seen)
		}
	}
	require.Equal(t, []relaytype.JobState{relaytype.StateQueued, relaytype.StateRunning, relaytype.StateSucceeded}, seen)

	// Same key after success: the same job, not a new one.
	again, created, err := b.relay.Submit(context.Background(), spec("k1", ""))
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, j.ID, again.ID)
}

func TestSubmitWakesIdleWorkerWithoutPolling(t *testing.T) {
	t.Parallel()
	started := make(chan time.Time, 1)
	b := setup(t, &funcHandler{HandleFunc: func(ctx context.Context, j *relaytype.Job) relay.Outcome {
		started <- time.Now()
		return succeed(ctx, j)
	}}, func(c *relay.Config) { c.PollInterval = time.Hour })
	b.start(t)
	// Let the dispatcher go idle first.
	time.Sleep(20 * time.Millisecond)
	t0 := time.Now()
	_, _, err := b.relay.Submit(context.Background(), spec("wake", ""))
	require.NoError(t, err)
	select {
	case s := <-started:
		// With an hour-long safety poll, only the wake-up can explain a start.
		require.Less(t, s.Sub(t0), 5*time.Second)
	case <-time.After(5 * time.Second):
		t.Fatal("submit did not wake a worker")
	}
}

func TestPriorityThenFIFO(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		order []string
	)
	b := setup(t, &funcHandler{HandleFunc: func(ctx context.Context, j *relaytype.Job) relay.Outcome {
		mu.Lock()
		order = append(order, j.IdempotencyKey)
		mu.Unlock()
		return succeed(ctx, j)
	}}, func(c *relay.Config) { c.MaxConcurrency = 1 })
	// Queue before starting so that all compete for the first claim.
	keys := []struct {
		key  string
		prio relaytype.Priority
	}{{"p2-a", "P2"}, {"p1-a", "P1"}, {"p0-a", "P0"}, {"p2-b", "P2"}, {"p0-b", "P0"}, {"p1-b", "P1"}}
	for _, k := range keys {
		_, _, err := b.relay.Submit(context.Background(), spec(k.key, k.prio))
		require.NoError(t, err)
	}
	b.start(t)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == len(keys) }, 10*time.Second, 2*time.Millisecond)
	require.Equal(t, []string{"p0-a", "p0-b", "p1-a", "p1-b", "p2-a", "p2-b"}, order)
}

func TestMaxConcurrency(t *testing.T) {
	t.Parallel()
	var (
		mu          sync.Mutex
		active, top int
	)
	release := make(chan struct{})
	b := setup(t, &funcHandler{HandleFunc: func(ctx context.Context, j *relaytype.Job) relay.Outcome {
		mu.Lock()
		active++
		top = max(top, active)
		mu.Unlock()
		<-release
		mu.Lock()
		active--
		mu.Unlock()
		return succeed(ctx, j)
	}}, func(c *relay.Config) { c.MaxConcurrency = 2 })
	b.start(t)
	var ids []string
	for i := range 5 {
		j, _, err := b.relay.Submit(context.Background(), spec(string(rune('a'+i)), ""))
		require.NoError(t, err)
		ids = append(ids, j.ID)
	}
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return active == 2 }, 5*time.Second, time.Millisecond)
	close(release)
	for _, id := range ids {
		waitState(t, b.relay, id, relaytype.StateSucceeded)
	}
	require.Equal(t, 2, top)
}

func TestCancelStopsRunningJob(t *testing.T) {
	t.Parallel()
	running := make(chan struct{})
	stopped := make(chan error, 1)
	b := setup(t, &funcHandler{HandleFunc: func(ctx context.Context, j *relaytype.Job) relay.Outcome {
		close(running)
		<-ctx.Done()
		stopped <- context.Cause(ctx)
		return relay.Outcome{}
	}}, nil)
	b.start(t)
	j, _, err := b.relay.Submit(context.Background(), spec("c", ""))
	require.NoError(t, err)
	<-running
	got, err := b.relay.Cancel(context.Background(), j.ID)
	require.NoError(t, err)
	require.Equal(t, relaytype.StateCanceled, got.State)
	// Cancel returned only after the run ended.
	select {
	case err := <-stopped:
		require.Error(t, err)
	default:
		t.Fatal("Cancel returned before the run stopped")
	}
	final := waitState(t, b.relay, j.ID, relaytype.StateCanceled)
	require.Equal(t, final.StateVersion, got.StateVersion)

	_, err = b.relay.Cancel(context.Background(), j.ID)
	require.ErrorIs(t, err, relaytype.ErrIllegalTransition)
	_, err = b.relay.Cancel(context.Background(), "job_missing")
	require.ErrorIs(t, err, relaytype.ErrJobNotFound)
}

func TestLapsedLeaseIsRetried(t *testing.T) {
	t.Parallel()
	b := setup(t, &funcHandler{HandleFunc: succeed}, func(c *relay.Config) {
		c.LeaseTTL = 2 * time.Second
		c.HeartbeatInterval = 500 * time.Millisecond
	})
	ctx := context.Background()
	// A worker of a relay that died: it claimed the job with a short lease
	// and never heartbeats.
	s := spec("lapse", "")
	s.ApplyDefaults()
	j, _, err := b.store.JobInsert(ctx, &store.JobInsertParams{ID: relay.NewJobID(), Spec: s, Executor: "test", Now: time.Now()})
	require.NoError(t, err)
	claimed, err := b.store.JobClaim(ctx, &store.JobClaimParams{Owner: "dead", Now: time.Now(), LeaseTTL: 50 * time.Millisecond, Limit: 1})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	b.start(t)
	final := waitState(t, b.relay, j.ID, relaytype.StateSucceeded)
	require.Equal(t, 2, final.Attempt)
	evs, err := b.relay.Events(ctx, j.ID, 0, 0)
	require.NoError(t, err)
	var states []relaytype.JobState
	for _, e := range evs {
		if e.Type == relaytype.EventTransition {
			var p relaytype.TransitionPayload
			require.NoError(t, jsonUnmarshal(e.Payload, &p))
			states = append(states, p.To)
		}
	}
	require.Equal(t, []relaytype.JobState{relaytype.StateRunning, relaytype.StateStale, relaytype.StateQueued,
		relaytype.StateRunning, relaytype.StateSucceeded}, states)
}

func TestQueuedJobExpires(t *testing.T) {
	t.Parallel()
	// Keep the only slot busy so the second job waits out its ttl.
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	b2 := setup(t, &funcHandler{HandleFunc: func(ctx context.Context, j *relaytype.Job) relay.Outcome {
		if j.IdempotencyKey == "busy" {
			select {
			case <-block:
			case <-ctx.Done():
				return relay.Outcome{}
			}
		}
		return succeed(ctx, j)
	}}, func(c *relay.Config) { c.MaxConcurrency = 1 })
	b2.start(t)
	busy, _, err := b2.relay.Submit(context.Background(), spec("busy", "P0"))
	require.NoError(t, err)
	waitState(t, b2.relay, busy.ID, relaytype.StateRunning)
	s := spec("short", "")
	s.Execution.TTLS = 1
	j, _, err := b2.relay.Submit(context.Background(), s)
	require.NoError(t, err)
	final := waitState(t, b2.relay, j.ID, relaytype.StateExpired)
	require.Equal(t, 0, final.Attempt)
}

func TestStopReleasesRunningJob(t *testing.T) {
	t.Parallel()
	running := make(chan struct{})
	b := setup(t, &funcHandler{HandleFunc: func(ctx context.Context, j *relaytype.Job) relay.Outcome {
		close(running)
		<-ctx.Done()
		return relay.Outcome{}
	}}, nil)
	require.NoError(t, b.relay.Start(context.Background()))
	j, _, err := b.relay.Submit(context.Background(), spec("stop", ""))
	require.NoError(t, err)
	<-running
	b.relay.Stop()
	b.relay.Stop() // safe twice
	got, err := b.relay.Get(context.Background(), j.ID)
	require.NoError(t, err)
	require.Equal(t, relaytype.StateStale, got.State)
}

func TestHandlerPanicFailsJob(t *testing.T) {
	t.Parallel()
	b := setup(t, &funcHandler{HandleFunc: func(context.Context, *relaytype.Job) relay.Outcome { panic("boom") }}, nil)
	b.start(t)
	j, _, err := b.relay.Submit(context.Background(), spec("panic", ""))
	require.NoError(t, err)
	final := waitState(t, b.relay, j.ID, relaytype.StateFailed)
	require.Equal(t, relaytype.ReasonInternalError, final.ReasonCode)
	require.Contains(t, final.Summary, "boom")
}

func TestSubmitErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, &funcHandler{
		AdmitFunc: func(context.Context, *relaytype.JobSpec) (string, string, error) {
			return "", "", relaytype.ErrNoExecutor
		},
		HandleFunc: succeed,
	}, nil)
	_, _, err := b.relay.Submit(context.Background(), spec("x", ""))
	require.ErrorIs(t, err, relaytype.ErrNoExecutor)
	bad := spec("", "")
	_, _, err = b.relay.Submit(context.Background(), bad)
	var se *relaytype.SpecError
	require.True(t, errors.As(err, &se))
	require.Equal(t, "idempotencyKey", se.Field)
	total := 0
	_, total, err = b.relay.List(context.Background(), "", 10, 0)
	require.NoError(t, err)
	require.Zero(t, total)
}

func TestNewJobIDIsValidAndOrdered(t *testing.T) {
	t.Parallel()
	a := relay.NewJobID()
	time.Sleep(2 * time.Millisecond)
	b := relay.NewJobID()
	require.True(t, relaytype.ValidJobID(a), a)
	require.Len(t, a, 30)
	require.Less(t, a, b)
}
