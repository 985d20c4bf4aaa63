package mcpserver

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

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
	JobID    string `json:"jobId" jsonschema:"from jobs_submit"`
	TimeoutS *int   `json:"timeoutS,omitempty" jsonschema:"seconds"`
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
					Message:       progressMessage(j, s.progress(ctx, j)),
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
				// The relay stopped: no change will come. Report the
				// job as it is now.
				cur, err := s.jobs.Get(ctx, job.ID)
				if err != nil {
					return false, nil, err
				}
				return cur.StateVersion > base, cur, nil
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

// ProgressReader is the optional part of Jobs that tells what a running
// job is doing; *relay.Relay implements it. With it, jobs_get, jobs_wait
// and mcp://jobs/{jobId}/status show a running job's progress, and
// jobs_wait's progress notifications carry its phase and last output line.
type ProgressReader interface {
	// Progress returns what job id is doing, or nil when it is not
	// running.
	Progress(ctx context.Context, id string) (*relaytype.Progress, error)
}

// progress returns what job is doing, or nil when it is not running or
// Jobs cannot tell. Progress is an extra: failing to read it is logged,
// not returned.
func (s *Server) progress(ctx context.Context, job *relaytype.Job) *relaytype.Progress {
	pr, ok := s.jobs.(ProgressReader)
	if !ok || !job.State.Active() {
		return nil
	}
	p, err := pr.Progress(ctx, job.ID)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("read job progress", "job_id", job.ID, "err", err)
		}
		return nil
	}
	return p
}

// progressMessageLine bounds the output line in a progress message, in
// runes.
const progressMessageLine = 120

// progressMessage is the message of a jobs_wait progress notification:
// the job's state, and while it runs its phase, the time since it started
// and its last line of output, as in
// "RUNNING · running · 2m14s · last: ok  ./internal/relay".
func progressMessage(j *relaytype.Job, p *relaytype.Progress) string {
	parts := []string{string(j.State)}
	if p != nil {
		if p.Phase != "" {
			parts = append(parts, string(p.Phase))
		}
		parts = append(parts, time.Duration(p.ElapsedS*float64(time.Second)).Round(time.Second).String())
		if n := len(p.LastLines); n > 0 {
			last := strings.TrimSpace(p.LastLines[n-1])
			if utf8.RuneCountInString(last) > progressMessageLine {
				last = string([]rune(last)[:progressMessageLine-1]) + "…"
			}
			parts = append(parts, "last: "+last)
		}
	}
	return strings.Join(parts, " · ")
}
