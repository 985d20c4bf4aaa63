package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/jobstate"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

const jobColumns = `id, idempotency_key, state, state_version, priority, attempt, max_attempts,
	executor, baseline_commit, spec, created_at, updated_at, started_at, finished_at, expires_at,
	lease_owner, lease_expires_at, heartbeat_at, reason_code, summary, input_tokens, output_tokens,
	cached_input_tokens, cost_usd, session_id, parent_job_id, project, host`

// liveJob selects the jobs that are not terminal; the partial unique
// index jobs_idempotency_live_idx has the same predicate.
const liveJob = `state NOT IN ('SUCCEEDED', 'FAILED', 'CANCELED', 'EXPIRED')`

// args numbers query parameters.
type args []any

// add appends v and returns its placeholder.
func (a *args) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

func scanJob(row pgx.Row) (*relaytype.Job, error) {
	var (
		j                                      relaytype.Job
		prio                                   int
		spec                                   []byte
		created, updated, expires              int64
		started, finished, leaseExp, heartbeat *int64
		leaseOwner, reason, summary            *string
		session, parent                        *string
		in, out, cached                        int64
	)
	if err := row.Scan(&j.ID, &j.IdempotencyKey, &j.State, &j.StateVersion, &prio, &j.Attempt, &j.MaxAttempts,
		&j.Executor, &j.BaselineCommit, &spec, &created, &updated, &started, &finished, &expires,
		&leaseOwner, &leaseExp, &heartbeat, &reason, &summary, &in, &out,
		&cached, &j.Usage.CostUSD, &session, &parent, &j.Project, &j.Host); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(spec, &j.Spec); err != nil {
		return nil, fmt.Errorf("decode spec of job %s: %w", j.ID, err)
	}
	j.Usage.InputTokens, j.Usage.OutputTokens, j.Usage.CachedInputTokens = int(in), int(out), int(cached)
	j.Priority = relaytype.PriorityFromRank(prio)
	j.CreatedAt, j.UpdatedAt, j.ExpiresAt = fromMS(created), fromMS(updated), fromMS(expires)
	j.StartedAt, j.FinishedAt = optTime(started), optTime(finished)
	j.LeaseExpiresAt, j.HeartbeatAt = optTime(leaseExp), optTime(heartbeat)
	j.LeaseOwner, j.ReasonCode, j.Summary = str(leaseOwner), relaytype.FailReason(str(reason)), str(summary)
	j.SessionID, j.ParentJobID = str(session), str(parent)
	return &j, nil
}

