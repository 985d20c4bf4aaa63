package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/internal/store/jobstate"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

const askColumns = `ask_id, job_id, step_id, ask_type, prompt, context_hash, context_envelope, constraints,
	role_id, meta, status, route, created_at, deadline_at, answered_at, payload_hash, attempt`

// askRow is what the store keeps of an ask beyond its record.
type askRow struct {
	// payloadHash identifies the posted payload for idempotency.
	payloadHash string
	// attempt is the attempt of the job that posted the ask.
	attempt int
}

// jsonArg encodes v as a JSON parameter, nil (NULL) for a nil or empty
// value.
func jsonArg(v any) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		if len(x) == 0 {
			return nil, nil
		}
		return string(x), nil
	case []string:
		// A relay's projects or executors: NULL for nil (any).
		if x == nil {
			return nil, nil
		}
	case *relaytype.AskConstraints:
		if x == nil {
			return nil, nil
		}
	case *relaytype.AskMeta:
		if x == nil {
			return nil, nil
		}
	case *relaytype.Attestation:
		if x == nil {
			return nil, nil
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func scanAsk(row pgx.Row) (*relaytype.AskRecord, askRow, error) {
	var (
		a                 relaytype.AskRecord
		envelope          []byte
		constraints, meta []byte
		role              *string
		created, deadline int64
		answered          *int64
		extra             askRow
	)
	if err := row.Scan(&a.AskID, &a.JobID, &a.StepID, &a.AskType, &a.Prompt, &a.ContextHash, &envelope,
		&constraints, &role, &meta, &a.Status, &a.Route, &created, &deadline, &answered, &extra.payloadHash,
		&extra.attempt); err != nil {
		return nil, askRow{}, err
	}
	a.ContextEnvelope = json.RawMessage(envelope)
	if constraints != nil {
		a.Constraints = &relaytype.AskConstraints{}
		if err := json.Unmarshal(constraints, a.Constraints); err != nil {
			return nil, askRow{}, fmt.Errorf("decode constraints of ask %s: %w", a.AskID, err)
		}
	}
	if meta != nil {
		a.Meta = &relaytype.AskMeta{}
		if err := json.Unmarshal(meta, a.Meta); err != nil {
			return nil, askRow{}, fmt.Errorf("decode meta of ask %s: %w", a.AskID, err)
		}
	}
	a.RoleID = str(role)
	a.CreatedAt, a.DeadlineAt, a.AnsweredAt = fromMS(created), fromMS(deadline), optTime(answered)
	a.Attempt = extra.attempt
	return &a, extra, nil
}

func getAsk(ctx context.Context, q querier, id string) (*relaytype.AskRecord, askRow, error) {
	a, extra, err := scanAsk(q.QueryRow(ctx, `SELECT `+askColumns+` FROM asks WHERE ask_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, askRow{}, fmt.Errorf("ask %s: %w", id, relaytype.ErrAskNotFound)
	}
	if err != nil {
		return nil, askRow{}, fmt.Errorf("get ask %s: %w", id, err)
	}
	return a, extra, nil
}

// storedAsk returns ask id as the rules see it, nil when it is not
// stored.
func storedAsk(ctx context.Context, q querier, id string) (*jobstate.StoredAsk, error) {
	a, row, err := getAsk(ctx, q, id)
	if errors.Is(err, relaytype.ErrAskNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &jobstate.StoredAsk{Record: a, PayloadHash: row.payloadHash, Attempt: row.attempt}, nil
}

// lockAskJob locks the job of ask id and then reads the ask: asks change
// only under their job's row lock, so the ask read is current.
func lockAskJob(ctx context.Context, tx *txn, id string) (*jobstate.StoredAsk, jobstate.Snapshot, error) {
	a, _, err := getAsk(ctx, tx, id)
	if err != nil {
		return nil, jobstate.Snapshot{}, err
	}
	snap, err := lockSnapshot(ctx, tx, a.JobID)
	if err != nil {
		return nil, jobstate.Snapshot{}, err
	}
	ask, err := storedAsk(ctx, tx, id)
	if err != nil {
		return nil, jobstate.Snapshot{}, err
	}
	if ask == nil {
		return nil, jobstate.Snapshot{}, fmt.Errorf("ask %s: %w", id, relaytype.ErrAskNotFound)
	}
	return ask, snap, nil
}

// AskInsert implements store.Store.
func (s *Store) AskInsert(ctx context.Context, p *store.AskInsertParams) (*relaytype.AskRecord, bool, *relaytype.Job, error) {
	q := *p
	q.Now = dbTime(p.Now)
	var (
		out     *relaytype.AskRecord
		created bool
		job     *relaytype.Job
	)
	err := s.inTx(ctx, func(tx *txn) error {
		out, created, job = nil, false, nil
		// The snapshot is of the stored ask's job, else of the posted
		// one; under its lock the ask is read again as it is now.
		jobID := p.Ask.JobID
		existing, err := storedAsk(ctx, tx, p.Ask.AskID)
		if err != nil {
			return err
		}
		if existing != nil {
			jobID = existing.Record.JobID
		}
		snap, err := lockSnapshot(ctx, tx, jobID)
		if err != nil {
			return err
		}
		if existing, err = storedAsk(ctx, tx, p.Ask.AskID); err != nil {
			return err
		}
		o, err := jobstate.AskInsert(snap, existing, &q)
		if err != nil {
			return err
		}
		if o.Existing != nil {
			out, job = o.Existing, o.Job
			return nil
		}
		a := o.Insert.Record
		constraints, err := jsonArg(a.Constraints)
		if err != nil {
			return err
		}
		meta, err := jsonArg(a.Meta)
		if err != nil {
			return err
		}
		// A concurrent insert of the id for another job fails on the
		// primary key, which translate turns into ErrAskConflict.
		if _, err := tx.Exec(ctx, `INSERT INTO asks (ask_id, job_id, step_id, ask_type, prompt, context_hash,
			context_envelope, constraints, role_id, meta, status, route, created_at, deadline_at, payload_hash, attempt)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
			a.AskID, a.JobID, a.StepID, string(a.AskType), a.Prompt, a.ContextHash, string(a.ContextEnvelope),
			constraints, nullString(a.RoleID), meta, string(a.Status), a.Route, ms(a.CreatedAt), ms(a.DeadlineAt),
			o.Insert.PayloadHash, o.Insert.Attempt); err != nil {
			return fmt.Errorf("insert ask: %w", err)
		}
		tx.notify(store.Notification{Kind: store.NotifyAsk, JobID: a.JobID, AskID: a.AskID})
		if _, err := appendEvent(ctx, tx, o.Event, q.Now); err != nil {
			return err
		}
		if _, err := applyChanges(ctx, tx, o.Changes, q.Now); err != nil {
			return err
		}
		out, _, err = getAsk(ctx, tx, a.AskID)
		job, created = o.Job, true
		return err
	})
	if err != nil {
		return nil, false, nil, err
	}
	return out, created, job, nil
}

