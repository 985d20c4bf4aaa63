package ask_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/sqlite"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

type bundle struct {
	svc   *ask.Service
	store store.Store
	mu    sync.Mutex
	seen  []*relaytype.Job
}

func (b *bundle) changes() []*relaytype.Job {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*relaytype.Job(nil), b.seen...)
}

func setup(t *testing.T, mutate func(*ask.Config)) *bundle {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	b := &bundle{store: st}
	cfg := ask.Config{Store: st, Logger: slog.New(slog.DiscardHandler), OnChange: func(j *relaytype.Job) {
		b.mu.Lock()
		b.seen = append(b.seen, j)
		b.mu.Unlock()
	}}
	if mutate != nil {
		mutate(&cfg)
	}
	b.svc, err = ask.New(cfg)
	require.NoError(t, err)
	require.NoError(t, b.svc.Start(context.Background()))
	t.Cleanup(b.svc.Stop)
	return b
}

// runningJob inserts a job and claims it so that it is RUNNING.
func (b *bundle) runningJob(t *testing.T, id string) {
	t.Helper()
	spec := &relaytype.JobSpec{Repo: relaytype.Repo{Type: "local", Path: "/r"}, Task: relaytype.Task{Title: "t", Description: "d"}, IdempotencyKey: id}
	spec.ApplyDefaults()
	ctx := context.Background()
	_, _, err := b.store.JobInsert(ctx, &store.JobInsertParams{ID: id, Spec: spec, Executor: "x", Now: time.Now()})
	require.NoError(t, err)
	jobs, err := b.store.JobClaim(ctx, &store.JobClaimParams{Owner: "w", Now: time.Now(), LeaseTTL: time.Hour, Limit: 1})
	require.NoError(t, err)
	require.Len(t, jobs, 1)
}

func (b *bundle) state(t *testing.T, id string) *relaytype.Job {
	t.Helper()
	j, err := b.store.JobGet(context.Background(), &store.JobGetParams{ID: id})
	require.NoError(t, err)
	return j
}

func newAsk(t *testing.T, job string) *relaytype.Ask {
	t.Helper()
	env := relaytype.NewEnvelope("github.com/u/r", "abc", "prod", "2.0", "code_reviewer",
		map[string]any{"branch": "main"}, map[string]any{"database": map[string]any{"timeout_ms": 5000, "read_only": true}})
	raw, err := json.Marshal(env)
	require.NoError(t, err)
	h, err := env.Hash()
	require.NoError(t, err)
	return &relaytype.Ask{Type: "Ask", AskID: uuid.NewString(), JobID: job, StepID: "attempt-1",
		AskType: relaytype.AskClarification, Prompt: "Which greeting?", ContextHash: h, ContextEnvelope: raw}
}

func TestAskAnswerRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	b.runningJob(t, "job_rt")
	a := newAsk(t, "job_rt")
	rec, created, err := b.svc.Create(ctx, a)
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, "orchestrator", rec.Route)
	require.Equal(t, relaytype.StateWaitingOnAnswer, b.state(t, "job_rt").State)
	require.Equal(t, relaytype.StateWaitingOnAnswer, b.changes()[0].State)

	// A repeat of the same ask is no new ask; another payload is a conflict.
	again, created, err := b.svc.Create(ctx, a)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, rec.AskID, again.AskID)
	changed := *a
	changed.Prompt = "Something else?"
	_, _, err = b.svc.Create(ctx, &changed)
	require.ErrorIs(t, err, relaytype.ErrAskConflict)

	got, err := b.svc.Wait(ctx, a.AskID, 10*time.Millisecond)
	require.NoError(t, err)
	require.Nil(t, got, "no answer yet")

	parked := make(chan string, 1)
	ask.SetParkHook(b.svc, func(id string) {
		select {
		case parked <- id:
		default:
		}
	})
	woke := make(chan *relaytype.AnswerRecord)
	go func() {
		rec, err := b.svc.Wait(ctx, a.AskID, 30*time.Second)
		if err != nil {
			panic(err)
		}
		woke <- rec
	}()
	require.Equal(t, a.AskID, <-parked)
	t0 := time.Now()
	ans, created, err := b.svc.Answer(ctx, &relaytype.Answer{AskID: a.AskID, Status: relaytype.StatusAnswered, AnswerText: "Hello, relay!",
		Attestation: &relaytype.Attestation{AnsweredBy: "orchestrator"}})
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, "job_rt", ans.JobID, "job id filled from the ask")
	require.Equal(t, a.ContextHash, ans.Attestation.ContextHash, "attestation hash filled from the ask")
	select {
	case rec := <-woke:
		require.Equal(t, "Hello, relay!", rec.AnswerText)
		require.Less(t, time.Since(t0), time.Second, "woken by the answer, not by the safety recheck")
	case <-time.After(5 * time.Second):
		t.Fatal("waiter not woken")
	}
	require.Equal(t, relaytype.StateRunning, b.state(t, "job_rt").State)

	_, created, err = b.svc.Answer(ctx, &relaytype.Answer{AskID: a.AskID, Status: relaytype.StatusAnswered, AnswerText: "Hello, relay!",
		Attestation: &relaytype.Attestation{AnsweredBy: "orchestrator"}})
	require.NoError(t, err)
	require.False(t, created, "same answer twice is idempotent")
	_, _, err = b.svc.Answer(ctx, &relaytype.Answer{AskID: a.AskID, Status: relaytype.StatusRejected})
	require.ErrorIs(t, err, relaytype.ErrAnswerConflict)
}

