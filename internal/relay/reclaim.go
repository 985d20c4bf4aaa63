package relay

import (
	"context"
	"os"
	"strconv"
	"strings"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// reclaimDead releases, at start, the jobs whose lease is held by a relay
// on this host whose process no longer exists (killed, crashed): they go
// to STALE and are retried now rather than when their lease lapses. A
// lease of a live process, of another host or of an owner name this relay
// does not understand is left to lapse as usual.
func (r *Relay) reclaimDead(ctx context.Context) {
	host, _ := os.Hostname()
	for _, state := range []relaytype.JobState{relaytype.StateRunning, relaytype.StateWaitingOnAnswer} {
		jobs, _, err := r.store.JobList(ctx, &store.JobListParams{State: state, Limit: 1000})
		if err != nil {
			r.log.Warn("reclaim jobs of dead relays", "err", err)
			return
		}
		for _, j := range jobs {
			if j.LeaseOwner == r.cfg.InstanceID || !deadOwner(j.LeaseOwner, host) {
				continue
			}
			r.releaseDead(ctx, j)
		}
	}
}

// releaseDead moves a job of a dead owner to STALE, in that owner's name,
// closing the asks of its attempt, in one transaction.
func (r *Relay) releaseDead(ctx context.Context, j *relaytype.Job) {
	nj, err := r.store.JobRelease(ctx, &store.JobReleaseParams{
		ID: j.ID, Owner: j.LeaseOwner, Now: r.cfg.Now(),
		Summary: "the relay that ran the job is gone (process " + j.LeaseOwner + " no longer exists)",
	})
	if err != nil {
		r.log.Warn("reclaim job of a dead relay", "job_id", j.ID, "err", err)
		return
	}
	r.log.Info("job of a dead relay released for retry", "job_id", j.ID, "owner", j.LeaseOwner)
	r.publishJob(nj)
	signal(r.sweepWake)
}

// deadOwner reports whether a lease owner named host:pid:nonce (see
// Config.InstanceID) is a process of this host that does not exist.
func deadOwner(owner, host string) bool {
	parts := strings.Split(owner, ":")
	if len(parts) != 3 || parts[0] != host {
		return false
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return false
	}
	return processGone(pid)
}