// AskGet implements store.Store.
func (s *Store) AskGet(ctx context.Context, p *store.AskGetParams) (*relaytype.AskRecord, error) {
	a, _, err := getAsk(ctx, s.pool, p.AskID)
	return a, err
}

func collectAsks(rows pgx.Rows) ([]*relaytype.AskRecord, error) {
	defer rows.Close()
	var out []*relaytype.AskRecord
	for rows.Next() {
		a, _, err := scanAsk(rows)
		if err != nil {
			return nil, fmt.Errorf("scan ask: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read asks: %w", err)
	}
	return out, nil
}

// AskList implements store.Store.
func (s *Store) AskList(ctx context.Context, p *store.AskListParams) ([]*relaytype.AskRecord, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.pool.Query(ctx, `SELECT `+askColumns+` FROM asks
		WHERE ($1 = '' OR job_id = $1) AND ($2 = '' OR status = $2)
		ORDER BY created_at, seq LIMIT $3`, p.JobID, string(p.Status), limit)
	if err != nil {
		return nil, fmt.Errorf("list asks: %w", err)
	}
	return collectAsks(rows)
}

// AskDue implements store.Store.
func (s *Store) AskDue(ctx context.Context, p *store.AskDueParams) ([]*relaytype.AskRecord, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT `+askColumns+` FROM asks
		WHERE status = 'PENDING' AND deadline_at <= $1 ORDER BY deadline_at, seq LIMIT $2`, ms(p.Now), limit)
	if err != nil {
		return nil, fmt.Errorf("due asks: %w", err)
	}
	return collectAsks(rows)
}

// AskNextDeadline implements store.Store.
func (s *Store) AskNextDeadline(ctx context.Context) (time.Time, error) {
	var next *int64
	if err := s.pool.QueryRow(ctx, `SELECT min(deadline_at) FROM asks WHERE status = 'PENDING'`).Scan(&next); err != nil {
		return time.Time{}, fmt.Errorf("next ask deadline: %w", err)
	}
	if next == nil {
		return time.Time{}, nil
	}
	return fromMS(*next), nil
}

// AskDefer implements store.Store.
func (s *Store) AskDefer(ctx context.Context, p *store.AskDeferParams) (*relaytype.AskRecord, *relaytype.Job, error) {
	q := *p
	q.Now = dbTime(p.Now)
	var (
		out *relaytype.AskRecord
		job *relaytype.Job
	)
	err := s.inTx(ctx, func(tx *txn) error {
		out, job = nil, nil
		ask, snap, err := lockAskJob(ctx, tx, p.AskID)
		if err != nil {
			return err
		}
		o, err := jobstate.Defer(ask.Record, &q)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE asks SET route = $1, deadline_at = $2 WHERE ask_id = $3`,
			o.Route, ms(o.DeadlineAt), p.AskID); err != nil {
			return fmt.Errorf("defer ask: %w", err)
		}
		tx.notify(store.Notification{Kind: store.NotifyAsk, JobID: ask.Record.JobID, AskID: p.AskID})
		if _, err := appendEvent(ctx, tx, o.Event, q.Now); err != nil {
			return err
		}
		job = snap.Job
		out, _, err = getAsk(ctx, tx, p.AskID)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return out, job, nil
}

