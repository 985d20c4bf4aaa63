package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
)

var _ store.Registry = (*Store)(nil)

// RelayUpsert implements store.Registry.
func (s *Store) RelayUpsert(ctx context.Context, r *store.RelayRecord) error {
	if r.ID == "" {
		return errors.New("record relay: an id is required")
	}
	projects, err := jsonArg(r.Projects)
	if err != nil {
		return fmt.Errorf("record relay %s: %w", r.ID, err)
	}
	executors, err := jsonArg(r.Executors)
	if err != nil {
		return fmt.Errorf("record relay %s: %w", r.ID, err)
	}
	return s.inTx(ctx, func(ctx context.Context, tx *wtx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO relays (id, host, data_dir, instance, version, projects, executors,
			started_at, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET host = excluded.host, data_dir = excluded.data_dir, instance = excluded.instance,
				version = excluded.version, projects = excluded.projects, executors = excluded.executors,
				started_at = excluded.started_at, seen_at = excluded.seen_at`,
			r.ID, r.Host, r.DataDir, r.Instance, r.Version, projects, executors, ms(r.StartedAt), ms(r.SeenAt)); err != nil {
			return fmt.Errorf("record relay %s: %w", r.ID, err)
		}
		return nil
	})
}

// RelayList implements store.Registry.
func (s *Store) RelayList(ctx context.Context) ([]*store.RelayRecord, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT id, host, data_dir, instance, version, projects, executors,
		started_at, seen_at FROM relays ORDER BY seen_at DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("list relays: %w", err)
	}
	defer rows.Close()
	var out []*store.RelayRecord
	for rows.Next() {
		var (
			r                   store.RelayRecord
			projects, executors []byte
			started, seen       int64
		)
		if err := rows.Scan(&r.ID, &r.Host, &r.DataDir, &r.Instance, &r.Version, &projects, &executors, &started, &seen); err != nil {
			return nil, fmt.Errorf("scan relay: %w", err)
		}
		if r.Projects, err = store.ParseRelayList(projects); err != nil {
			return nil, fmt.Errorf("decode projects of relay %s: %w", r.ID, err)
		}
		if r.Executors, err = store.ParseRelayList(executors); err != nil {
			return nil, fmt.Errorf("decode executors of relay %s: %w", r.ID, err)
		}
		r.StartedAt, r.SeenAt = fromMS(started), fromMS(seen)
		out = append(out, &r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read relays: %w", err)
	}
	return out, nil
}