func TestCreateValidation(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.runningJob(t, "job_val")
	ctx := context.Background()
	for _, tc := range []struct {
		field  string
		mutate func(*relaytype.Ask)
	}{
		{"type", func(a *relaytype.Ask) { a.Type = "Question" }},
		{"ask_id", func(a *relaytype.Ask) { a.AskID = "1" }},
		{"job_id", func(a *relaytype.Ask) { a.JobID = "" }},
		{"step_id", func(a *relaytype.Ask) { a.StepID = " " }},
		{"ask_type", func(a *relaytype.Ask) { a.AskType = "GUESS" }},
		{"prompt", func(a *relaytype.Ask) { a.Prompt = "" }},
		{"constraints.timeout_s", func(a *relaytype.Ask) { a.Constraints = &relaytype.AskConstraints{TimeoutS: -1} }},
		{"context_hash", func(a *relaytype.Ask) { a.ContextHash = "ABC" }},
		{"context_envelope", func(a *relaytype.Ask) { a.ContextEnvelope = json.RawMessage(`[1]`) }},
		{"context_envelope.job_snapshot", func(a *relaytype.Ask) { a.ContextEnvelope = json.RawMessage(`{"role":"x"}`) }},
		{"context_envelope.facts.10", func(a *relaytype.Ask) {
			a.ContextEnvelope = json.RawMessage(`{"job_snapshot":{},"role":"x","facts":{"10":"ten"}}`)
		}},
	} {
		a := newAsk(t, "job_val")
		tc.mutate(a)
		_, _, err := b.svc.Create(ctx, a)
		var re *relaytype.RequestError
		require.True(t, errors.As(err, &re), "%s: %v", tc.field, err)
		require.Equal(t, tc.field, re.Field)
	}

	a := newAsk(t, "job_val")
	a.ContextEnvelope = json.RawMessage(`{"job_snapshot":{"repo":"github.com/u/other"},"role":"code_reviewer"}`)
	_, _, err := b.svc.Create(ctx, a)
	require.ErrorIs(t, err, relaytype.ErrContextMismatch)
	require.Equal(t, relaytype.CodeContextMismatch, relaytype.CodeOf(err))

	a = newAsk(t, "job_val")
	a.ContextEnvelope = nil
	_, _, err = b.svc.Create(ctx, a)
	require.ErrorIs(t, err, relaytype.ErrNoContextEnvelope)

	_, _, err = b.svc.Create(ctx, newAsk(t, "job_missing"))
	require.ErrorIs(t, err, relaytype.ErrJobNotFound)
	require.Equal(t, relaytype.StateRunning, b.state(t, "job_val").State, "refused asks change nothing")
}

func TestUnansweredAskTimesOut(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.runningJob(t, "job_to")
	a := newAsk(t, "job_to")
	a.Constraints = &relaytype.AskConstraints{TimeoutS: 1}
	_, _, err := b.svc.Create(context.Background(), a)
	require.NoError(t, err)
	rec, err := b.svc.Wait(context.Background(), a.AskID, 10*time.Second)
	require.NoError(t, err)
	require.NotNil(t, rec)
	require.Equal(t, relaytype.StatusTimeout, rec.Status)
	require.Contains(t, rec.Error, "no answer within 1s")
	j := b.state(t, "job_to")
	require.Equal(t, relaytype.StateFailed, j.State)
	require.Equal(t, relaytype.ReasonTimeout, j.ReasonCode)
}

type answererFunc func(ctx context.Context, a *relaytype.AskRecord) (*relaytype.Answer, error)