const answerColumns = `ask_id, job_id, step_id, status, answer_text, answer_json, attestation, policy_trace,
	cacheable, ask_back, error, created_at, payload_hash, input_tokens, output_tokens`

func scanAnswer(row pgx.Row) (*relaytype.AnswerRecord, string, error) {
	var (
		a                      relaytype.AnswerRecord
		text, askBack, errText *string
		ajson, att, trace      []byte
		cacheable              *bool
		created                int64
		hash                   string
		in, out                int64
	)
	if err := row.Scan(&a.AskID, &a.JobID, &a.StepID, &a.Status, &text, &ajson, &att, &trace,
		&cacheable, &askBack, &errText, &created, &hash, &in, &out); err != nil {
		return nil, "", err
	}
	if in+out > 0 {
		a.Usage = &relaytype.Usage{InputTokens: int(in), OutputTokens: int(out)}
	}
	a.AnswerText, a.AskBack, a.Error = str(text), str(askBack), str(errText)
	if ajson != nil {
		a.AnswerJSON = json.RawMessage(ajson)
	}
	if trace != nil {
		a.PolicyTrace = json.RawMessage(trace)
	}
	if att != nil {
		a.Attestation = &relaytype.Attestation{}
		if err := json.Unmarshal(att, a.Attestation); err != nil {
			return nil, "", fmt.Errorf("decode attestation of %s: %w", a.AskID, err)
		}
	}
	a.Cacheable = cacheable
	a.CreatedAt = fromMS(created)
	return &a, hash, nil
}

func getAnswer(ctx context.Context, q querier, askID string) (*relaytype.AnswerRecord, string, error) {
	return scanAnswer(q.QueryRow(ctx, `SELECT `+answerColumns+` FROM answers WHERE ask_id = $1`, askID))
}

