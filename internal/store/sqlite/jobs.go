package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

const jobColumns = `id, idempotency_key, state, state_version, priority, attempt, max_attempts,
	executor, baseline_commit, spec, created_at, updated_at, started_at, finished_at, expires_at,
	lease_owner, lease_expires_at, heartbeat_at, reason_code, summary, input_tokens, output_tokens,
	cached_input_tokens, cost_usd, session_id, parent_job_id, project`

type scanner interface{ Scan(dest ...any) error }

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func optTime(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMS(v.Int64)
	return &t
}

func scanJob(row scanner) (*relaytype.Job, error) {
	var (
		j                                      relaytype.Job
		prio                                   int
		spec                                   string
		created, updated, expires              int64
		started, finished, leaseExp, heartbeat sql.NullInt64
		leaseOwner, reason, summary            sql.NullString
		session, parent                        sql.NullString
	)
	if err := row.Scan(&j.ID, &j.IdempotencyKey, &j.State, &j.StateVersion, &prio, &j.Attempt, &j.MaxAttempts,
		&j.Executor, &j.BaselineCommit, &spec, &created, &updated, &started, &finished, &expires,
		&leaseOwner, &leaseExp, &heartbeat, &reason, &summary, &j.Usage.InputTokens, &j.Usage.OutputTokens,
		&j.Usage.CachedInputTokens, &j.Usage.CostUSD, &session, &parent, &j.Project); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(spec), &j.Spec); err != nil {
		return nil, fmt.Errorf("decode spec of job %s: %w", j.ID, err)
	}
	j.Priority = relaytype.PriorityFromRank(prio)
	j.CreatedAt, j.UpdatedAt, j.ExpiresAt = fromMS(created), fromMS(updated), fromMS(expires)
	j.StartedAt, j.FinishedAt = optTime(started), optTime(finished)
	j.LeaseExpiresAt, j.HeartbeatAt = optTime(leaseExp), optTime(heartbeat)
	j.LeaseOwner, j.ReasonCode, j.Summary = leaseOwner.String, relaytype.FailReason(reason.String), summary.String
	j.SessionID, j.ParentJobID = session.String, parent.String
	return &j, nil
}

