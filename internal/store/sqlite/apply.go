package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/jobstate"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// This file writes the decisions of the jobstate rules; the rules
// themselves live there, shared by every backend.

// dbTime rounds t to what the store keeps of a time (UTC milliseconds), so
// that the jobs the rules return equal the rows read back.
func dbTime(t time.Time) time.Time { return fromMS(ms(t)) }

// snapshot loads what the rules need to know of job j: its PENDING asks
// and, when its end notifies, its artifacts.
func snapshot(ctx context.Context, tx *wtx, j *relaytype.Job) (jobstate.Snapshot, error) {
	s := jobstate.Snapshot{Job: j}
	pending, err := pendingAsks(ctx, tx, j.ID)
	if err != nil {
		return s, err
	}
	s.Pending = pending
	if jobstate.Notifies(j) {
		if s.Artifacts, err = listArtifacts(ctx, tx, j.ID); err != nil {
			return s, err
		}
	}
	return s, nil
}

// transition decides transition p of job j and writes it. It returns the
// job as it is afterwards.
func transition(ctx context.Context, tx *wtx, j *relaytype.Job, p *store.JobTransitionParams) (*relaytype.Job, error) {
	s, err := snapshot(ctx, tx, j)
	if err != nil {
		return nil, err
	}
	q := *p
	q.Now = dbTime(p.Now)
	c, err := jobstate.Transition(s, &q)
	if err != nil {
		return nil, err
	}
	return applyChanges(ctx, tx, []*jobstate.Change{c}, q.Now)
}

// applyChanges writes changes in order and returns the job as the last
// one leaves it (nil for none).
func applyChanges(ctx context.Context, tx *wtx, changes []*jobstate.Change, now time.Time) (*relaytype.Job, error) {
	var j *relaytype.Job
	for _, c := range changes {
		if err := applyChange(ctx, tx, c, now); err != nil {
			return nil, err
		}
		j = c.Job
	}
	return j, nil
}

// applyChange writes one change: the job row (under the optimistic check
// of its state version), the artifacts, the events, the answers that
// close asks and the outbox messages. It is the only code that writes
// jobs.state after insert.
func applyChange(ctx context.Context, tx *wtx, c *jobstate.Change, now time.Time) error {
	j := c.Job
	res, err := tx.ExecContext(ctx, `UPDATE jobs SET state = ?, state_version = ?, updated_at = ?, attempt = ?,
		started_at = ?, finished_at = ?, expires_at = ?, lease_owner = ?, lease_expires_at = ?, heartbeat_at = ?,
		reason_code = ?, summary = ?, input_tokens = ?, output_tokens = ?, cached_input_tokens = ?, cost_usd = ?,
		session_id = ?
		WHERE id = ? AND state_version = ?`,
		string(j.State), j.StateVersion, ms(j.UpdatedAt), j.Attempt,
		optMS(j.StartedAt), optMS(j.FinishedAt), ms(j.ExpiresAt), nullString(j.LeaseOwner), optMS(j.LeaseExpiresAt),
		optMS(j.HeartbeatAt), nullString(string(j.ReasonCode)), nullString(j.Summary),
		j.Usage.InputTokens, j.Usage.OutputTokens, j.Usage.CachedInputTokens, j.Usage.CostUSD,
		nullString(j.SessionID), j.ID, c.FromVersion)
	if err != nil {
		return fmt.Errorf("update job %s: %w", j.ID, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("update job %s: state changed concurrently: %w", j.ID, relaytype.ErrIllegalTransition)
	}
	for _, a := range c.Artifacts {
		if err := putArtifact(ctx, tx, a); err != nil {
			return err
		}
	}
	for _, ev := range c.Events {
		if _, err := appendEvent(ctx, tx, ev, now); err != nil {
			return err
		}
	}
	for _, w := range c.Closes {
		if err := applyAnswer(ctx, tx, w, now); err != nil {
			return err
		}
	}
	for _, m := range c.Outbox {
		if _, err := insertOutbox(ctx, tx, m, now); err != nil {
			return err
		}
	}
	return nil
}

// optMS is the stored form of an optional time.
func optMS(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ms(*t)
}
