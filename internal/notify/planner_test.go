package notify_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-task-relay/mcp-task-relay/internal/notify"
	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// plannerStore is the part of a store the Planner uses: pending asks set
// by the test, and the messages it enqueues.
type plannerStore struct {
	store.Store
	mu       sync.Mutex
	asks     []*relaytype.AskRecord
	enqueued []*store.OutboxMessage
}

func (s *plannerStore) JobList(context.Context, *store.JobListParams) ([]*relaytype.Job, int, error) {
	return nil, 0, nil
}

func (s *plannerStore) AskList(context.Context, *store.AskListParams) ([]*relaytype.AskRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*relaytype.AskRecord(nil), s.asks...), nil
}

func (s *plannerStore) OutboxEnqueue(_ context.Context, p *store.OutboxEnqueueParams) (*store.OutboxMessage, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.enqueued {
		if m.ID == p.Message.ID {
			return m, false, nil
		}
	}
	s.enqueued = append(s.enqueued, p.Message)
	return p.Message, true, nil
}

func (s *plannerStore) kinds() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, m := range s.enqueued {
		out = append(out, m.Kind)
	}
	return out
}

// plannerJobs is one job and a stream of changes the test sends.
type plannerJobs struct {
	job     *relaytype.Job
	changes chan relay.Change
}

func (j *plannerJobs) Subscribe() (<-chan relay.Change, func()) { return j.changes, func() {} }

func (j *plannerJobs) Get(context.Context, string) (*relaytype.Job, error) { return j.job, nil }

// TestPlannerAskCreatedIsNotifiedOnceDue: an ask created while the
// planner runs is notified once its project's AskWaiting has passed,
// without waiting for the next scan of pending asks.
func TestPlannerAskCreatedIsNotifiedOnceDue(t *testing.T) {
	t.Parallel()
	st := &plannerStore{}
	job := &relaytype.Job{ID: "job_1", Project: "/p", State: relaytype.StateWaitingOnAnswer,
		Spec: relaytype.JobSpec{Task: relaytype.Task{Title: "t", Description: "d"}}}
	jobs := &plannerJobs{job: job, changes: make(chan relay.Change, 1)}
	p, err := notify.NewPlanner(notify.PlannerConfig{
		Store: st, Jobs: jobs, Logger: slog.New(slog.DiscardHandler),
		Targets: func(context.Context, string) (notify.Targets, error) {
			return notify.Targets{NtfyURL: "http://ntfy.invalid/topic", AskWaiting: 50 * time.Millisecond}, nil
		},
		ScanInterval: time.Hour, // the test would time out waiting for a scan
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	st.mu.Lock()
	st.asks = []*relaytype.AskRecord{{AskID: "ask_1", JobID: job.ID, AskType: relaytype.AskClarification, Prompt: "Which?",
		Status: relaytype.StatusPending, Route: "human", CreatedAt: time.Now()}}
	st.mu.Unlock()
	jobs.changes <- relay.Change{JobID: job.ID, State: relaytype.StateWaitingOnAnswer, StateVersion: 2, Asks: true}
	require.Eventually(t, func() bool { return len(st.kinds()) > 0 }, 30*time.Second, 5*time.Millisecond,
		"the ask was never notified")
	require.Equal(t, []string{notify.KindNtfy}, st.kinds())
}
