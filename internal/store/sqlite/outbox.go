package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
)

const outboxColumns = `id, job_id, project, kind, target, payload, status, attempts, created_at,
	next_attempt_at, lease_owner, lease_expires_at, last_error, done_at`

func scanOutbox(row scanner) (*store.OutboxMessage, error) {
	var (
		m                     store.OutboxMessage
		jobID, owner, lastErr sql.NullString
		payload               string
		created, next         int64
		leaseExp, done        sql.NullInt64
	)
	if err := row.Scan(&m.ID, &jobID, &m.Project, &m.Kind, &m.Target, &payload, &m.Status, &m.Attempts, &created,
		&next, &owner, &leaseExp, &lastErr, &done); err != nil {
		return nil, err
	}
	m.JobID, m.LeaseOwner, m.LastError = jobID.String, owner.String, lastErr.String
	m.Payload = []byte(payload)
	m.CreatedAt, m.NextAttemptAt = fromMS(created), fromMS(next)
	m.LeaseExpiresAt, m.DoneAt = optTime(leaseExp), optTime(done)
	return &m, nil
}

func collectOutbox(rows *sql.Rows) ([]*store.OutboxMessage, error) {
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
func insertOutbox(ctx context.Context, tx *wtx, m *store.OutboxMessage, now time.Time) (bool, error) {
	if m.ID == "" || m.Kind == "" || m.Target == "" {
		return false, fmt.Errorf("outbox message needs an id, a kind and a target")
	}
	payload := string(m.Payload)
	if payload == "" {
		payload = "null"
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO outbox (id, job_id, project, kind, target, payload, status, attempts,
		created_at, updated_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, 'PENDING', 0, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`,
		m.ID, nullString(m.JobID), m.Project, m.Kind, m.Target, payload, ms(now), ms(now), ms(now))
	if err != nil {
		return false, fmt.Errorf("enqueue outbox message %s: %w", m.ID, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

func getOutbox(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id string) (*store.OutboxMessage, error) {
	m, err := scanOutbox(q.QueryRowContext(ctx, `SELECT `+outboxColumns+` FROM outbox WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
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
	err := s.inTx(ctx, func(ctx context.Context, tx *wtx) error {
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
	if p.Limit <= 0 {
		return nil, nil
	}
	if p.Owner == "" || p.LeaseTTL <= 0 {
		return nil, errors.New("claim outbox messages: an owner and a lease TTL are required")
	}
	var out []*store.OutboxMessage
	err := s.inTx(ctx, func(ctx context.Context, tx *wtx) error {
		now := ms(p.Now)
		query := `SELECT id FROM outbox WHERE status = 'PENDING' AND next_attempt_at <= ?
			AND (lease_expires_at IS NULL OR lease_expires_at <= ?)`
		args := []any{now, now}
		if p.Projects != nil {
			if len(p.Projects) == 0 {
				return nil
			}
			query += ` AND project IN (?` + strings.Repeat(`, ?`, len(p.Projects)-1) + `)`
			for _, pr := range p.Projects {
				args = append(args, pr)
			}
		}
		if len(p.Kinds) > 0 {
			query += ` AND kind IN (?` + strings.Repeat(`, ?`, len(p.Kinds)-1) + `)`
			for _, k := range p.Kinds {
				args = append(args, k)
			}
		}
		rows, err := tx.QueryContext(ctx, query+` ORDER BY next_attempt_at, seq LIMIT ?`, append(args, p.Limit)...)
		if err != nil {
			return fmt.Errorf("select due outbox messages: %w", err)
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("scan outbox id: %w", err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read due outbox messages: %w", err)
		}
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1, lease_owner = ?,
				lease_expires_at = ?, updated_at = ? WHERE id = ?`, p.Owner, ms(p.Now.Add(p.LeaseTTL)), now, id); err != nil {
				return fmt.Errorf("claim outbox message %s: %w", id, err)
			}
			m, err := getOutbox(ctx, tx, id)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// settleOutbox applies one change to a PENDING message leased to owner.
func (s *Store) settleOutbox(ctx context.Context, id, owner, what, set string, args ...any) error {
	return s.inTx(ctx, func(ctx context.Context, tx *wtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE outbox SET `+set+`, lease_owner = NULL, lease_expires_at = NULL
			WHERE id = ? AND status = 'PENDING' AND lease_owner = ?`, append(args, id, owner)...)
		if err != nil {
			return fmt.Errorf("%s outbox message %s: %w", what, id, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
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
		`status = 'DELIVERED', done_at = ?, updated_at = ?, last_error = NULL`, ms(p.Now), ms(p.Now))
}

// OutboxRetry implements store.Store.
func (s *Store) OutboxRetry(ctx context.Context, p *store.OutboxRetryParams) error {
	return s.settleOutbox(ctx, p.ID, p.Owner, "retry",
		`next_attempt_at = ?, last_error = ?, updated_at = ?`, ms(p.NextAttemptAt), nullString(p.Error), ms(p.Now))
}

// OutboxGiveUp implements store.Store.
func (s *Store) OutboxGiveUp(ctx context.Context, p *store.OutboxGiveUpParams) error {
	return s.settleOutbox(ctx, p.ID, p.Owner, "give up",
		`status = 'EXPIRED', done_at = ?, last_error = ?, updated_at = ?`, ms(p.Now), nullString(p.Error), ms(p.Now))
}

// OutboxList implements store.Store.
func (s *Store) OutboxList(ctx context.Context, p *store.OutboxListParams) ([]*store.OutboxMessage, error) {
	var conds []string
	var args []any
	if p.JobID != "" {
		conds, args = append(conds, "job_id = ?"), append(args, p.JobID)
	}
	if p.Status != "" {
		conds, args = append(conds, "status = ?"), append(args, string(p.Status))
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	limit := p.Limit
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT `+outboxColumns+` FROM outbox`+where+` ORDER BY seq LIMIT ?`,
		append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list outbox: %w", err)
	}
	return collectOutbox(rows)
}

// OutboxNextDue implements store.Store.
func (s *Store) OutboxNextDue(ctx context.Context) (time.Time, error) {
	var next sql.NullInt64
	err := s.reader.QueryRowContext(ctx, `SELECT min(max(next_attempt_at, coalesce(lease_expires_at, 0)))
		FROM outbox WHERE status = 'PENDING'`).Scan(&next)
	if err != nil {
		return time.Time{}, fmt.Errorf("next outbox due time: %w", err)
	}
	if !next.Valid {
		return time.Time{}, nil
	}
	return fromMS(next.Int64), nil
}
