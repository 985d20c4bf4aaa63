package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

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

type querier interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

func jsonArg(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch x := v.(type) {
	case json.RawMessage:
		if len(x) == 0 {
			return nil, nil
		}
		return string(x), nil
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
	case []string:
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

func scanAsk(row scanner) (*relaytype.AskRecord, askRow, error) {
	var (
		a                       relaytype.AskRecord
		envelope                string
		constraints, role, meta sql.NullString
		created, deadline       int64
		answered                sql.NullInt64
		extra                   askRow
	)
	if err := row.Scan(&a.AskID, &a.JobID, &a.StepID, &a.AskType, &a.Prompt, &a.ContextHash, &envelope,
		&constraints, &role, &meta, &a.Status, &a.Route, &created, &deadline, &answered, &extra.payloadHash,
		&extra.attempt); err != nil {
		return nil, askRow{}, err
	}
	a.ContextEnvelope = json.RawMessage(envelope)
	if constraints.Valid {
		a.Constraints = &relaytype.AskConstraints{}
		if err := json.Unmarshal([]byte(constraints.String), a.Constraints); err != nil {
			return nil, askRow{}, fmt.Errorf("decode constraints of ask %s: %w", a.AskID, err)
		}
	}
	if meta.Valid {
		a.Meta = &relaytype.AskMeta{}
		if err := json.Unmarshal([]byte(meta.String), a.Meta); err != nil {
			return nil, askRow{}, fmt.Errorf("decode meta of ask %s: %w", a.AskID, err)
		}
	}
	a.RoleID = role.String
	a.CreatedAt, a.DeadlineAt, a.AnsweredAt = fromMS(created), fromMS(deadline), optTime(answered)
	a.Attempt = extra.attempt
	return &a, extra, nil
}

func getAsk(ctx context.Context, q querier, id string) (*relaytype.AskRecord, askRow, error) {
	a, extra, err := scanAsk(q.QueryRowContext(ctx, `SELECT `+askColumns+` FROM asks WHERE ask_id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, askRow{}, fmt.Errorf("ask %s: %w", id, relaytype.ErrAskNotFound)
	}
	if err != nil {
		return nil, askRow{}, fmt.Errorf("get ask %s: %w", id, err)
	}
	return a, extra, nil
}

// AskInsert implements store.Store.
func (s *Store) AskInsert(ctx context.Context, p *store.AskInsertParams) (*relaytype.AskRecord, bool, *relaytype.Job, error) {
	var (
		out     *relaytype.AskRecord
		created bool
		job     *relaytype.Job
	)
	err := s.inTx(ctx, func(ctx context.Context, tx *wtx) error {
		a := p.Ask
		var existing *jobstate.StoredAsk
		jobID := a.JobID
		rec, row, err := getAsk(ctx, tx, a.AskID)
		switch {
		case err == nil:
			existing = &jobstate.StoredAsk{Record: rec, PayloadHash: row.payloadHash, Attempt: row.attempt}
			jobID = rec.JobID
		case !errors.Is(err, relaytype.ErrAskNotFound):
			return err
		}
		j, err := getJob(ctx, tx, jobID)
		if err != nil {
			return err
		}
		snap, err := snapshot(ctx, tx, j)
		if err != nil {
			return err
		}
		q := *p
		q.Now = dbTime(p.Now)
		o, err := jobstate.AskInsert(snap, existing, &q)
		if err != nil {
			return err
		}
		job = o.Job
		if o.Existing != nil {
			out = o.Existing
			return nil
		}
		n := o.Insert.Record
		constraints, err := jsonArg(n.Constraints)
		if err != nil {
			return err
		}
		meta, err := jsonArg(n.Meta)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO asks (ask_id, job_id, step_id, ask_type, prompt, context_hash,
			context_envelope, constraints, role_id, meta, status, route, created_at, deadline_at, payload_hash, attempt)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			n.AskID, n.JobID, n.StepID, string(n.AskType), n.Prompt, n.ContextHash, string(n.ContextEnvelope),
			constraints, nullString(n.RoleID), meta, string(n.Status), n.Route, ms(n.CreatedAt), ms(n.DeadlineAt),
			o.Insert.PayloadHash, o.Insert.Attempt); err != nil {
			return fmt.Errorf("insert ask: %w", err)
		}
		if _, err := appendEvent(ctx, tx, o.Event, q.Now); err != nil {
			return err
		}
		if _, err := applyChanges(ctx, tx, o.Changes, q.Now); err != nil {
			return err
		}
		out, _, err = getAsk(ctx, tx, a.AskID)
		created = true
		return err
	})
	if err != nil {
		return nil, false, nil, err
	}
	return out, created, job, nil
}

// AskGet implements store.Store.
func (s *Store) AskGet(ctx context.Context, p *store.AskGetParams) (*relaytype.AskRecord, error) {
	a, _, err := getAsk(ctx, s.reader, p.AskID)
	return a, err
}

func collectAsks(rows *sql.Rows) ([]*relaytype.AskRecord, error) {
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
	rows, err := s.reader.QueryContext(ctx, `SELECT `+askColumns+` FROM asks
		WHERE (? = '' OR job_id = ?) AND (? = '' OR status = ?)
		ORDER BY created_at, rowid LIMIT ?`, p.JobID, p.JobID, string(p.Status), string(p.Status), limit)
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
	rows, err := s.reader.QueryContext(ctx, `SELECT `+askColumns+` FROM asks
		WHERE status = 'PENDING' AND deadline_at <= ? ORDER BY deadline_at LIMIT ?`, ms(p.Now), limit)
	if err != nil {
		return nil, fmt.Errorf("due asks: %w", err)
	}
	return collectAsks(rows)
}

// AskNextDeadline implements store.Store.
func (s *Store) AskNextDeadline(ctx context.Context) (time.Time, error) {
	var next sql.NullInt64
	if err := s.reader.QueryRowContext(ctx, `SELECT min(deadline_at) FROM asks WHERE status = 'PENDING'`).Scan(&next); err != nil {
		return time.Time{}, fmt.Errorf("next ask deadline: %w", err)
	}
	if !next.Valid {
		return time.Time{}, nil
	}
	return fromMS(next.Int64), nil
}

// AskDefer implements store.Store.
func (s *Store) AskDefer(ctx context.Context, p *store.AskDeferParams) (*relaytype.AskRecord, *relaytype.Job, error) {
	var (
		out *relaytype.AskRecord
		job *relaytype.Job
	)
	err := s.inTx(ctx, func(ctx context.Context, tx *wtx) error {
		a, _, err := getAsk(ctx, tx, p.AskID)
		if err != nil {
			return err
		}
		d, err := jobstate.Defer(a, p)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE asks SET route = ?, deadline_at = ? WHERE ask_id = ?`,
			d.Route, ms(d.DeadlineAt), a.AskID); err != nil {
			return fmt.Errorf("defer ask: %w", err)
		}
		if _, err := appendEvent(ctx, tx, d.Event, p.Now); err != nil {
			return err
		}
		if job, err = getJob(ctx, tx, a.JobID); err != nil {
			return err
		}
		out, _, err = getAsk(ctx, tx, a.AskID)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return out, job, nil
}

const answerColumns = `ask_id, job_id, step_id, status, answer_text, answer_json, attestation, policy_trace,
	cacheable, ask_back, error, created_at, payload_hash, input_tokens, output_tokens`

func scanAnswer(row scanner) (*relaytype.AnswerRecord, string, error) {
	var (
		a                                         relaytype.AnswerRecord
		text, ajson, att, trace, askBack, errText sql.NullString
		cacheable                                 sql.NullBool
		created                                   int64
		hash                                      string
		in, out                                   int
	)
	if err := row.Scan(&a.AskID, &a.JobID, &a.StepID, &a.Status, &text, &ajson, &att, &trace,
		&cacheable, &askBack, &errText, &created, &hash, &in, &out); err != nil {
		return nil, "", err
	}
	if in+out > 0 {
		a.Usage = &relaytype.Usage{InputTokens: in, OutputTokens: out}
	}
	a.AnswerText, a.AskBack, a.Error = text.String, askBack.String, errText.String
	if ajson.Valid {
		a.AnswerJSON = json.RawMessage(ajson.String)
	}
	if trace.Valid {
		a.PolicyTrace = json.RawMessage(trace.String)
	}
	if att.Valid {
		a.Attestation = &relaytype.Attestation{}
		if err := json.Unmarshal([]byte(att.String), a.Attestation); err != nil {
			return nil, "", fmt.Errorf("decode attestation of %s: %w", a.AskID, err)
		}
	}
	if cacheable.Valid {
		c := cacheable.Bool
		a.Cacheable = &c
	}
	a.CreatedAt = fromMS(created)
	return &a, hash, nil
}

// applyAnswer writes an answer row, adds its usage to the job, closes its
// ask and logs the event.
func applyAnswer(ctx context.Context, tx *wtx, w *jobstate.AnswerWrite, now time.Time) error {
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
	var cacheable any
	if a.Cacheable != nil {
		cacheable = *a.Cacheable
	}
	var tokens relaytype.Usage
	if a.Usage != nil {
		tokens = *a.Usage
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO answers (ask_id, job_id, step_id, status, answer_text, answer_json,
		attestation, policy_trace, cacheable, ask_back, error, created_at, payload_hash, input_tokens, output_tokens)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.AskID, a.JobID, a.StepID, string(a.Status), nullString(a.AnswerText), ajson, att, trace, cacheable,
		nullString(a.AskBack), nullString(a.Error), ms(now), w.PayloadHash, tokens.InputTokens, tokens.OutputTokens); err != nil {
		return fmt.Errorf("insert answer: %w", err)
	}
	if u := w.Usage; u != nil {
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET input_tokens = input_tokens + ?, output_tokens = output_tokens + ?,
			cached_input_tokens = cached_input_tokens + ?, cost_usd = cost_usd + ?
			WHERE id = ?`, u.InputTokens, u.OutputTokens, u.CachedInputTokens, u.CostUSD, a.JobID); err != nil {
			return fmt.Errorf("add answer usage to job: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE asks SET status = ?, answered_at = ? WHERE ask_id = ?`,
		string(a.Status), ms(now), a.AskID); err != nil {
		return fmt.Errorf("close ask: %w", err)
	}
	_, err = appendEvent(ctx, tx, w.Event, now)
	return err
}

// AnswerInsert implements store.Store.
func (s *Store) AnswerInsert(ctx context.Context, p *store.AnswerInsertParams) (*relaytype.AnswerRecord, bool, *relaytype.Job, error) {
	var (
		out     *relaytype.AnswerRecord
		created bool
		job     *relaytype.Job
		over    *store.AttemptOverError
	)
	err := s.inTx(ctx, func(ctx context.Context, tx *wtx) error {
		a := p.Answer
		rec, row, err := getAsk(ctx, tx, a.AskID)
		if err != nil {
			return err
		}
		ask := &jobstate.StoredAsk{Record: rec, PayloadHash: row.payloadHash, Attempt: row.attempt}
		j, err := getJob(ctx, tx, rec.JobID)
		if err != nil {
			return err
		}
		var existing *jobstate.StoredAnswer
		stored, hash, err := scanAnswer(tx.QueryRowContext(ctx, `SELECT `+answerColumns+` FROM answers WHERE ask_id = ?`, a.AskID))
		switch {
		case err == nil:
			existing = &jobstate.StoredAnswer{Record: stored, PayloadHash: hash}
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("get answer: %w", err)
		}
		snap, err := snapshot(ctx, tx, j)
		if err != nil {
			return err
		}
		q := *p
		q.Now = dbTime(p.Now)
		o, err := jobstate.Answer(snap, ask, existing, &q)
		if err != nil {
			return err
		}
		if o.Existing != nil {
			out, job = o.Existing, o.Job
			return nil
		}
		if o.Write != nil {
			if err := applyAnswer(ctx, tx, o.Write, q.Now); err != nil {
				return err
			}
		}
		if err := o.Refuse; err != nil {
			// The refusal commits what it wrote: the ask it closed.
			if !errors.As(err, &over) {
				return err
			}
			return nil
		}
		if _, err := applyChanges(ctx, tx, o.Changes, q.Now); err != nil {
			return err
		}
		job = o.Job
		out, _, err = scanAnswer(tx.QueryRowContext(ctx, `SELECT `+answerColumns+` FROM answers WHERE ask_id = ?`, a.AskID))
		created = true
		return err
	})
	if err != nil {
		return nil, false, nil, err
	}
	if over != nil {
		return nil, false, nil, over
	}
	return out, created, job, nil
}

// AnswerGet implements store.Store.
func (s *Store) AnswerGet(ctx context.Context, p *store.AnswerGetParams) (*relaytype.AnswerRecord, error) {
	a, _, err := scanAnswer(s.reader.QueryRowContext(ctx, `SELECT `+answerColumns+` FROM answers WHERE ask_id = ?`, p.AskID))
	if err == nil {
		return a, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get answer: %w", err)
	}
	if _, _, err := getAsk(ctx, s.reader, p.AskID); err != nil {
		return nil, err
	}
	return nil, nil
}

// pendingAsks returns the PENDING asks of a job, oldest first.
func pendingAsks(ctx context.Context, tx *wtx, jobID string) ([]*jobstate.StoredAsk, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+askColumns+` FROM asks WHERE job_id = ? AND status = 'PENDING'
		ORDER BY created_at, rowid`, jobID)
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
	var out *relaytype.Answer
	err := s.inTx(ctx, func(ctx context.Context, tx *wtx) error {
		var raw string
		err := tx.QueryRowContext(ctx, `SELECT answer FROM decision_cache WHERE decision_key = ? AND expires_at > ?`,
			p.Key, ms(p.Now)).Scan(&raw)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("decision cache get: %w", err)
		}
		out = &relaytype.Answer{}
		if err := json.Unmarshal([]byte(raw), out); err != nil {
			return fmt.Errorf("decision cache decode: %w", err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE decision_cache SET hits = hits + 1 WHERE decision_key = ?`, p.Key)
		return err
	})
	return out, err
}

// DecisionPut implements store.Store.
func (s *Store) DecisionPut(ctx context.Context, p *store.DecisionPutParams) error {
	raw, err := json.Marshal(p.Answer)
	if err != nil {
		return fmt.Errorf("decision cache encode: %w", err)
	}
	return s.inTx(ctx, func(ctx context.Context, tx *wtx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM decision_cache WHERE expires_at <= ?`, ms(p.Now)); err != nil {
			return fmt.Errorf("decision cache prune: %w", err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO decision_cache (decision_key, answer, created_at, expires_at)
			VALUES (?, ?, ?, ?)
			ON CONFLICT (decision_key) DO UPDATE SET answer = excluded.answer, created_at = excluded.created_at,
				expires_at = excluded.expires_at, hits = 0`, p.Key, string(raw), ms(p.Now), ms(p.ExpiresAt))
		if err != nil {
			return fmt.Errorf("decision cache put: %w", err)
		}
		return nil
	})
}
