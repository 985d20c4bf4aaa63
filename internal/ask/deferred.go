package ask

import (
	"context"
	"errors"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// deferAsk records that the answerer of a pending ask returned
// ErrDeferred (why): the ask stays pending, now for the orchestrator, and
// gets the deadline an ask routed to the orchestrator has. An ask the
// runner deferred is routed to the orchestrator; an ask of a person stays
// theirs (they answer with asks_answer, POST /answers or the asks CLI).
// Unless the ask set its own constraints.timeout_s, its deadline becomes
// its creation plus the orchestrator's timeout (never earlier than it
// was), so that a provider failure does not time the ask out at the
// runner's short deadline. Route and deadline are stored in the ask's row,
// with an "ask_deferred" event, so that the deadline loop of any process
// and a restarted one see them.
func (s *Service) deferAsk(ctx context.Context, a *relaytype.AskRecord, why error) {
	route := Route(a.Route)
	if route == RouteRunner {
		route = RouteOrchestrator
	}
	deadline := a.DeadlineAt
	if a.Constraints == nil || a.Constraints.TimeoutS == 0 {
		timeout, err := s.orchestratorTimeout(ctx, a.JobID)
		if err != nil {
			s.log.Warn("deferred ask keeps its deadline: no rules for its job", "ask_id", a.AskID, "err", err)
		} else {
			deadline = a.CreatedAt.Add(timeout)
		}
	}
	rec, job, err := s.store.AskDefer(ctx, &store.AskDeferParams{
		AskID: a.AskID, Route: string(route), DeadlineAt: deadline, Reason: why.Error(), Now: s.cfg.Now(),
	})
	switch {
	case errors.Is(err, relaytype.ErrAnswerConflict):
		s.log.Info("deferred ask was answered meanwhile", "ask_id", a.AskID, "why", why)
		return
	case err != nil:
		s.log.Error("defer ask", "ask_id", a.AskID, "err", err, "why", why)
		return
	}
	s.log.Info("ask deferred", "ask_id", rec.AskID, "job_id", rec.JobID, "from", a.Route, "route", rec.Route,
		"deadline_at", rec.DeadlineAt.UTC().Format(time.RFC3339), "why", why)
	s.cfg.OnChange(job)
	select {
	case s.sweepWake <- struct{}{}:
	default:
	}
}

// orchestratorTimeout returns the deadline of an ask of job jobID that is
// routed to the orchestrator and sets no timeout of its own.
func (s *Service) orchestratorTimeout(ctx context.Context, jobID string) (time.Duration, error) {
	rules := s.rules
	if s.cfg.RulesFor != nil {
		var err error
		if rules, err = s.cfg.RulesFor(ctx, jobID); err != nil {
			return 0, err
		}
	}
	return rules.r.Timeout, nil
}