// getJob reads a job; lock takes its row lock (FOR UPDATE) for the rest
// of the transaction q.
func getJob(ctx context.Context, q querier, id string, lock bool) (*relaytype.Job, error) {
	query := `SELECT ` + jobColumns + ` FROM jobs WHERE id = $1`
	if lock {
		query += ` FOR UPDATE`
	}
	j, err := scanJob(q.QueryRow(ctx, query, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("job %s: %w", id, relaytype.ErrJobNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	return j, nil
}

// lockJob reads a job under its row lock.
func lockJob(ctx context.Context, tx *txn, id string) (*relaytype.Job, error) {
	return getJob(ctx, tx, id, true)
}

func collectJobs(rows pgx.Rows) ([]*relaytype.Job, error) {
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

// appendEvent appends event ev at now. The caller holds the job's row
// lock (or inserted the job in tx), which keeps the job's event ids in
// commit order.
func appendEvent(ctx context.Context, tx *txn, ev jobstate.Event, now time.Time) (*relaytype.Event, error) {
	raw, err := ev.Encode()
	if err != nil {
		return nil, err
	}
	var payloadArg any
	if len(raw) > 0 {
		payloadArg = string(raw)
	} else {
		raw = nil
	}
	var id int64
	if err := tx.QueryRow(ctx, `INSERT INTO job_events (job_id, ts, type, payload) VALUES ($1, $2, $3, $4) RETURNING id`,
		ev.JobID, ms(now), ev.Type, payloadArg).Scan(&id); err != nil {
		return nil, fmt.Errorf("append %s event: %w", ev.Type, err)
	}
	return &relaytype.Event{ID: id, JobID: ev.JobID, Time: dbTime(now), Type: ev.Type, Payload: raw}, nil
}

// findReused returns the stored job a submit p returns instead of
// inserting one (jobstate.Reuses), or nil. The query narrows the lookup
// to the candidates of that rule (the newest job with the key that is not
// terminal or SUCCEEDED within the window); the rule decides.
func findReused(ctx context.Context, tx *txn, p *store.JobInsertParams) (*relaytype.Job, error) {
	since := ms(p.Now.Add(-p.IdempotencyWindow))
	existing, err := scanJob(tx.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs
		WHERE idempotency_key = $1 AND project = $2
		  AND (`+liveJob+` OR (state = 'SUCCEEDED' AND finished_at >= $3))
		ORDER BY seq DESC LIMIT 1`, p.Spec.IdempotencyKey, p.Project, since))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("idempotency lookup: %w", err)
	}
	if !jobstate.Reuses(existing, p) {
		return nil, nil
	}
	return existing, nil
}

// insertRetries bounds how often a submit that lost a race to a job that
// ended at once looks again.
const insertRetries = 5

// JobInsert implements store.Store.
func (s *Store) JobInsert(ctx context.Context, p *store.JobInsertParams) (*relaytype.Job, bool, error) {
	q := *p
	q.Now = dbTime(p.Now)
	j, ev := jobstate.NewJob(&q)
	spec, err := json.Marshal(j.Spec)
	if err != nil {
		return nil, false, fmt.Errorf("encode spec: %w", err)
	}
	var (
		job     *relaytype.Job
		created bool
	)
	err = s.inTx(ctx, func(tx *txn) error {
		job, created = nil, false
		for range insertRetries {
			existing, err := findReused(ctx, tx, &q)
			if err != nil {
				return err
			}
			if existing != nil {
				job = existing
				return nil
			}
			// A concurrent submit of the key that committed first makes
			// this insert a no-op (after waiting for its commit); the
			// next lookup, a fresh snapshot, finds its job.
			tag, err := tx.Exec(ctx, `INSERT INTO jobs (id, idempotency_key, state, state_version, priority,
				attempt, max_attempts, executor, baseline_commit, spec, created_at, updated_at, expires_at, parent_job_id,
				project, host)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
				ON CONFLICT (project, idempotency_key) WHERE `+liveJob+` DO NOTHING`,
				j.ID, j.IdempotencyKey, string(j.State), j.StateVersion, j.Priority.Rank(), j.Attempt, j.MaxAttempts,
				j.Executor, j.BaselineCommit, string(spec), ms(j.CreatedAt), ms(j.UpdatedAt), ms(j.ExpiresAt),
				nullString(j.ParentJobID), j.Project, j.Host)
			if err != nil {
				return fmt.Errorf("insert job: %w", err)
			}
			if tag.RowsAffected() == 0 {
				continue
			}
			if _, err := appendEvent(ctx, tx, ev, q.Now); err != nil {
				return err
			}
			tx.notify(store.Notification{Kind: store.NotifyJob, JobID: j.ID, State: j.State, StateVersion: j.StateVersion})
			job, err = getJob(ctx, tx, j.ID, false)
			created = true
			return err
		}
		return fmt.Errorf("insert job %s: idempotency key %q kept changing hands", p.ID, p.Spec.IdempotencyKey)
	})
	if err != nil {
		return nil, false, err
	}
	return job, created, nil
}

// JobGet implements store.Store.
func (s *Store) JobGet(ctx context.Context, p *store.JobGetParams) (*relaytype.Job, error) {
	return getJob(ctx, s.pool, p.ID, false)
}

// JobList implements store.Store.
func (s *Store) JobList(ctx context.Context, p *store.JobListParams) ([]*relaytype.Job, int, error) {
	var (
		conds []string
		a     args
	)
	if p.State != "" {
		conds = append(conds, "state = "+a.add(string(p.State)))
	}
	if p.Project != nil {
		conds = append(conds, "project = "+a.add(*p.Project))
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM jobs`+where, a...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count jobs: %w", err)
	}
	query := `SELECT ` + jobColumns + ` FROM jobs` + where + ` ORDER BY seq DESC`
	if p.Limit > 0 {
		query += ` LIMIT ` + a.add(p.Limit)
	}
	query += ` OFFSET ` + a.add(max(p.Offset, 0))
	rows, err := s.pool.Query(ctx, query, a...)
	if err != nil {
		return nil, 0, fmt.Errorf("list jobs: %w", err)
	}
	jobs, err := collectJobs(rows)
	return jobs, total, err
}

// JobTransition implements store.Store.
func (s *Store) JobTransition(ctx context.Context, p *store.JobTransitionParams) (*relaytype.Job, error) {
	var out *relaytype.Job
	err := s.inTx(ctx, func(tx *txn) error {
		j, err := lockJob(ctx, tx, p.ID)
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
	q := *p
	q.Now = dbTime(p.Now)
	var out *relaytype.Job
	err := s.inTx(ctx, func(tx *txn) error {
		snap, err := lockSnapshot(ctx, tx, p.ID)
		if err != nil {
			return err
		}
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
	now := dbTime(p.Now)
	// The jobs jobstate.Claimable and ClaimableBy accept. Every condition
	// is a plain comparison of a column, so that the planner walks
	// jobs_claim_idx in (priority, seq) order and filters as it goes.
	var a args
	query := `SELECT ` + jobColumns + ` FROM jobs
		WHERE state = 'QUEUED' AND expires_at > ` + a.add(ms(now)) + ` AND attempt < max_attempts`
	if p.Projects != nil {
		// A relay that serves only some projects leaves the others'
		// jobs to the relays that have their executors.
		query += ` AND project = ANY(` + a.add(p.Projects) + `)`
	}
	if p.Executors != nil {
		query += ` AND executor = ANY(` + a.add(p.Executors) + `)`
	}
	// A job bound to a host (a local repository) is left to its host.
	if p.Host == "" {
		query += ` AND host = ''`
	} else {
		query += ` AND host IN ('', ` + a.add(p.Host) + `)`
	}
	// Rows another claimer holds are skipped, not waited for.
	query += ` ORDER BY priority, seq LIMIT ` + a.add(p.Limit) + ` FOR UPDATE SKIP LOCKED`
	var out []*relaytype.Job
	err := s.inTx(ctx, func(tx *txn) error {
		out = nil
		rows, err := tx.Query(ctx, query, a...)
		if err != nil {
			return fmt.Errorf("select claimable jobs: %w", err)
		}
		jobs, err := collectJobs(rows)
		if err != nil {
			return err
		}
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
			if err := applyChange(ctx, tx, c, now); err != nil {
				return err
			}
			out = append(out, c.Job)
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
	q := *p
	q.Now = dbTime(p.Now)
	var out *relaytype.Job
	err := s.inTx(ctx, func(tx *txn) error {
		j, err := lockJob(ctx, tx, p.ID)
		if err != nil {
			return err
		}
		n, err := jobstate.Heartbeat(j, &q)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE jobs SET lease_expires_at = $1, heartbeat_at = $2 WHERE id = $3`,
			optMS(n.LeaseExpiresAt), optMS(n.HeartbeatAt), n.ID); err != nil {
			return fmt.Errorf("heartbeat job %s: %w", p.ID, err)
		}
		out = n
		return nil
	})
	return out, err
}

// JobRescue implements store.Store.
func (s *Store) JobRescue(ctx context.Context, p *store.JobRescueParams) ([]*relaytype.Job, error) {
	var out []*relaytype.Job
	err := s.inTx(ctx, func(tx *txn) (err error) {
		// The jobs jobstate.Rescuable accepts; a job another transaction
		// is changing is left to the next sweep.
		out, err = sweep(ctx, tx, "select lapsed leases", `SELECT `+jobColumns+` FROM jobs
			WHERE (state IN ('RUNNING', 'WAITING_ON_ANSWER') AND lease_expires_at <= $1) OR state = 'STALE'
			ORDER BY seq FOR UPDATE SKIP LOCKED`, dbTime(p.Now), jobstate.Rescuable, jobstate.Rescue)
		return err
	})
	return out, err
}

// JobExpire implements store.Store.
func (s *Store) JobExpire(ctx context.Context, p *store.JobExpireParams) ([]*relaytype.Job, error) {
	var out []*relaytype.Job
	err := s.inTx(ctx, func(tx *txn) (err error) {
		// The jobs jobstate.Expired accepts.
		out, err = sweep(ctx, tx, "select expired jobs", `SELECT `+jobColumns+` FROM jobs
			WHERE state = 'QUEUED' AND expires_at <= $1 ORDER BY seq FOR UPDATE SKIP LOCKED`,
			dbTime(p.Now), jobstate.Expired, jobstate.ExpireAll)
		return err
	})
	return out, err
}

// sweep selects jobs with query (its $1 is now), keeps those keep accepts
// and writes what decide makes of each; it returns the jobs as they end.
func sweep(ctx context.Context, tx *txn, what, query string, now time.Time,
	keep func(*relaytype.Job, time.Time) bool, decide func(jobstate.Snapshot, time.Time) ([]*jobstate.Change, error)) ([]*relaytype.Job, error) {
	rows, err := tx.Query(ctx, query, ms(now))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	jobs, err := collectJobs(rows)
	if err != nil {
		return nil, err
	}
	var out []*relaytype.Job
	for _, j := range jobs {
		if !keep(j, now) {
			continue
		}
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
	// The earliest jobstate.WakeAt of any job, in one query.
	var next *int64
	err := s.pool.QueryRow(ctx, `SELECT min(t) FROM (
		SELECT min(expires_at) AS t FROM jobs WHERE state = 'QUEUED'
		UNION ALL
		SELECT min(lease_expires_at) FROM jobs WHERE state IN ('RUNNING', 'WAITING_ON_ANSWER')
		UNION ALL
		SELECT min(updated_at) FROM jobs WHERE state = 'STALE') AS wake`).Scan(&next)
	if err != nil {
		return time.Time{}, fmt.Errorf("next wake: %w", err)
	}
	if next == nil {
		return time.Time{}, nil
	}
	return fromMS(*next), nil
}
