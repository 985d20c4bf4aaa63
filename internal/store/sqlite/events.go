package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/jobstate"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// EventAppend implements store.Store.
func (s *Store) EventAppend(ctx context.Context, p *store.EventAppendParams) (*relaytype.Event, error) {
	var ev *relaytype.Event
	err := s.inTx(ctx, func(ctx context.Context, tx *wtx) error {
		j, err := getJob(ctx, tx, p.JobID)
		if err != nil {
			return err
		}
		if err := jobstate.Fence(j, p.Owner, p.Attempt); err != nil {
			return fmt.Errorf("append %s event: %w", p.Type, err)
		}
		ev, err = appendEvent(ctx, tx, jobstate.Event{JobID: p.JobID, Type: p.Type, Payload: p.Payload}, p.Now)
		return err
	})
	return ev, err
}

// EventList implements store.Store.
func (s *Store) EventList(ctx context.Context, p *store.EventListParams) ([]*relaytype.Event, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT id, job_id, ts, type, payload FROM job_events
		WHERE job_id = ? AND id > ? ORDER BY id LIMIT ?`, p.JobID, p.AfterID, limit)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var out []*relaytype.Event
	for rows.Next() {
		var (
			e       relaytype.Event
			ts      int64
			payload sql.NullString
		)
		if err := rows.Scan(&e.ID, &e.JobID, &ts, &e.Type, &payload); err != nil {
			return nil, fmt.Errorf("scan event: %w", err)
		}
		e.Time = fromMS(ts)
		if payload.Valid {
			e.Payload = []byte(payload.String)
		}
		out = append(out, &e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}

// putArtifact stores an artifact a rule returned (JobID and CreatedAt
// set), replacing the job's artifact of that kind.
func putArtifact(ctx context.Context, tx *wtx, a *relaytype.Artifact) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO artifacts (job_id, kind, uri, digest, size, created_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (job_id, kind) DO UPDATE SET uri = excluded.uri, digest = excluded.digest,
			size = excluded.size, created_at = excluded.created_at`,
		a.JobID, string(a.Kind), a.URI, a.Digest, a.Size, ms(a.CreatedAt)); err != nil {
		return fmt.Errorf("store artifact %s: %w", a.Kind, err)
	}
	return nil
}

const artifactColumns = `job_id, kind, uri, digest, size, created_at`

func scanArtifact(row interface{ Scan(...any) error }) (*relaytype.Artifact, error) {
	var (
		a  relaytype.Artifact
		ts int64
	)
	if err := row.Scan(&a.JobID, &a.Kind, &a.URI, &a.Digest, &a.Size, &ts); err != nil {
		return nil, err
	}
	a.CreatedAt = fromMS(ts)
	return &a, nil
}

// ArtifactList implements store.Store.
func (s *Store) ArtifactList(ctx context.Context, p *store.ArtifactListParams) ([]*relaytype.Artifact, error) {
	return listArtifacts(ctx, s.reader, p.JobID)
}

// listArtifacts returns a job's artifacts ordered by kind, read through q
// (the reader pool, or a transaction that just stored some).
func listArtifacts(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, jobID string) ([]*relaytype.Artifact, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+artifactColumns+` FROM artifacts WHERE job_id = ? ORDER BY kind`, jobID)
	if err != nil {
		return nil, fmt.Errorf("list artifacts: %w", err)
	}
	defer rows.Close()
	var out []*relaytype.Artifact
	for rows.Next() {
		a, err := scanArtifact(rows)
		if err != nil {
			return nil, fmt.Errorf("scan artifact: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read artifacts: %w", err)
	}
	return out, nil
}

// ArtifactGet implements store.Store.
func (s *Store) ArtifactGet(ctx context.Context, p *store.ArtifactGetParams) (*relaytype.Artifact, error) {
	a, err := scanArtifact(s.reader.QueryRowContext(ctx, `SELECT `+artifactColumns+` FROM artifacts WHERE job_id = ? AND kind = ?`,
		p.JobID, string(p.Kind)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("artifact %s of job %s: %w", p.Kind, p.JobID, relaytype.ErrArtifactNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get artifact: %w", err)
	}
	return a, nil
}
