package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
)

const outboxColumns = `id, job_id, project, kind, target, payload, status, attempts, created_at,
	next_attempt_at, lease_owner, lease_expires_at, last_error, done_at`

func scanOutbox(row pgx.Row) (*store.OutboxMessage, error) {
	var (
		m                     store.OutboxMessage
		jobID, owner, lastErr *string
		payload               []byte
		created, next         int64
		leaseExp, done        *int64
	)
	if err := row.Scan(&m.ID, &jobID, &m.Project, &m.Kind, &m.Target, &payload, &m.Status, &m.Attempts, &created,
		&next, &owner, &leaseExp, &lastErr, &done); err != nil {
		return nil, err
	}
	m.JobID, m.LeaseOwner, m.LastError = str(jobID), str(owner), str(lastErr)
	m.Payload = payload
	m.CreatedAt, m.NextAttemptAt = fromMS(created), fromMS(next)
	m.LeaseExpiresAt, m.DoneAt = optTime(leaseExp), optTime(done)
	return &m, nil
}

func collectOutbox(rows pgx.Rows) ([]*store.OutboxMessage, error) {
	defer rows.Close()
	var out []*store.OutboxMessage
	for rows.Next() {
		m, err := scanOutbox(rows)
		if err != nil {
			return nil, fmt.Errorf("scan outbox message: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return out, nil
}

// insertOutbox stores m as PENDING and due at now unless its ID is
// stored already; it reports whether it inserted.
func insertOutbox(ctx context.Context, tx *txn, m *store.OutboxMessage, now time.Time) (bool, error) {
	if m.ID == "" || m.Kind == "" || m.Target == "" {
		return false, errors.New("outbox message needs an id, a kind and a target")
	}
	payload := string(m.Payload)
	if payload == "" {
		payload = "null"
	}
	tag, err := tx.Exec(ctx, `INSERT INTO outbox (id, job_id, project, kind, target, payload, status, attempts,
		created_at, updated_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, 'PENDING', 0, $7, $7, $7)
		ON CONFLICT (id) DO NOTHING`,
		m.ID, nullString(m.JobID), m.Project, m.Kind, m.Target, payload, ms(now))
	if err != nil {
		return false, fmt.Errorf("enqueue outbox message %s: %w", m.ID, err)
	}
	if tag.RowsAffected() != 1 {
		return false, nil
	}
	tx.notify(store.Notification{Kind: store.NotifyOutbox, JobID: m.JobID})
	return true, nil
}

func getOutbox(ctx context.Context, q querier, id string) (*store.OutboxMessage, error) {
	m, err := scanOutbox(q.QueryRow(ctx, `SELECT `+outboxColumns+` FROM outbox WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("outbox message %s: %w", id, store.ErrOutboxNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get outbox message %s: %w", id, err)
	}
	return m, nil
}

// OutboxEnqueue implements store.Store.
func (s *Store) OutboxEnqueue(ctx context.Context, p *store.OutboxEnqueueParams) (*store.OutboxMessage, bool, error) {
	var (
		out     *store.OutboxMessage
		created bool
	)
	err := s.inTx(ctx, func(tx *txn) error {
		var err error
		if created, err = insertOutbox(ctx, tx, p.Message, p.Now); err != nil {
			return err
		}
		out, err = getOutbox(ctx, tx, p.Message.ID)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return out, created, nil
}

// OutboxClaim implements store.Store.
func (s *Store) OutboxClaim(ctx context.Context, p *store.OutboxClaimParams) ([]*store.OutboxMessage, error) {
	if p.Limit <= 0 || (p.Projects != nil && len(p.Projects) == 0) {
		return nil, nil
	}
	if p.Owner == "" || p.LeaseTTL <= 0 {
		return nil, errors.New("claim outbox messages: an owner and a lease TTL are required")
	}
	var a args
	now := a.add(ms(p.Now))
	query := `SELECT seq FROM outbox WHERE status = 'PENDING' AND next_attempt_at <= ` + now + `
		AND (lease_expires_at IS NULL OR lease_expires_at <= ` + now + `)`
	if p.Projects != nil {
		query += ` AND project = ANY(` + a.add(p.Projects) + `)`
	}
	if len(p.Kinds) > 0 {
		query += ` AND kind = ANY(` + a.add(p.Kinds) + `)`
	}
	// Messages another deliverer is claiming are skipped, not waited for.
	query += ` ORDER BY next_attempt_at, seq LIMIT ` + a.add(p.Limit) + ` FOR UPDATE SKIP LOCKED`
	update := `WITH due AS (` + query + `)
		UPDATE outbox SET attempts = attempts + 1, lease_owner = ` + a.add(p.Owner) + `,
			lease_expires_at = ` + a.add(ms(p.Now.Add(p.LeaseTTL))) + `, updated_at = ` + now + `
		FROM due WHERE outbox.seq = due.seq
		RETURNING outbox.seq, ` + prefixed("outbox.", outboxColumns)
	type claimed struct {
		seq int64
		m   *store.OutboxMessage
	}
	var out []claimed
	err := s.inTx(ctx, func(tx *txn) error {
		out = nil
		rows, err := tx.Query(ctx, update, a...)
		if err != nil {
			return fmt.Errorf("claim outbox messages: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var c claimed
			c.m, err = scanOutbox(seqRow{rows, &c.seq})
			if err != nil {
				return fmt.Errorf("scan outbox message: %w", err)
			}
			out = append(out, c)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("claim outbox messages: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// RETURNING has no order: oldest due first, as selected.
	slices.SortFunc(out, func(x, y claimed) int {
		return cmp.Or(x.m.NextAttemptAt.Compare(y.m.NextAttemptAt), cmp.Compare(x.seq, y.seq))
	})
	msgs := make([]*store.OutboxMessage, len(out))
	for i, c := range out {
		msgs[i] = c.m
	}
	return msgs, nil
}

// seqRow scans a leading seq column into seq and the rest as a row.
type seqRow struct {
	row pgx.Row
	seq *int64
}

func (r seqRow) Scan(dest ...any) error { return r.row.Scan(append([]any{r.seq}, dest...)...) }

// prefixed qualifies each of the comma-separated columns with prefix.
func prefixed(prefix, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = prefix + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

// settleOutbox applies one change to a PENDING message leased to owner.
func (s *Store) settleOutbox(ctx context.Context, id, owner, what, set string, setArgs ...any) error {
	return s.inTx(ctx, func(tx *txn) error {
		a := args(setArgs)
		tag, err := tx.Exec(ctx, `UPDATE outbox SET `+set+`, lease_owner = NULL, lease_expires_at = NULL
			WHERE id = `+a.add(id)+` AND status = 'PENDING' AND lease_owner = `+a.add(owner), a...)
		if err != nil {
			return fmt.Errorf("%s outbox message %s: %w", what, id, err)
		}
		if tag.RowsAffected() == 1 {
			return nil
		}
		m, err := getOutbox(ctx, tx, id)
		if err != nil {
			return err
		}
		return fmt.Errorf("%s outbox message %s (%s, leased to %q, not %q): %w", what, id, m.Status, m.LeaseOwner, owner,
			store.ErrOutboxLeaseLost)
	})
}

// OutboxAck implements store.Store.
func (s *Store) OutboxAck(ctx context.Context, p *store.OutboxAckParams) error {
	return s.settleOutbox(ctx, p.ID, p.Owner, "acknowledge",
		`status = 'DELIVERED', done_at = $1, updated_at = $1, last_error = NULL`, ms(p.Now))
}

// OutboxRetry implements store.Store.
func (s *Store) OutboxRetry(ctx context.Context, p *store.OutboxRetryParams) error {
	return s.settleOutbox(ctx, p.ID, p.Owner, "retry",
		`next_attempt_at = $1, last_error = $2, updated_at = $3`, ms(p.NextAttemptAt), nullString(p.Error), ms(p.Now))
}

// OutboxGiveUp implements store.Store.
func (s *Store) OutboxGiveUp(ctx context.Context, p *store.OutboxGiveUpParams) error {
	return s.settleOutbox(ctx, p.ID, p.Owner, "give up",
		`status = 'EXPIRED', done_at = $1, last_error = $2, updated_at = $1`, ms(p.Now), nullString(p.Error))
}

// OutboxList implements store.Store.
func (s *Store) OutboxList(ctx context.Context, p *store.OutboxListParams) ([]*store.OutboxMessage, error) {
	var (
		conds []string
		a     args
	)
	if p.JobID != "" {
		conds = append(conds, "job_id = "+a.add(p.JobID))
	}
	if p.Status != "" {
		conds = append(conds, "status = "+a.add(string(p.Status)))
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	limit := p.Limit
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.pool.Query(ctx, `SELECT `+outboxColumns+` FROM outbox`+where+` ORDER BY seq LIMIT `+a.add(limit), a...)
	if err != nil {
		return nil, fmt.Errorf("list outbox: %w", err)
	}
	return collectOutbox(rows)
}

// OutboxNextDue implements store.Store.
func (s *Store) OutboxNextDue(ctx context.Context) (time.Time, error) {
	var next *int64
	err := s.pool.QueryRow(ctx, `SELECT min(greatest(next_attempt_at, coalesce(lease_expires_at, 0)))
		FROM outbox WHERE status = 'PENDING'`).Scan(&next)
	if err != nil {
		return time.Time{}, fmt.Errorf("next outbox due time: %w", err)
	}
	if next == nil {
		return time.Time{}, nil
	}
	return fromMS(*next), nil
}
