package ask_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/ask"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// deferringRunner is a runner whose provider always fails: it defers
// every ask to the orchestrator, and reports each on deferred.
func deferringRunner(deferred chan<- string) ask.Answerer {
	return answererFunc(func(_ context.Context, a *relaytype.AskRecord) (*relaytype.Answer, error) {
		defer func() { deferred <- a.AskID }()
		return nil, fmt.Errorf("%w: anthropic: 500 Internal Server Error", ask.ErrDeferred)
	})
}

// waitDeferred waits until the ask's row shows the deferral.
func (b *bundle) waitDeferred(t *testing.T, askID string) *relaytype.AskRecord {
	t.Helper()
	var rec *relaytype.AskRecord
	require.Eventually(t, func() bool {
		var err error
		rec, err = b.svc.Get(context.Background(), askID)
		require.NoError(t, err)
		return rec.Route == string(ask.RouteOrchestrator)
	}, 10*time.Second, 5*time.Millisecond)
	return rec
}

func TestRunnerDeferralGetsOrchestratorDeadline(t *testing.T) {
	t.Parallel()
	deferred := make(chan string, 4)
	// The relay's clock stands still until the test moves it: the runner's
	// deadline cannot pass before its deferral lands, however slow the
	// machine.
	clk := &clock{now: time.Now().Truncate(time.Millisecond)}
	b := setup(t, func(c *ask.Config) {
		c.Routing = ask.Routing{Default: ask.RouteRunner}
		c.Answerers = map[ask.Route]ask.Answerer{ask.RouteRunner: deferringRunner(deferred)}
		c.Timeout = 10 * time.Minute
		c.RunnerTimeout = 200 * time.Millisecond
		c.Now = clk.Now
	})
	ctx := context.Background()
	b.runningJob(t, "job_defer")
	a := newAsk(t, "job_defer")
	created, _, err := b.svc.Create(ctx, a)
	require.NoError(t, err)
	require.Equal(t, "runner", created.Route)
	require.WithinDuration(t, created.CreatedAt.Add(200*time.Millisecond), created.DeadlineAt, time.Millisecond)
	require.Equal(t, a.AskID, <-deferred)

	rec := b.waitDeferred(t, a.AskID)
	require.Equal(t, relaytype.StatusPending, rec.Status)
	require.WithinDuration(t, rec.CreatedAt.Add(10*time.Minute), rec.DeadlineAt, time.Millisecond,
		"the deferred ask has the orchestrator's deadline")

	// Well past the runner's deadline the ask is still pending and the
	// job still waits: nothing times it out.
	clk.Set(clk.Now().Add(400 * time.Millisecond))
	_, err = ask.Expire(ctx, b.svc)
	require.NoError(t, err)
	got, err := b.svc.AnswerOf(ctx, a.AskID)
	require.NoError(t, err)
	require.Nil(t, got, "no TIMEOUT at the runner's deadline")
	require.Equal(t, relaytype.StateWaitingOnAnswer, b.state(t, "job_defer").State)

	// The deferral is in the job's audit log.
	evs, err := b.store.EventList(ctx, &store.EventListParams{JobID: "job_defer"})
	require.NoError(t, err)
	var payload struct {
		AskID, From, Route, Reason string
		DeadlineAt                 time.Time
	}
	found := false
	for _, ev := range evs {
		if ev.Type == relaytype.EventAskDeferred {
			found = true
			require.NoError(t, json.Unmarshal(ev.Payload, &payload))
		}
	}
	require.True(t, found, "ask_deferred event")
	require.Equal(t, a.AskID, payload.AskID)
	require.Equal(t, "runner", payload.From)
	require.Equal(t, "orchestrator", payload.Route)
	require.Contains(t, payload.Reason, "500 Internal Server Error")
	require.WithinDuration(t, rec.DeadlineAt, payload.DeadlineAt, time.Millisecond)

	// The orchestrator answers and the job goes on.
	_, _, err = b.svc.Answer(ctx, &relaytype.Answer{AskID: a.AskID, Status: relaytype.StatusAnswered, AnswerText: "Hello",
		Attestation: &relaytype.Attestation{AnsweredBy: relaytype.AnsweredByOrchestrator}})
	require.NoError(t, err)
	require.Equal(t, relaytype.StateRunning, b.state(t, "job_defer").State)
}

func TestRunnerDeferralKeepsAsksOwnTimeout(t *testing.T) {
	t.Parallel()
	deferred := make(chan string, 4)
	b := setup(t, func(c *ask.Config) {
		c.Routing = ask.Routing{Default: ask.RouteRunner}
		c.Answerers = map[ask.Route]ask.Answerer{ask.RouteRunner: deferringRunner(deferred)}
		c.Timeout = 10 * time.Minute
	})
	b.runningJob(t, "job_defer_own")
	a := newAsk(t, "job_defer_own")
	a.Constraints = &relaytype.AskConstraints{TimeoutS: 30}
	created, _, err := b.svc.Create(context.Background(), a)
	require.NoError(t, err)
	<-deferred
	rec := b.waitDeferred(t, a.AskID)
	require.Equal(t, created.DeadlineAt, rec.DeadlineAt, "an ask's own timeout_s is its deadline whoever answers")
}

func TestAnsweredAskIsNotDeferred(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	b.runningJob(t, "job_defer_late")
	a := newAsk(t, "job_defer_late")
	_, _, err := b.svc.Create(ctx, a)
	require.NoError(t, err)
	_, _, err = b.svc.Answer(ctx, &relaytype.Answer{AskID: a.AskID, Status: relaytype.StatusAnswered, AnswerText: "Hi"})
	require.NoError(t, err)
	_, _, err = b.store.AskDefer(ctx, &store.AskDeferParams{AskID: a.AskID, Route: "orchestrator",
		DeadlineAt: time.Now().Add(time.Hour), Reason: "late", Now: time.Now()})
	require.ErrorIs(t, err, relaytype.ErrAnswerConflict)
}

// A runner's deadline under a second is said in milliseconds, not
// rounded to "0s".
func TestRunnerTimeoutUnderASecondNamesItsDeadline(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Now().Truncate(time.Millisecond)}
	started, release := make(chan struct{}), make(chan struct{})
	b := setup(t, func(c *ask.Config) {
		c.Routing = ask.Routing{Default: ask.RouteRunner}
		c.Answerers = map[ask.Route]ask.Answerer{ask.RouteRunner: answererFunc(func(context.Context, *relaytype.AskRecord) (*relaytype.Answer, error) {
			close(started)
			<-release // answers nothing until the test is over
			return nil, errors.New("too late")
		})}
		c.RunnerTimeout = 150 * time.Millisecond
		c.Now = clk.Now
	})
	ctx := context.Background()
	t.Cleanup(func() { close(release) })
	b.runningJob(t, "job_short")
	a := newAsk(t, "job_short")
	_, _, err := b.svc.Create(ctx, a)
	require.NoError(t, err)
	<-started
	clk.Set(clk.Now().Add(time.Second))
	_, err = ask.Expire(ctx, b.svc)
	require.NoError(t, err)
	got, err := b.svc.AnswerOf(ctx, a.AskID)
	require.NoError(t, err)
	require.NotNil(t, got)
	require.Equal(t, relaytype.StatusTimeout, got.Status)
	require.Equal(t, "no answer within 150ms", got.Error)
}