func getJob(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id string) (*relaytype.Job, error) {
	j, err := scanJob(q.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("job %s: %w", id, relaytype.ErrJobNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	return j, nil
}

func appendEvent(ctx context.Context, tx *sql.Tx, jobID, typ string, payload any, now time.Time) (*relaytype.Event, error) {
	var raw []byte
	switch p := payload.(type) {
	case nil:
	case json.RawMessage:
		raw = p
	default:
		b, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("encode %s event: %w", typ, err)
		}
		raw = b
	}
	var payloadArg any
	if raw != nil {
		payloadArg = string(raw)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO job_events (job_id, ts, type, payload) VALUES (?, ?, ?, ?)`,
		jobID, ms(now), typ, payloadArg)
	if err != nil {
		return nil, fmt.Errorf("append %s event: %w", typ, err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return nil, fmt.Errorf("append %s event: %w", typ, err)
	}
	return &relaytype.Event{ID: id, JobID: jobID, Time: fromMS(ms(now)), Type: typ, Payload: raw}, nil
}

// JobInsert implements store.Store.
func (s *Store) JobInsert(ctx context.Context, p *store.JobInsertParams) (*relaytype.Job, bool, error) {
	spec, err := json.Marshal(p.Spec)
	if err != nil {
		return nil, false, fmt.Errorf("encode spec: %w", err)
	}
	var (
		job     *relaytype.Job
		created bool
	)
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		// The immediate transaction holds SQLite's write lock, so the lookup
		// and the insert cannot interleave with another submit.
		since := ms(p.Now.Add(-p.IdempotencyWindow))
		row := tx.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs
			WHERE idempotency_key = ? AND project = ?
			  AND (state NOT IN ('SUCCEEDED','FAILED','CANCELED','EXPIRED')
			       OR (state = 'SUCCEEDED' AND finished_at >= ?))
			ORDER BY seq DESC LIMIT 1`, p.Spec.IdempotencyKey, p.Project, since)
		existing, err := scanJob(row)
		if err == nil {
			job = existing
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("idempotency lookup: %w", err)
		}
		now := ms(p.Now)
		expires := ms(p.Now.Add(time.Duration(p.Spec.Execution.TTLS) * time.Second))
		if _, err := tx.ExecContext(ctx, `INSERT INTO jobs (id, idempotency_key, state, state_version, priority,
			attempt, max_attempts, executor, baseline_commit, spec, created_at, updated_at, expires_at, parent_job_id, project)
			VALUES (?, ?, 'QUEUED', 1, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			p.ID, p.Spec.IdempotencyKey, p.Spec.Execution.Priority.Rank(), p.Spec.Execution.MaxAttempts,
			p.Executor, p.BaselineCommit, string(spec), now, now, expires, nullString(p.ParentJobID), p.Project); err != nil {
			return fmt.Errorf("insert job: %w", err)
		}
		if _, err := appendEvent(ctx, tx, p.ID, relaytype.EventSubmitted, relaytype.TransitionPayload{
			To: relaytype.StateQueued, StateVersion: 1,
		}, p.Now); err != nil {
			return err
		}
		job, err = getJob(ctx, tx, p.ID)
		created = true
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return job, created, nil
}

// JobGet implements store.Store.
func (s *Store) JobGet(ctx context.Context, p *store.JobGetParams) (*relaytype.Job, error) {
	return getJob(ctx, s.reader, p.ID)
}

// JobList implements store.Store.
func (s *Store) JobList(ctx context.Context, p *store.JobListParams) ([]*relaytype.Job, int, error) {
	var conds []string
	var args []any
	if p.State != "" {
		conds, args = append(conds, "state = ?"), append(args, string(p.State))
	}
	if p.Project != nil {
		conds, args = append(conds, "project = ?"), append(args, *p.Project)
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	var total int
	if err := s.reader.QueryRowContext(ctx, `SELECT count(*) FROM jobs`+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count jobs: %w", err)
	}
	limit := p.Limit
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT `+jobColumns+` FROM jobs`+where+` ORDER BY seq DESC LIMIT ? OFFSET ?`,
		append(args, limit, max(p.Offset, 0))...)
	if err != nil {
		return nil, 0, fmt.Errorf("list jobs: %w", err)
	}
	jobs, err := collectJobs(rows)
	return jobs, total, err
}

func collectJobs(rows *sql.Rows) ([]*relaytype.Job, error) {
	defer rows.Close()
	var jobs []*relaytype.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("scan job: %w", err)
		}
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read jobs: %w", err)
	}
	return jobs, nil
}