// AnswerInsert implements store.Store.
func (s *Store) AnswerInsert(ctx context.Context, p *store.AnswerInsertParams) (*relaytype.AnswerRecord, bool, *relaytype.Job, error) {
	q := *p
	q.Now = dbTime(p.Now)
	var o *jobstate.AnswerOutcome
	err := s.inTx(ctx, func(tx *txn) error {
		o = nil
		ask, snap, err := lockAskJob(ctx, tx, p.Answer.AskID)
		if err != nil {
			return err
		}
		var existing *jobstate.StoredAnswer
		rec, hash, err := getAnswer(ctx, tx, p.Answer.AskID)
		switch {
		case err == nil:
			existing = &jobstate.StoredAnswer{Record: rec, PayloadHash: hash}
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("get answer: %w", err)
		}
		if o, err = jobstate.Answer(snap, ask, existing, &q); err != nil {
			return err
		}
		if o.Write != nil {
			if err := applyAnswer(ctx, tx, o.Write, q.Now); err != nil {
				return err
			}
		}
		if _, err := applyChanges(ctx, tx, o.Changes, q.Now); err != nil {
			return err
		}
		if o.Created() {
			if o.Existing, _, err = getAnswer(ctx, tx, p.Answer.AskID); err != nil {
				return fmt.Errorf("get answer: %w", err)
			}
		}
		return nil
	})
	switch {
	case err != nil:
		return nil, false, nil, err
	case o.Refuse != nil:
		// The refusal's writes (closing a leftover ask) are committed.
		return nil, false, nil, o.Refuse
	}
	return o.Existing, o.Created(), o.Job, nil
}

// AnswerGet implements store.Store.
func (s *Store) AnswerGet(ctx context.Context, p *store.AnswerGetParams) (*relaytype.AnswerRecord, error) {
	a, _, err := getAnswer(ctx, s.pool, p.AskID)
	if err == nil {
		return a, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get answer: %w", err)
	}
	if _, _, err := getAsk(ctx, s.pool, p.AskID); err != nil {
		return nil, err
	}
	return nil, nil
}

// pendingAsks returns the PENDING asks of a job, oldest first.
func pendingAsks(ctx context.Context, tx *txn, jobID string) ([]*jobstate.StoredAsk, error) {
	rows, err := tx.Query(ctx, `SELECT `+askColumns+` FROM asks WHERE job_id = $1 AND status = 'PENDING'
		ORDER BY created_at, seq`, jobID)
	if err != nil {
		return nil, fmt.Errorf("pending asks: %w", err)
	}
	defer rows.Close()
	var out []*jobstate.StoredAsk
	for rows.Next() {
		a, x, err := scanAsk(rows)
		if err != nil {
			return nil, fmt.Errorf("scan ask: %w", err)
		}
		out = append(out, &jobstate.StoredAsk{Record: a, PayloadHash: x.payloadHash, Attempt: x.attempt})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read asks: %w", err)
	}
	return out, nil
}

// DecisionGet implements store.Store.
func (s *Store) DecisionGet(ctx context.Context, p *store.DecisionGetParams) (*relaytype.Answer, error) {
	var raw []byte
	err := s.pool.QueryRow(ctx, `UPDATE decision_cache SET hits = hits + 1
		WHERE decision_key = $1 AND expires_at > $2 RETURNING answer`, p.Key, ms(p.Now)).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("decision cache get: %w", err)
	}
	out := &relaytype.Answer{}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("decision cache decode: %w", err)
	}
	return out, nil
}

// DecisionPut implements store.Store.
func (s *Store) DecisionPut(ctx context.Context, p *store.DecisionPutParams) error {
	raw, err := json.Marshal(p.Answer)
	if err != nil {
		return fmt.Errorf("decision cache encode: %w", err)
	}
	return s.inTx(ctx, func(tx *txn) error {
		if _, err := tx.Exec(ctx, `DELETE FROM decision_cache WHERE expires_at <= $1`, ms(p.Now)); err != nil {
			return fmt.Errorf("decision cache prune: %w", err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO decision_cache (decision_key, answer, created_at, expires_at)
			VALUES ($1, $2, $3, $4)
			ON CONFLICT (decision_key) DO UPDATE SET answer = excluded.answer, created_at = excluded.created_at,
				expires_at = excluded.expires_at, hits = 0`, p.Key, string(raw), ms(p.Now), ms(p.ExpiresAt))
		if err != nil {
			return fmt.Errorf("decision cache put: %w", err)
		}
		return nil
	})
}
