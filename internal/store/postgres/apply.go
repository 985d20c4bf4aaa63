package postgres

// This file writes the decisions of the jobstate rules; the rules
// themselves live there, shared by every backend. Every function here
// runs in a transaction that holds the job's row lock.

import (
	"context"
	"fmt"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/jobstate"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// dbTime rounds t to what the store keeps of a time (UTC milliseconds), so
// that the jobs the rules return equal the rows read back.
func dbTime(t time.Time) time.Time { return fromMS(ms(t)) }

// optMS is the stored form of an optional time.
func optMS(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ms(*t)
}

// snapshot loads what the rules need to know of job j, whose row lock tx
// holds: its PENDING asks and, when its end notifies, its artifacts.
func snapshot(ctx context.Context, tx *txn, j *relaytype.Job) (jobstate.Snapshot, error) {
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

// lockSnapshot locks job id and loads its snapshot.
func lockSnapshot(ctx context.Context, tx *txn, id string) (jobstate.Snapshot, error) {
	j, err := lockJob(ctx, tx, id)
	if err != nil {
		return jobstate.Snapshot{}, err
	}
	return snapshot(ctx, tx, j)
}

// applyChanges writes changes in order and returns the job as the last
// one leaves it (nil for none).
func applyChanges(ctx context.Context, tx *txn, changes []*jobstate.Change, now time.Time) (*relaytype.Job, error) {
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
func applyChange(ctx context.Context, tx *txn, c *jobstate.Change, now time.Time) error {
	j := c.Job
	tag, err := tx.Exec(ctx, `UPDATE jobs SET state = $1, state_version = $2, updated_at = $3, attempt = $4,
		started_at = $5, finished_at = $6, expires_at = $7, lease_owner = $8, lease_expires_at = $9, heartbeat_at = $10,
		reason_code = $11, summary = $12, input_tokens = $13, output_tokens = $14, cached_input_tokens = $15,
		cost_usd = $16, session_id = $17
		WHERE id = $18 AND state_version = $19`,
		string(j.State), j.StateVersion, ms(j.UpdatedAt), j.Attempt,
		optMS(j.StartedAt), optMS(j.FinishedAt), ms(j.ExpiresAt), nullString(j.LeaseOwner), optMS(j.LeaseExpiresAt),
		optMS(j.HeartbeatAt), nullString(string(j.ReasonCode)), nullString(j.Summary),
		int64(j.Usage.InputTokens), int64(j.Usage.OutputTokens), int64(j.Usage.CachedInputTokens), j.Usage.CostUSD,
		nullString(j.SessionID), j.ID, c.FromVersion)
	if err != nil {
		return fmt.Errorf("update job %s: %w", j.ID, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("update job %s: state changed concurrently: %w", j.ID, relaytype.ErrIllegalTransition)
	}
	tx.notify(store.Notification{Kind: store.NotifyJob, JobID: j.ID, State: j.State, StateVersion: j.StateVersion})
	for _, a := range c.Artifacts {
		if err := putArtifact(ctx, tx, a); err != nil {
			return err
		}
		b, ok := c.Contents[a.Kind]
		if err := putContents(ctx, tx, a, b, ok); err != nil {
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

// applyAnswer writes one answer: the answer row, its usage added to the
// job's sums, the ask marked with its status, and its event.
func applyAnswer(ctx context.Context, tx *txn, w *jobstate.AnswerWrite, now time.Time) error {
	a := w.Answer
	ajson, err := jsonArg(a.AnswerJSON)
	if err != nil {
		return err
	}
	att, err := jsonArg(a.Attestation)
	if err != nil {
		return err
	}
	trace, err := jsonArg(a.PolicyTrace)
	if err != nil {
		return err
	}
	var in, out int64
	if a.Usage != nil {
		in, out = int64(a.Usage.InputTokens), int64(a.Usage.OutputTokens)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO answers (ask_id, job_id, step_id, status, answer_text, answer_json,
		attestation, policy_trace, cacheable, ask_back, error, created_at, payload_hash, input_tokens, output_tokens)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		a.AskID, a.JobID, a.StepID, string(a.Status), nullString(a.AnswerText), ajson, att, trace, a.Cacheable,
		nullString(a.AskBack), nullString(a.Error), ms(now), w.PayloadHash, in, out); err != nil {
		return fmt.Errorf("insert answer: %w", err)
	}
	if u := w.Usage; u != nil {
		if _, err := tx.Exec(ctx, `UPDATE jobs SET input_tokens = input_tokens + $1, output_tokens = output_tokens + $2,
			cached_input_tokens = cached_input_tokens + $3, cost_usd = cost_usd + $4
			WHERE id = $5`, int64(u.InputTokens), int64(u.OutputTokens), int64(u.CachedInputTokens), u.CostUSD, a.JobID); err != nil {
			return fmt.Errorf("add answer usage to job: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE asks SET status = $1, answered_at = $2 WHERE ask_id = $3`,
		string(a.Status), ms(now), a.AskID); err != nil {
		return fmt.Errorf("close ask: %w", err)
	}
	tx.notify(store.Notification{Kind: store.NotifyAsk, JobID: a.JobID, AskID: a.AskID})
	_, err = appendEvent(ctx, tx, w.Event, now)
	return err
}

// transition decides transition p of job j (locked by tx) and writes it.
// It returns the job as it is afterwards.
func transition(ctx context.Context, tx *txn, j *relaytype.Job, p *store.JobTransitionParams) (*relaytype.Job, error) {
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