// transition applies one validated state change inside tx and appends its
// event. It is the only code that writes jobs.state after insert.
func transition(ctx context.Context, tx *sql.Tx, j *relaytype.Job, p *store.JobTransitionParams) (*relaytype.Job, error) {
	if !relaytype.CanTransition(j.State, p.To) {
		return nil, &relaytype.TransitionError{JobID: j.ID, From: j.State, To: p.To}
	}
	claim := p.To == relaytype.StateRunning && (j.State == relaytype.StateQueued || j.State == relaytype.StateStale)
	if p.Owner != "" && !claim && (j.LeaseOwner != p.Owner || !j.State.Active()) {
		return nil, fmt.Errorf("job %s is held by %q, not %q: %w", j.ID, j.LeaseOwner, p.Owner, relaytype.ErrLeaseLost)
	}
	now := ms(p.Now)
	attempt := j.Attempt
	sets := []string{"state = ?", "state_version = state_version + 1", "updated_at = ?"}
	args := []any{string(p.To), now}
	switch {
	case p.To.Terminal():
		sets = append(sets, "finished_at = ?", "lease_owner = NULL", "lease_expires_at = NULL", "reason_code = ?", "summary = ?")
		args = append(args, now, nullString(string(p.Reason)), nullString(p.Summary))
	case p.To == relaytype.StateQueued:
		// A retry waits in the queue for a fresh ttl: its age since submit
		// is not the queueing delay the ttl bounds.
		sets = append(sets, "lease_owner = NULL", "lease_expires_at = NULL", "expires_at = ?")
		args = append(args, ms(p.Now.Add(time.Duration(j.Spec.Execution.TTLS)*time.Second)))
	case claim:
		if j.Attempt >= j.MaxAttempts {
			return nil, fmt.Errorf("start job %s: it has used all %d attempts: %w", j.ID, j.MaxAttempts, relaytype.ErrIllegalTransition)
		}
		if p.Owner == "" || p.LeaseTTL <= 0 {
			return nil, fmt.Errorf("start job %s: a lease owner and TTL are required", j.ID)
		}
		attempt++
		sets = append(sets, "attempt = attempt + 1", "started_at = coalesce(started_at, ?)", "lease_owner = ?",
			"lease_expires_at = ?", "heartbeat_at = ?")
		args = append(args, now, p.Owner, ms(p.Now.Add(p.LeaseTTL)), now)
	case p.To.Active() && p.LeaseTTL > 0:
		sets = append(sets, "lease_expires_at = ?", "heartbeat_at = ?")
		args = append(args, ms(p.Now.Add(p.LeaseTTL)), now)
	}
	if p.Summary != "" && !p.To.Terminal() {
		sets = append(sets, "summary = ?")
		args = append(args, p.Summary)
	}
	if u := p.Usage; u != nil {
		sets = append(sets, "input_tokens = input_tokens + ?", "output_tokens = output_tokens + ?",
			"cached_input_tokens = cached_input_tokens + ?", "cost_usd = cost_usd + ?")
		args = append(args, u.InputTokens, u.OutputTokens, u.CachedInputTokens, u.CostUSD)
	}
	if p.SessionID != "" {
		sets = append(sets, "session_id = ?")
		args = append(args, p.SessionID)
	}
	args = append(args, j.ID, j.StateVersion)
	res, err := tx.ExecContext(ctx, `UPDATE jobs SET `+strings.Join(sets, ", ")+` WHERE id = ? AND state_version = ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("update job %s: %w", j.ID, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return nil, fmt.Errorf("update job %s: state changed concurrently: %w", j.ID, relaytype.ErrIllegalTransition)
	}
	for _, a := range p.Artifacts {
		if err := putArtifact(ctx, tx, j.ID, a, p.Now); err != nil {
			return nil, err
		}
	}

	if _, err := appendEvent(ctx, tx, j.ID, relaytype.EventTransition, relaytype.TransitionPayload{
		From: j.State, To: p.To, StateVersion: j.StateVersion + 1, Attempt: attempt,
		Reason: p.Reason, Summary: p.Summary, Owner: p.Owner, Usage: p.Usage,
	}, p.Now); err != nil {
		return nil, err
	}
	started := 0
	if claim {
		started = attempt
	}
	if err := closePendingAsks(ctx, tx, j, p, started, p.Now); err != nil {
		return nil, err
	}
	nj, err := getJob(ctx, tx, j.ID)
	if err != nil {
		return nil, err
	}
	if p.To.Terminal() {
		if err := enqueueTerminal(ctx, tx, nj, p.Now); err != nil {
			return nil, err
		}
	}
	return nj, nil
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// JobTransition implements store.Store.
func (s *Store) JobTransition(ctx context.Context, p *store.JobTransitionParams) (*relaytype.Job, error) {
	var out *relaytype.Job
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		j, err := getJob(ctx, tx, p.ID)
		if err != nil {
			return err
		}
		out, err = transition(ctx, tx, j, p)
		return err
	})
	return out, err
}

// JobRelease implements store.Store.
func (s *Store) JobRelease(ctx context.Context, p *store.JobReleaseParams) (*relaytype.Job, error) {
	var out *relaytype.Job
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		j, err := getJob(ctx, tx, p.ID)
		if err != nil {
			return err
		}
		if !j.State.Active() {
			return &relaytype.TransitionError{JobID: j.ID, From: j.State, To: relaytype.StateStale}
		}
		if p.Owner != "" && j.LeaseOwner != p.Owner {
			return fmt.Errorf("job %s is held by %q, not %q: %w", j.ID, j.LeaseOwner, p.Owner, relaytype.ErrLeaseLost)
		}
		// WAITING_ON_ANSWER has no edge to STALE: the job is running
		// again for an instant, in this transaction only.
		if j.State == relaytype.StateWaitingOnAnswer {
			j, err = transition(ctx, tx, j, &store.JobTransitionParams{
				ID: j.ID, To: relaytype.StateRunning, Owner: p.Owner, Now: p.Now, Summary: p.Summary,
			})
			if err != nil {
				return err
			}
		}
		out, err = transition(ctx, tx, j, &store.JobTransitionParams{
			ID: j.ID, To: relaytype.StateStale, Owner: p.Owner, Now: p.Now, Summary: p.Summary,
		})
		return err
	})
	return out, err
}

// JobClaim implements store.Store.
func (s *Store) JobClaim(ctx context.Context, p *store.JobClaimParams) ([]*relaytype.Job, error) {
	if p.Limit <= 0 {
		return nil, nil
	}
	var out []*relaytype.Job
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		query, args := `SELECT `+jobColumns+` FROM jobs
			WHERE state = 'QUEUED' AND expires_at > ? AND attempt < max_attempts`, []any{ms(p.Now)}
		if p.Projects != nil {
			// A relay that serves only some projects leaves the others'
			// jobs to the relays that have their executors.
			if len(p.Projects) == 0 {
				return nil
			}
			query += ` AND project IN (?` + strings.Repeat(`, ?`, len(p.Projects)-1) + `)`
			for _, pr := range p.Projects {
				args = append(args, pr)
			}
		}
		rows, err := tx.QueryContext(ctx, query+` ORDER BY priority, seq LIMIT ?`, append(args, p.Limit)...)
		if err != nil {
			return fmt.Errorf("select claimable jobs: %w", err)
		}
		jobs, err := collectJobs(rows)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			nj, err := transition(ctx, tx, j, &store.JobTransitionParams{
				ID: j.ID, To: relaytype.StateRunning, Owner: p.Owner, LeaseTTL: p.LeaseTTL, Now: p.Now,
			})
			if err != nil {
				return err
			}
			out = append(out, nj)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// JobHeartbeat implements store.Store.
func (s *Store) JobHeartbeat(ctx context.Context, p *store.JobHeartbeatParams) (*relaytype.Job, error) {
	var out *relaytype.Job
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE jobs SET lease_expires_at = ?, heartbeat_at = ?
			WHERE id = ? AND lease_owner = ? AND state IN ('RUNNING','WAITING_ON_ANSWER')`,
			ms(p.Now.Add(p.LeaseTTL)), ms(p.Now), p.ID, p.Owner)
		if err != nil {
			return fmt.Errorf("heartbeat job %s: %w", p.ID, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			j, err := getJob(ctx, tx, p.ID)
			if err != nil {
				return err
			}
			return fmt.Errorf("heartbeat job %s (%s, held by %q): %w", p.ID, j.State, j.LeaseOwner, relaytype.ErrLeaseLost)
		}
		out, err = getJob(ctx, tx, p.ID)
		return err
	})
	return out, err
}

