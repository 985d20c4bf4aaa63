package relay

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Causes with which a worker's context is canceled.
var (
	errCanceled  = errors.New("job canceled")
	errLeaseLost = errors.New("lease lost")
	errEnded     = errors.New("job ended by an answer")
)

type worker struct {
	job    *relaytype.Job
	cancel context.CancelCauseFunc
	done   chan struct{}
	// progress is the run's phase and output tail, for Progress.
	progress *tracker
}

// dispatchLoop claims jobs whenever a worker slot is free and something
// may be claimable: a local submit or a freed slot wakes it at once, and a
// slow safety-net poll covers jobs queued by other processes.
func (r *Relay) dispatchLoop(ctx context.Context) {
	poll := time.NewTimer(r.cfg.PollInterval)
	defer poll.Stop()
	backoff := 10 * time.Millisecond
	// backlog is set while claims fill every free slot: jobs wait, so a
	// slot that frees waits a moment for others to free too, and one claim
	// transaction starts several jobs.
	backlog := false
	for {
		free := r.cfg.MaxConcurrency - r.runningCount()
		if free > 0 && !r.draining.Load() {
			projects, executors := claimFilter(r.cfg.Projects), claimFilter(r.cfg.Executors)
			jobs, err := r.store.JobClaim(ctx, &store.JobClaimParams{
				Projects: projects, Executors: executors, Host: r.cfg.Host, Owner: r.cfg.InstanceID, Now: r.cfg.Now(), LeaseTTL: r.cfg.LeaseTTL, Limit: free,
			})
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				r.log.Error("claim jobs", "err", err, "retry_in", backoff)
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(backoff*2, 5*time.Second)
				continue
			}
			backoff = 10 * time.Millisecond
			for _, j := range jobs {
				r.startWorker(ctx, j)
			}
			backlog = len(jobs) == free
			if backlog && r.runningCount() < r.cfg.MaxConcurrency {
				continue // there may be more
			}
		}
		if !poll.Stop() {
			select {
			case <-poll.C:
			default:
			}
		}
		poll.Reset(r.cfg.PollInterval)
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-r.slotFreed:
			if backlog {
				r.gatherFreeSlots(ctx)
			}
		case <-poll.C:
		}
	}
}

// claimGather bounds how long a freed slot waits for others (backlog only).
const claimGather = time.Millisecond

// gatherFreeSlots waits until half the slots are free or claimGather has
// passed, whichever comes first.
func (r *Relay) gatherFreeSlots(ctx context.Context) {
	t := time.NewTimer(claimGather)
	defer t.Stop()
	for 2*(r.cfg.MaxConcurrency-r.runningCount()) < r.cfg.MaxConcurrency {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			return
		case <-r.slotFreed:
		}
	}
}

// claimFilter returns the list a Config function gives for a claim: nil
// (no filter) without the function, else never nil (empty: claim none).
func claimFilter(f func() []string) []string {
	if f == nil {
		return nil
	}
	if l := f(); l != nil {
		return l
	}
	return []string{}
}

func (r *Relay) runningCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.running)
}

func (r *Relay) startWorker(parent context.Context, job *relaytype.Job) {
	ctx, cancel := context.WithCancelCause(parent)
	w := &worker{job: job, cancel: cancel, done: make(chan struct{}), progress: r.newTracker(job)}
	ctx = withTracker(ctx, w.progress)
	r.mu.Lock()
	r.running[job.ID] = w
	r.mu.Unlock()
	r.publishJob(job)
	r.log.Info("job started", "job_id", job.ID, "attempt", job.Attempt, "owner", r.cfg.InstanceID)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() {
			r.mu.Lock()
			delete(r.running, job.ID)
			r.mu.Unlock()
			close(w.done)
			signal(r.slotFreed)
		}()
		r.work(ctx, w)
	}()
}

func (r *Relay) work(ctx context.Context, w *worker) {
	job := w.job
	hbDone := make(chan struct{})
	hbStopped := make(chan struct{})
	go func() {
		defer close(hbStopped)
		r.heartbeat(ctx, w, hbDone)
	}()
	out := r.safeHandle(ctx, job)
	close(hbDone)
	<-hbStopped

	// Finishing steps must not be cut short by the cancellation that
	// may have ended the run.
	fctx := context.WithoutCancel(ctx)
	// A handler that returns no state was interrupted; one that returned
	// a state finished its attempt even if the stop came right after.
	if cause := context.Cause(ctx); ctx.Err() != nil {
		switch {
		case errors.Is(cause, errCanceled):
			r.log.Info("job run stopped after cancel", "job_id", job.ID)
			return
		case errors.Is(cause, errLeaseLost):
			r.log.Warn("job run stopped: lease lost", "job_id", job.ID)
			return
		case errors.Is(cause, errEnded):
			r.log.Info("job run stopped: the job ended while it waited for an answer", "job_id", job.ID)
			return
		case out.State == "":
			r.release(fctx, job)
			return
		}
	}
	if out.State != relaytype.StateSucceeded && out.State != relaytype.StateFailed {
		out = Outcome{State: relaytype.StateFailed, Reason: relaytype.ReasonInternalError,
			Summary: fmt.Sprintf("handler returned state %q", out.State), Artifacts: out.Artifacts}
	}
	finish := &store.JobTransitionParams{
		ID: job.ID, To: out.State, Owner: r.cfg.InstanceID, Attempt: job.Attempt, Now: r.cfg.Now(),
		Reason: out.Reason, Summary: out.Summary, Artifacts: out.Artifacts,
		Usage: out.Usage, SessionID: out.SessionID, Contents: r.artifactContents(job.ID, out.Artifacts),
	}
	final, err := r.store.JobTransition(fctx, finish)
	var te *relaytype.TransitionError
	if errors.As(err, &te) && te.From == relaytype.StateWaitingOnAnswer {
		// The executor finished without waiting for its answer: the job
		// is running again first (its pending asks close as it ends).
		if _, err = r.store.JobTransition(fctx, &store.JobTransitionParams{
			ID: job.ID, To: relaytype.StateRunning, Owner: r.cfg.InstanceID, Attempt: job.Attempt, Now: r.cfg.Now(),
			Summary: "executor finished with asks pending",
		}); err == nil {
			finish.Now = r.cfg.Now()
			final, err = r.store.JobTransition(fctx, finish)
		}
	}
	if err != nil {
		// Canceled or taken over meanwhile: the other party's state stands.
		r.log.Warn("record job outcome", "job_id", job.ID, "state", out.State, "err", err)
		return
	}
	r.log.Info("job finished", "job_id", job.ID, "state", final.State, "reason", final.ReasonCode, "summary", final.Summary)
	for _, a := range out.Artifacts {
		r.publish(Change{JobID: job.ID, Artifact: a.Kind})
	}
	r.publishJob(final)
}

