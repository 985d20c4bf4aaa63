package mcpserver

import (
	"context"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-task-relay/mcp-task-relay/internal/relay"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// Limits of jobs_wait. The cap stays under the 60 s after which some
// clients abandon a tool call.
const (
	defaultWaitS         = 30
	maxWaitS             = 50
	defaultProgressEvery = 5 * time.Second
)

type waitArgs struct {
	JobID    string `json:"jobId"`
	TimeoutS *int   `json:"timeoutS"`
}

// wait is jobs_wait: it returns when the job's state version moves past
// the one it had when the call started, when one of its asks is created or
// answered, at once if the job is terminal, or at the timeout.
func (s *Server) wait(ctx context.Context, req *mcp.CallToolRequest, in *waitArgs) (waitResult, error) {
	id, err := (&jobArgs{JobID: in.JobID}).id()
	if err != nil {
		return waitResult{}, err
	}
	timeoutS := defaultWaitS
	if in.TimeoutS != nil {
		timeoutS = *in.TimeoutS
		if timeoutS < 1 || timeoutS > maxWaitS {
			return waitResult{}, &argError{Field: "timeoutS", Message: fmt.Sprintf("must be between 1 and %d, not %d", maxWaitS, timeoutS)}
		}
	}
	// Subscribe before reading the job, so that a change made right after
	// the read is still in the channel.
	changes, unsubscribe := s.jobs.Subscribe()
	defer unsubscribe()
	job, err := s.jobs.Get(ctx, id)
	if err != nil {
		return waitResult{}, err
	}
	changed := false
	if !job.State.Terminal() {
		var token any
		if req != nil && req.Params != nil {
			token = req.Params.GetProgressToken()
		}
		var progress func(elapsed time.Duration, j *relaytype.Job)
		if token != nil && req.Session != nil {
			progress = func(elapsed time.Duration, j *relaytype.Job) {
				// The request's ctx routes the notification to the
				// request's stream on Streamable HTTP.
				err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
					ProgressToken: token,
					Progress:      elapsed.Seconds(),
					Total:         float64(timeoutS),
					Message:       string(j.State),
				})
				if err != nil {
					s.log.Debug("notify progress", "job_id", j.ID, "err", err)
				}
			}
		}
		changed, job, err = s.awaitChange(ctx, changes, job, time.Duration(timeoutS)*time.Second, progress)
		if err != nil {
			return waitResult{}, err
		}
	}
	st, err := s.statusOf(ctx, job)
	if err != nil {
		return waitResult{}, err
	}
	res := waitResult{jobStatus: st, Changed: changed}
	if s.asks != nil {
		pending, err := s.asks.List(ctx, job.ID, relaytype.StatusPending)
		if err != nil {
			return waitResult{}, fmt.Errorf("pending asks of %s: %w", job.ID, err)
		}
		res.PendingAsks = len(pending)
	}
	return res, nil
}

// awaitChange waits up to timeout for job to change and returns whether
// it did and the job as it is then. Every progressEvery it rereads the job
// (a change made by another process is not published to this one) and
// calls progress, if set, with the time waited so far.
func (s *Server) awaitChange(ctx context.Context, changes <-chan relay.Change, job *relaytype.Job, timeout time.Duration,
	progress func(time.Duration, *relaytype.Job)) (bool, *relaytype.Job, error) {
	start := time.Now()
	base := job.StateVersion
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(s.progressEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, nil, context.Cause(ctx)
		case c, ok := <-changes:
			if !ok {
				changes = nil // the ticker still rechecks
				continue
			}
			if c.JobID != job.ID || (!c.Asks && (c.State == "" || c.StateVersion <= base)) {
				continue
			}
			cur, err := s.jobs.Get(ctx, job.ID)
			if err != nil {
				return false, nil, err
			}
			if c.Asks || cur.StateVersion != base {
				return true, cur, nil
			}
		case <-tick.C:
			cur, err := s.jobs.Get(ctx, job.ID)
			if err != nil {
				return false, nil, err
			}
			if cur.StateVersion != base {
				return true, cur, nil
			}
			if progress != nil {
				progress(time.Since(start), cur)
			}
		case <-deadline.C:
			cur, err := s.jobs.Get(ctx, job.ID)
			if err != nil {
				return false, nil, err
			}
			return cur.StateVersion != base, cur, nil
		}
	}
}