// JobRescue implements store.Store.
func (s *Store) JobRescue(ctx context.Context, p *store.JobRescueParams) ([]*relaytype.Job, error) {
	var out []*relaytype.Job
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+jobColumns+` FROM jobs
			WHERE (state IN ('RUNNING','WAITING_ON_ANSWER') AND lease_expires_at <= ?) OR state = 'STALE'
			ORDER BY seq`, ms(p.Now))
		if err != nil {
			return fmt.Errorf("select lapsed leases: %w", err)
		}
		jobs, err := collectJobs(rows)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			j, err = rescueOne(ctx, tx, j, p.Now)
			if err != nil {
				return err
			}
			out = append(out, j)
		}
		return nil
	})
	return out, err
}

// rescueOne walks a job whose worker vanished through legal edges only:
// WAITING_ON_ANSWER → RUNNING → STALE → QUEUED, or → FAILED when its
// attempts are used up.
func rescueOne(ctx context.Context, tx *sql.Tx, j *relaytype.Job, now time.Time) (*relaytype.Job, error) {
	step := func(to relaytype.JobState, reason relaytype.FailReason, summary string) error {
		nj, err := transition(ctx, tx, j, &store.JobTransitionParams{ID: j.ID, To: to, Now: now, Reason: reason, Summary: summary})
		if err == nil {
			j = nj
		}
		return err
	}
	lapsed := fmt.Sprintf("lease of %q lapsed on attempt %d of %d", j.LeaseOwner, j.Attempt, j.MaxAttempts)
	if j.State == relaytype.StateWaitingOnAnswer {
		if err := step(relaytype.StateRunning, "", lapsed); err != nil {
			return nil, err
		}
	}
	if j.State == relaytype.StateRunning {
		if err := step(relaytype.StateStale, "", lapsed); err != nil {
			return nil, err
		}
	}
	var err error
	if j.Attempt >= j.MaxAttempts {
		err = step(relaytype.StateFailed, relaytype.ReasonInternalError,
			fmt.Sprintf("worker lost the job on each of %d attempts (%s)", j.MaxAttempts, lapsed))
	} else {
		err = step(relaytype.StateQueued, "", "retrying after "+lapsed)
	}
	if err != nil {
		return nil, err
	}
	return j, nil
}