// safeHandle turns a panicking handler into a failed job.
func (r *Relay) safeHandle(ctx context.Context, job *relaytype.Job) (out Outcome) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("handler panic", "job_id", job.ID, "panic", p, "stack", string(debug.Stack()))
			out = Outcome{State: relaytype.StateFailed, Reason: relaytype.ReasonInternalError,
				Summary: fmt.Sprintf("internal error: %v", p)}
		}
	}()
	return r.cfg.Handler.Handle(ctx, job)
}

// heartbeat renews the lease until done closes; a lost lease cancels the
// run so that two workers never act on one job.
func (r *Relay) heartbeat(ctx context.Context, w *worker, done <-chan struct{}) {
	t := time.NewTicker(r.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, err := r.store.JobHeartbeat(ctx, &store.JobHeartbeatParams{
			ID: w.job.ID, Owner: r.cfg.InstanceID, Attempt: w.job.Attempt, Now: r.cfg.Now(), LeaseTTL: r.cfg.LeaseTTL,
		})
		switch {
		case err == nil:
		case errors.Is(err, relaytype.ErrLeaseLost):
			cause := errLeaseLost
			if j, gerr := r.Get(ctx, w.job.ID); gerr == nil && j.State == relaytype.StateCanceled {
				cause = errCanceled
			}
			w.cancel(cause)
			return
		case ctx.Err() != nil:
			return
		default:
			// Keep trying: the lease is still ours until it lapses.
			r.log.Warn("heartbeat failed", "job_id", w.job.ID, "err", err)
		}
	}
}

// release hands a job this relay is abandoning (shutdown) back to the
// queue through STALE, so it does not wait for its lease to lapse. A job
// waiting on an answer is released too: the store ends the attempt in one
// transaction (WAITING_ON_ANSWER → RUNNING → STALE) and closes its
// pending asks, which no executor will read.
func (r *Relay) release(ctx context.Context, job *relaytype.Job) {
	j, err := r.store.JobRelease(ctx, &store.JobReleaseParams{
		ID: job.ID, Owner: r.cfg.InstanceID, Attempt: job.Attempt, Now: r.cfg.Now(),
		Summary: "relay shut down during the run",
	})
	if err != nil {
		r.log.Warn("release job", "job_id", job.ID, "err", err)
		return
	}
	r.log.Info("job released for retry", "job_id", job.ID)
	r.publishJob(j)
}

// sweepLoop expires queued jobs past their TTL and rescues jobs whose
// lease lapsed. It sleeps until the store says the next deadline is due.
func (r *Relay) sweepLoop(ctx context.Context) {
	for {
		next := r.sweep(ctx)
		wait := maxSweepSleep
		if !next.IsZero() {
			wait = min(max(time.Until(next)+time.Millisecond, 5*time.Millisecond), maxSweepSleep)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.sweepWake:
			t.Stop()
		case <-t.C:
		}
	}
}

// sweep does one pass and returns when the next pass is due.
func (r *Relay) sweep(ctx context.Context) (next time.Time) {
	// Submits made while the pass reads the store wake the next one.
	r.sweepDue.Store(0)
	defer func() {
		due := int64(math.MaxInt64)
		if !next.IsZero() {
			due = next.UnixNano()
		}
		r.sweepDue.Store(due)
	}()
	now := r.cfg.Now()
	next, err := r.store.JobNextWake(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Error("sweep", "err", err)
		}
		return now.Add(time.Second)
	}
	if next.IsZero() || next.After(now) {
		return next
	}
	expired, err := r.store.JobExpire(ctx, &store.JobExpireParams{Now: now})
	if err != nil && ctx.Err() == nil {
		r.log.Error("expire jobs", "err", err)
	}
	for _, j := range expired {
		r.log.Info("job expired", "job_id", j.ID)
		r.publishJob(j)
	}
	rescued, err := r.store.JobRescue(ctx, &store.JobRescueParams{Now: now})
	if err != nil && ctx.Err() == nil {
		r.log.Error("rescue jobs", "err", err)
	}
	for _, j := range rescued {
		r.log.Warn("job lease lapsed", "job_id", j.ID, "state", j.State, "attempt", j.Attempt)
		r.publishJob(j)
	}
	if len(rescued) > 0 {
		signal(r.wake)
	}
	next, err = r.store.JobNextWake(ctx)
	if err != nil {
		return now.Add(time.Second)
	}
	return next
}