func (f answererFunc) Answer(ctx context.Context, a *relaytype.AskRecord) (*relaytype.Answer, error) {
	return f(ctx, a)
}

func TestRoutedAnswererAnswers(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *ask.Config) {
		c.Routing = ask.Routing{ByType: map[relaytype.AskType]ask.Route{relaytype.AskClarification: ask.RouteRunner}}
		c.Answerers = map[ask.Route]ask.Answerer{ask.RouteRunner: answererFunc(func(_ context.Context, a *relaytype.AskRecord) (*relaytype.Answer, error) {
			return &relaytype.Answer{AskID: a.AskID, Status: relaytype.StatusAnswered, AnswerText: "from the runner: " + a.Prompt}, nil
		})}
	})
	b.runningJob(t, "job_runner")
	a := newAsk(t, "job_runner")
	rec, _, err := b.svc.Create(context.Background(), a)
	require.NoError(t, err)
	require.Equal(t, "runner", rec.Route)
	ans, err := b.svc.Wait(context.Background(), a.AskID, 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, "from the runner: Which greeting?", ans.AnswerText)
}

func TestRouter(t *testing.T) {
	t.Parallel()
	r, err := ask.NewRouter(ask.Routing{
		ByType: map[relaytype.AskType]ask.Route{relaytype.AskApproval: ask.RouteHuman, relaytype.AskChoice: ask.RouteRunner},
		ByRole: map[string]ask.Route{"diff_planner": ask.RouteRunner},
	}, map[ask.Route]bool{ask.RouteHuman: true})
	require.NoError(t, err)
	for _, tc := range []struct {
		typ      relaytype.AskType
		role     string
		want     ask.Route
		fellBack bool
	}{
		{relaytype.AskClarification, "", ask.RouteOrchestrator, false},
		{relaytype.AskApproval, "", ask.RouteHuman, false},
		{relaytype.AskApproval, "diff_planner", ask.RouteOrchestrator, true}, // role wins, runner unavailable
		{relaytype.AskChoice, "", ask.RouteOrchestrator, true},
	} {
		got, fb := r.Route(tc.typ, tc.role)
		require.Equal(t, tc.want, got, "%s/%s", tc.typ, tc.role)
		require.Equal(t, tc.fellBack, fb, "%s/%s", tc.typ, tc.role)
	}
	_, err = ask.NewRouter(ask.Routing{Default: "robot"}, nil)
	require.ErrorContains(t, err, "askAnswer.routing.default")
	_, err = ask.NewRouter(ask.Routing{ByType: map[relaytype.AskType]ask.Route{"GUESS": ask.RouteHuman}}, nil)
	require.ErrorContains(t, err, "GUESS")
}

func TestTokens(t *testing.T) {
	t.Parallel()
	tok, err := ask.NewTokens("operator-secret-0123456789")
	require.NoError(t, err)
	job, op, err := tok.Check("operator-secret-0123456789")
	require.NoError(t, err)
	require.True(t, op)
	require.Empty(t, job)

	jt := tok.Mint("job_A")
	job, op, err = tok.Check(jt)
	require.NoError(t, err)
	require.False(t, op)
	require.Equal(t, "job_A", job)

	other, err := ask.NewTokens("another-operator-secret-xyz")
	require.NoError(t, err)
	for _, bad := range []string{other.Mint("job_A"), jt + "x", "trj.job_B." + jt[len("trj.job_A."):], "Bearer", "trj..x"} {
		_, _, err := tok.Check(bad)
		require.ErrorIs(t, err, ask.ErrBadToken, bad)
	}
	_, _, err = tok.Check("")
	require.ErrorIs(t, err, ask.ErrNoToken)
	_, err = ask.NewTokens("short")
	require.Error(t, err)
}

func TestLoadOperatorToken(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	noEnv := func(string) (string, bool) { return "", false }
	first, err := ask.LoadOperatorToken(dir, noEnv)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(first), 32)
	fi, err := os.Stat(filepath.Join(dir, ask.OperatorTokenFile))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	again, err := ask.LoadOperatorToken(dir, noEnv)
	require.NoError(t, err)
	require.Equal(t, first, again, "stored token is reused")
	env, err := ask.LoadOperatorToken(dir, func(k string) (string, bool) {
		return "from-the-environment-123", k == "TASK_RELAY_API_TOKEN"
	})
	require.NoError(t, err)
	require.Equal(t, "from-the-environment-123", env)
	_, err = ask.LoadOperatorToken(dir, func(string) (string, bool) { return "short", true })
	require.ErrorContains(t, err, "TASK_RELAY_API_TOKEN")
}