// JobExpire implements store.Store.
func (s *Store) JobExpire(ctx context.Context, p *store.JobExpireParams) ([]*relaytype.Job, error) {
	var out []*relaytype.Job
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+jobColumns+` FROM jobs
			WHERE state = 'QUEUED' AND expires_at <= ? ORDER BY seq`, ms(p.Now))
		if err != nil {
			return fmt.Errorf("select expired jobs: %w", err)
		}
		jobs, err := collectJobs(rows)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			nj, err := transition(ctx, tx, j, &store.JobTransitionParams{
				ID: j.ID, To: relaytype.StateExpired, Now: p.Now,
				Summary: fmt.Sprintf("not started within its ttl of %ds", j.Spec.Execution.TTLS),
			})
			if err != nil {
				return err
			}
			out = append(out, nj)
		}
		return nil
	})
	return out, err
}

// JobNextWake implements store.Store.
func (s *Store) JobNextWake(ctx context.Context) (time.Time, error) {
	var next sql.NullInt64
	err := s.reader.QueryRowContext(ctx, `SELECT min(t) FROM (
		SELECT min(expires_at) AS t FROM jobs WHERE state = 'QUEUED'
		UNION ALL
		SELECT min(lease_expires_at) FROM jobs WHERE state IN ('RUNNING','WAITING_ON_ANSWER')
		UNION ALL
		SELECT min(updated_at) FROM jobs WHERE state = 'STALE')`).Scan(&next)
	if err != nil {
		return time.Time{}, fmt.Errorf("next wake: %w", err)
	}
	if !next.Valid {
		return time.Time{}, nil
	}
	return fromMS(next.Int64), nil
}
