package relay

import (
	"context"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// listenLoop turns the changes other relays sharing the store commit
// into this relay's signals: a queued job wakes the dispatcher, every
// change is published to this relay's subscribers (SSE streams,
// jobs_wait, resource subscriptions), a job this relay runs that another
// relay canceled, ended or took over stops its executor, and
// Config.OnRemote hears everything (ask waiters, the webhook worker).
func (r *Relay) listenLoop(ctx context.Context, ch <-chan store.Notification) {
	for {
		select {
		case <-ctx.Done():
			return
		case n, ok := <-ch:
			if !ok {
				return
			}
			r.onRemote(ctx, n)
		}
	}
}

func (r *Relay) onRemote(ctx context.Context, n store.Notification) {
	switch n.Kind {
	case store.NotifyJob:
		r.publish(Change{JobID: n.JobID, State: n.State, StateVersion: n.StateVersion, Remote: true})
		switch n.State {
		case relaytype.StateQueued, relaytype.StateStale:
			signal(r.wake)
		}
		// A new lease or queue ttl may be the next thing to sweep.
		signal(r.sweepWake)
		r.checkLocalRun(ctx, n)
	case store.NotifyAsk:
		r.publish(Change{JobID: n.JobID, Asks: true, Remote: true})
	case store.NotifyEvent:
		r.publish(Change{JobID: n.JobID, Log: true, Remote: true})
	case store.NotifyResync:
		signal(r.wake)
		signal(r.sweepWake)
		r.checkAllLocalRuns(ctx)
	}
	if r.cfg.OnRemote != nil {
		r.cfg.OnRemote(n)
	}
}

// checkLocalRun stops this relay's run of a job that another relay
// canceled, ended or took over (its lease lapsed and it was requeued).
// Only a notification newer than the run's claim can mean that, and the
// job is read back before anything is stopped.
func (r *Relay) checkLocalRun(ctx context.Context, n store.Notification) {
	r.mu.Lock()
	w := r.running[n.JobID]
	r.mu.Unlock()
	if w == nil || n.StateVersion <= w.job.StateVersion {
		return
	}
	// An answer given elsewhere (WAITING_ON_ANSWER → RUNNING) leaves the
	// run ours; verifyLease tells it from a claim by another relay.
	r.verifyLease(ctx, w)
}

func (r *Relay) checkAllLocalRuns(ctx context.Context) {
	r.mu.Lock()
	ws := make([]*worker, 0, len(r.running))
	for _, w := range r.running {
		ws = append(ws, w)
	}
	r.mu.Unlock()
	for _, w := range ws {
		r.verifyLease(ctx, w)
	}
}

// verifyLease reads a job this relay runs and stops the run when the job
// is no longer this run's: canceled, ended, or another attempt.
func (r *Relay) verifyLease(ctx context.Context, w *worker) {
	j, err := r.Get(ctx, w.job.ID)
	if err != nil {
		return
	}
	switch {
	case j.State == relaytype.StateCanceled:
		w.cancel(errCanceled)
	case j.State.Terminal():
		w.cancel(errEnded)
	case j.Attempt != w.job.Attempt || j.LeaseOwner != r.cfg.InstanceID || !j.State.Active():
		r.log.Warn("job taken over by another relay; stopping this run", "job_id", j.ID,
			"attempt", w.job.Attempt, "job_attempt", j.Attempt, "owner", j.LeaseOwner)
		w.cancel(errLeaseLost)
	}
}