// A job that ends closes its pending asks in the store; WakeAll makes
// their waiters see that at once.
func TestWakeAllAfterJobEnds(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	b.runningJob(t, "job_end")
	a := newAsk(t, "job_end")
	_, _, err := b.svc.Create(ctx, a)
	require.NoError(t, err)
	parked := make(chan string, 1)
	ask.SetParkHook(b.svc, func(id string) {
		select {
		case parked <- id:
		default:
		}
	})
	got := make(chan *relaytype.AnswerRecord)
	go func() {
		rec, _ := b.svc.Wait(ctx, a.AskID, 30*time.Second)
		got <- rec
	}()
	require.Equal(t, a.AskID, <-parked)
	_, err = b.store.JobTransition(ctx, &store.JobTransitionParams{ID: "job_end", To: relaytype.StateCanceled, Now: time.Now()})
	require.NoError(t, err)
	t0 := time.Now()
	b.svc.WakeAll()
	select {
	case rec := <-got:
		require.Equal(t, relaytype.StatusError, rec.Status)
		require.Less(t, time.Since(t0), time.Second)
	case <-time.After(10 * time.Second):
		t.Fatal("waiter not woken")
	}
}

// TestStopCancelsAnswerersAndKeepsAsksPending: Stop cancels a human
// answerer still waiting for a person, returns without waiting out the
// ask's deadline, and leaves the ask pending in the store, its job still
// waiting on the answer.
func TestStopCancelsAnswerersAndKeepsAsksPending(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	returned := make(chan error, 1)
	st, err := sqlite.Open(context.Background(), sqlite.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	svc, err := ask.New(ask.Config{
		Store: st, Logger: slog.New(slog.DiscardHandler),
		Routing: ask.Routing{Default: ask.RouteHuman},
		Answerers: map[ask.Route]ask.Answerer{ask.RouteHuman: answererFunc(func(ctx context.Context, _ *relaytype.AskRecord) (*relaytype.Answer, error) {
			close(started)
			<-ctx.Done() // nobody answers
			returned <- ctx.Err()
			return nil, ctx.Err()
		})},
	})
	require.NoError(t, err)
	require.NoError(t, svc.Start(t.Context()))
	b := &bundle{svc: svc, store: st}
	b.runningJob(t, "job_stop")
	a := newAsk(t, "job_stop")
	a.Constraints = &relaytype.AskConstraints{TimeoutS: 3600}
	rec, _, err := svc.Create(t.Context(), a)
	require.NoError(t, err)
	require.Equal(t, "human", rec.Route)
	<-started

	stopped := make(chan struct{})
	go func() {
		svc.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return with a human ask pending")
	}
	// The answerer was canceled and has returned: nothing is left running.
	select {
	case err := <-returned:
		require.ErrorIs(t, err, context.Canceled)
	default:
		t.Fatal("Stop returned before the answerer did")
	}
	got, err := svc.Get(t.Context(), a.AskID)
	require.NoError(t, err)
	require.Equal(t, relaytype.StatusPending, got.Status, "shutdown does not answer the ask")
	ans, err := svc.AnswerOf(t.Context(), a.AskID)
	require.NoError(t, err)
	require.Nil(t, ans)
	require.Equal(t, relaytype.StateWaitingOnAnswer, b.state(t, "job_stop").State)
	svc.Stop() // twice is fine
}

// TestStopGraceBoundsStuckAnswerers: an answerer that ignores its
// context does not hold Stop past the stop grace, and its ask stays
// pending.
func TestStopGraceBoundsStuckAnswerers(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	b := setup(t, func(c *ask.Config) {
		c.Routing = ask.Routing{Default: ask.RouteHuman}
		c.StopGrace = 50 * time.Millisecond
		c.Answerers = map[ask.Route]ask.Answerer{ask.RouteHuman: answererFunc(func(context.Context, *relaytype.AskRecord) (*relaytype.Answer, error) {
			close(started)
			<-release
			return nil, errors.New("released")
		})}
	})
	b.runningJob(t, "job_stuck")
	a := newAsk(t, "job_stuck")
	_, _, err := b.svc.Create(t.Context(), a)
	require.NoError(t, err)
	<-started
	stopped := make(chan struct{})
	go func() {
		b.svc.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop waited past its grace for a stuck answerer")
	}
	got, err := b.svc.Get(t.Context(), a.AskID)
	require.NoError(t, err)
	require.Equal(t, relaytype.StatusPending, got.Status)
}
