package metrics

import (
	"context"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Store returns s with the latency of its busiest operations (claims,
// transitions, heartbeats, events, asks, answers, the outbox) recorded in
// store_operation_duration_seconds. Every other method passes through.
func (m *Metrics) Store(s store.Store) store.Store {
	return &timedStore{Store: s, m: m}
}

// timedStore times the store operations that run on every job's path.
type timedStore struct {
	store.Store
	m *Metrics
}

// Unwrap implements store.Wrapper: the optional interfaces of the timed
// store (notifications, artifact contents, the relay registry) stay
// reachable through store.As.
func (t *timedStore) Unwrap() store.Store { return t.Store }

func (t *timedStore) observe(op string, start time.Time) {
	t.m.storeLatency.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func (t *timedStore) JobInsert(ctx context.Context, p *store.JobInsertParams) (*relaytype.Job, bool, error) {
	defer t.observe("job_insert", time.Now())
	return t.Store.JobInsert(ctx, p)
}

func (t *timedStore) JobGet(ctx context.Context, p *store.JobGetParams) (*relaytype.Job, error) {
	defer t.observe("job_get", time.Now())
	return t.Store.JobGet(ctx, p)
}

func (t *timedStore) JobList(ctx context.Context, p *store.JobListParams) ([]*relaytype.Job, int, error) {
	defer t.observe("job_list", time.Now())
	return t.Store.JobList(ctx, p)
}

func (t *timedStore) JobClaim(ctx context.Context, p *store.JobClaimParams) ([]*relaytype.Job, error) {
	defer t.observe("job_claim", time.Now())
	return t.Store.JobClaim(ctx, p)
}

func (t *timedStore) JobHeartbeat(ctx context.Context, p *store.JobHeartbeatParams) (*relaytype.Job, error) {
	defer t.observe("job_heartbeat", time.Now())
	return t.Store.JobHeartbeat(ctx, p)
}

func (t *timedStore) JobTransition(ctx context.Context, p *store.JobTransitionParams) (*relaytype.Job, error) {
	defer t.observe("job_transition", time.Now())
	return t.Store.JobTransition(ctx, p)
}

func (t *timedStore) EventAppend(ctx context.Context, p *store.EventAppendParams) (*relaytype.Event, error) {
	defer t.observe("event_append", time.Now())
	return t.Store.EventAppend(ctx, p)
}

func (t *timedStore) EventList(ctx context.Context, p *store.EventListParams) ([]*relaytype.Event, error) {
	defer t.observe("event_list", time.Now())
	return t.Store.EventList(ctx, p)
}

func (t *timedStore) AskInsert(ctx context.Context, p *store.AskInsertParams) (*relaytype.AskRecord, bool, *relaytype.Job, error) {
	defer t.observe("ask_insert", time.Now())
	return t.Store.AskInsert(ctx, p)
}

func (t *timedStore) AnswerInsert(ctx context.Context, p *store.AnswerInsertParams) (*relaytype.AnswerRecord, bool, *relaytype.Job, error) {
	defer t.observe("answer_insert", time.Now())
	return t.Store.AnswerInsert(ctx, p)
}

func (t *timedStore) OutboxClaim(ctx context.Context, p *store.OutboxClaimParams) ([]*store.OutboxMessage, error) {
	defer t.observe("outbox_claim", time.Now())
	return t.Store.OutboxClaim(ctx, p)
}
