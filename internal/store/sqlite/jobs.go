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
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/jobstate"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

const jobColumns = `id, idempotency_key, state, state_version, priority, attempt, max_attempts,
	executor, baseline_commit, spec, created_at, updated_at, started_at, finished_at, expires_at,
	lease_owner, lease_expires_at, heartbeat_at, reason_code, summary, input_tokens, output_tokens,
	cached_input_tokens, cost_usd, session_id, parent_job_id, project, host`

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
		&j.Usage.CachedInputTokens, &j.Usage.CostUSD, &session, &parent, &j.Project, &j.Host); err != nil {
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

// appendEvent appends ev to its job's log at now.
func appendEvent(ctx context.Context, tx *wtx, ev jobstate.Event, now time.Time) (*relaytype.Event, error) {
	raw, err := ev.Encode()
	if err != nil {
		return nil, err
	}
	var payloadArg any
	if raw != nil {
		payloadArg = string(raw)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO job_events (job_id, ts, type, payload) VALUES (?, ?, ?, ?)`,
		ev.JobID, ms(now), ev.Type, payloadArg)
	if err != nil {
		return nil, fmt.Errorf("append %s event: %w", ev.Type, err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return nil, fmt.Errorf("append %s event: %w", ev.Type, err)
	}
	return &relaytype.Event{ID: id, JobID: ev.JobID, Time: fromMS(ms(now)), Type: ev.Type, Payload: raw}, nil
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
	err = s.inTx(ctx, func(ctx context.Context, tx *wtx) error {
		// The immediate transaction holds SQLite's write lock, so the lookup
		// and the insert cannot interleave with another submit. Newest
		// first, the first job jobstate reuses is the answer; jobs that
		// are never reused are left out.
		rows, err := tx.QueryContext(ctx, `SELECT `+jobColumns+` FROM jobs
			WHERE idempotency_key = ? AND project = ? AND state NOT IN ('FAILED','CANCELED','EXPIRED')
			ORDER BY seq DESC`, p.Spec.IdempotencyKey, p.Project)
		if err != nil {
			return fmt.Errorf("idempotency lookup: %w", err)
		}
		q := *p
		q.Now = dbTime(p.Now)
		job, err = firstReused(rows, &q)
		if err != nil || job != nil {
			return err
		}
		nj, ev := jobstate.NewJob(&q)
		if _, err := tx.ExecContext(ctx, `INSERT INTO jobs (id, idempotency_key, state, state_version, priority,
			attempt, max_attempts, executor, baseline_commit, spec, created_at, updated_at, expires_at, parent_job_id,
			project, host)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			nj.ID, nj.IdempotencyKey, string(nj.State), nj.StateVersion, nj.Priority.Rank(), nj.Attempt, nj.MaxAttempts,
			nj.Executor, nj.BaselineCommit, string(spec), ms(nj.CreatedAt), ms(nj.UpdatedAt), ms(nj.ExpiresAt),
			nullString(nj.ParentJobID), nj.Project, nj.Host); err != nil {
			return fmt.Errorf("insert job: %w", err)
		}
		if _, err := appendEvent(ctx, tx, ev, q.Now); err != nil {
			return err
		}
		// The row holds what the rules built (times already rounded to
		// the stored milliseconds) and the spec as encoded: decoding it
		// gives the job exactly as a read would, without the read.
		nj.Spec = relaytype.JobSpec{}
		if err := json.Unmarshal(spec, &nj.Spec); err != nil {
			return fmt.Errorf("decode spec of job %s: %w", nj.ID, err)
		}
		job, created = nj, true
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return job, created, nil
}

// firstReused returns the first of rows that jobstate reuses for p, or nil.
func firstReused(rows *sql.Rows, p *store.JobInsertParams) (*relaytype.Job, error) {
	defer rows.Close()
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("idempotency lookup: %w", err)
		}
		if jobstate.Reuses(j, p) {
			return j, nil
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("idempotency lookup: %w", err)
	}
	return nil, nil
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

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// JobTransition implements store.Store.
func (s *Store) JobTransition(ctx context.Context, p *store.JobTransitionParams) (*relaytype.Job, error) {
	var out *relaytype.Job
	err := s.inTx(ctx, func(ctx context.Context, tx *wtx) error {
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
	err := s.inTx(ctx, func(ctx context.Context, tx *wtx) error {
		j, err := getJob(ctx, tx, p.ID)
		if err != nil {
			return err
		}
		snap, err := snapshot(ctx, tx, j)
		if err != nil {
			return err
		}
		q := *p
		q.Now = dbTime(p.Now)
		changes, err := jobstate.Release(snap, &q)
		if err != nil {
			return err
		}
		out, err = applyChanges(ctx, tx, changes, q.Now)
		return err
	})
	return out, err
}

// JobClaim implements store.Store.
func (s *Store) JobClaim(ctx context.Context, p *store.JobClaimParams) ([]*relaytype.Job, error) {
	if p.Limit <= 0 || (p.Projects != nil && len(p.Projects) == 0) || (p.Executors != nil && len(p.Executors) == 0) {
		return nil, nil
	}
	// The jobs jobstate.Claimable and ClaimableBy accept, as plain column
	// comparisons that leave jobs_claim_idx usable.
	query, args := `SELECT `+jobColumns+` FROM jobs
		WHERE state = 'QUEUED' AND expires_at > ? AND attempt < max_attempts`, []any{ms(p.Now)}
	in := func(column string, values []string) {
		query += ` AND ` + column + ` IN (?` + strings.Repeat(`, ?`, len(values)-1) + `)`
		for _, v := range values {
			args = append(args, v)
		}
	}
	if p.Projects != nil {
		// A relay that serves only some projects leaves the others'
		// jobs to the relays that have their executors.
		in("project", p.Projects)
	}
	if p.Executors != nil {
		in("executor", p.Executors)
	}
	// A job bound to a host (a local repository) is left to its host.
	in("host", []string{"", p.Host})
	query += ` ORDER BY priority, seq LIMIT ?`
	args = append(args, p.Limit)
	var out []*relaytype.Job
	err := s.inTx(ctx, func(ctx context.Context, tx *wtx) error {
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("select claimable jobs: %w", err)
		}
		jobs, err := collectJobs(rows)
		if err != nil {
			return err
		}
		now := dbTime(p.Now)
		for _, j := range jobs {
			if !jobstate.Claimable(j, now) || !jobstate.ClaimableBy(j, p) {
				continue
			}
			snap, err := snapshot(ctx, tx, j)
			if err != nil {
				return err
			}
			c, err := jobstate.Claim(snap, p.Owner, p.LeaseTTL, now)
			if err != nil {
				return err
			}
			nj, err := applyChanges(ctx, tx, []*jobstate.Change{c}, now)
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
	err := s.inTx(ctx, func(ctx context.Context, tx *wtx) error {
		j, err := getJob(ctx, tx, p.ID)
		if err != nil {
			return err
		}
		q := *p
		q.Now = dbTime(p.Now)
		nj, err := jobstate.Heartbeat(j, &q)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET lease_expires_at = ?, heartbeat_at = ? WHERE id = ?`,
			optMS(nj.LeaseExpiresAt), optMS(nj.HeartbeatAt), nj.ID); err != nil {
			return fmt.Errorf("heartbeat job %s: %w", p.ID, err)
		}
		out = nj
		return nil
	})
	return out, err
}

// JobRescue implements store.Store.
func (s *Store) JobRescue(ctx context.Context, p *store.JobRescueParams) ([]*relaytype.Job, error) {
	var out []*relaytype.Job
	err := s.inTx(ctx, func(ctx context.Context, tx *wtx) (err error) {
		out, err = sweep(ctx, tx, "select lapsed leases", `SELECT `+jobColumns+` FROM jobs
			WHERE (state IN ('RUNNING','WAITING_ON_ANSWER') AND lease_expires_at <= ?) OR state = 'STALE'
			ORDER BY seq`, p.Now, jobstate.Rescue)
		return err
	})
	return out, err
}

// JobExpire implements store.Store.
func (s *Store) JobExpire(ctx context.Context, p *store.JobExpireParams) ([]*relaytype.Job, error) {
	var out []*relaytype.Job
	err := s.inTx(ctx, func(ctx context.Context, tx *wtx) (err error) {
		out, err = sweep(ctx, tx, "select expired jobs", `SELECT `+jobColumns+` FROM jobs
			WHERE state = 'QUEUED' AND expires_at <= ? ORDER BY seq`, p.Now, jobstate.ExpireAll)
		return err
	})
	return out, err
}

// sweep selects jobs with query (its one parameter is now) and writes
// what decide makes of each; it returns the jobs as they end.
func sweep(ctx context.Context, tx *wtx, what, query string, now time.Time,
	decide func(jobstate.Snapshot, time.Time) ([]*jobstate.Change, error)) ([]*relaytype.Job, error) {
	rows, err := tx.QueryContext(ctx, query, ms(now))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	jobs, err := collectJobs(rows)
	if err != nil {
		return nil, err
	}
	now = dbTime(now)
	var out []*relaytype.Job
	for _, j := range jobs {
		snap, err := snapshot(ctx, tx, j)
		if err != nil {
			return nil, err
		}
		changes, err := decide(snap, now)
		if err != nil {
			return nil, err
		}
		nj, err := applyChanges(ctx, tx, changes, now)
		if err != nil {
			return nil, err
		}
		out = append(out, nj)
	}
	return out, nil
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
