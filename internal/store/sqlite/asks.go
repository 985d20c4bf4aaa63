package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mcp-task-relay/mcp-task-relay/internal/store"
	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

const askColumns = `ask_id, job_id, step_id, ask_type, prompt, context_hash, context_envelope, constraints,
	role_id, meta, status, route, created_at, deadline_at, answered_at, payload_hash`

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

func scanAsk(row scanner) (*relaytype.AskRecord, string, error) {
	var (
		a                       relaytype.AskRecord
		envelope                string
		constraints, role, meta sql.NullString
		created, deadline       int64
		answered                sql.NullInt64
		payloadHash             string
	)
	if err := row.Scan(&a.AskID, &a.JobID, &a.StepID, &a.AskType, &a.Prompt, &a.ContextHash, &envelope,
		&constraints, &role, &meta, &a.Status, &a.Route, &created, &deadline, &answered, &payloadHash); err != nil {
		return nil, "", err
	}
	a.ContextEnvelope = json.RawMessage(envelope)
	if constraints.Valid {
		a.Constraints = &relaytype.AskConstraints{}
		if err := json.Unmarshal([]byte(constraints.String), a.Constraints); err != nil {
			return nil, "", fmt.Errorf("decode constraints of ask %s: %w", a.AskID, err)
		}
	}
	if meta.Valid {
		a.Meta = &relaytype.AskMeta{}
		if err := json.Unmarshal([]byte(meta.String), a.Meta); err != nil {
			return nil, "", fmt.Errorf("decode meta of ask %s: %w", a.AskID, err)
		}
	}
	a.RoleID = role.String
	a.CreatedAt, a.DeadlineAt, a.AnsweredAt = fromMS(created), fromMS(deadline), optTime(answered)
	return &a, payloadHash, nil
}

func getAsk(ctx context.Context, q querier, id string) (*relaytype.AskRecord, string, error) {
	a, h, err := scanAsk(q.QueryRowContext(ctx, `SELECT `+askColumns+` FROM asks WHERE ask_id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", fmt.Errorf("ask %s: %w", id, relaytype.ErrAskNotFound)
	}
	if err != nil {
		return nil, "", fmt.Errorf("get ask %s: %w", id, err)
	}
	return a, h, nil
}

// AskInsert implements store.Store.
func (s *Store) AskInsert(ctx context.Context, p *store.AskInsertParams) (*relaytype.AskRecord, bool, *relaytype.Job, error) {
	var (
		out     *relaytype.AskRecord
		created bool
		job     *relaytype.Job
	)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		a := p.Ask
		existing, hash, err := getAsk(ctx, tx, a.AskID)
		switch {
		case err == nil:
			if hash != p.PayloadHash || existing.JobID != a.JobID {
				return fmt.Errorf("ask %s: %w", a.AskID, relaytype.ErrAskConflict)
			}
			out = existing
			job, err = getJob(ctx, tx, a.JobID)
			return err
		case !errors.Is(err, relaytype.ErrAskNotFound):
			return err
		}
		job, err = getJob(ctx, tx, a.JobID)
		if err != nil {
			return err
		}
		if !job.State.Active() {
			return fmt.Errorf("job %s is %s: %w", job.ID, job.State, relaytype.ErrJobNotActive)
		}
		constraints, err := jsonArg(a.Constraints)
		if err != nil {
			return err
		}
		meta, err := jsonArg(a.Meta)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO asks (ask_id, job_id, step_id, ask_type, prompt, context_hash,
			context_envelope, constraints, role_id, meta, status, route, created_at, deadline_at, payload_hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'PENDING', ?, ?, ?, ?)`,
			a.AskID, a.JobID, a.StepID, string(a.AskType), a.Prompt, a.ContextHash, string(a.ContextEnvelope),
			constraints, nullString(a.RoleID), meta, a.Route, ms(p.Now), ms(a.DeadlineAt), p.PayloadHash); err != nil {
			return fmt.Errorf("insert ask: %w", err)
		}
		if _, err := appendEvent(ctx, tx, a.JobID, relaytype.EventAsk, map[string]any{
			"askId": a.AskID, "askType": a.AskType, "stepId": a.StepID, "roleId": a.RoleID,
			"route": a.Route, "contextHash": a.ContextHash, "deadlineAt": a.DeadlineAt,
		}, p.Now); err != nil {
			return err
		}
		if job.State == relaytype.StateRunning {
			job, err = transition(ctx, tx, job, &store.JobTransitionParams{
				ID: job.ID, To: relaytype.StateWaitingOnAnswer, Now: p.Now, Summary: "waiting for the answer to ask " + a.AskID,
			})
			if err != nil {
				return err
			}
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

// insertAnswer writes an answer row, closes its ask and logs the event.
func insertAnswer(ctx context.Context, tx *sql.Tx, a *relaytype.AnswerRecord, hash string, now time.Time) error {
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
	var usage relaytype.Usage
	if a.Usage != nil {
		usage = *a.Usage
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO answers (ask_id, job_id, step_id, status, answer_text, answer_json,
		attestation, policy_trace, cacheable, ask_back, error, created_at, payload_hash, input_tokens, output_tokens)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.AskID, a.JobID, a.StepID, string(a.Status), nullString(a.AnswerText), ajson, att, trace, cacheable,
		nullString(a.AskBack), nullString(a.Error), ms(now), hash, usage.InputTokens, usage.OutputTokens); err != nil {
		return fmt.Errorf("insert answer: %w", err)
	}
	if usage.InputTokens+usage.OutputTokens > 0 || usage.CostUSD > 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET input_tokens = input_tokens + ?, output_tokens = output_tokens + ?,
			cached_input_tokens = cached_input_tokens + ?, cost_usd = cost_usd + ?
			WHERE id = ?`, usage.InputTokens, usage.OutputTokens, usage.CachedInputTokens, usage.CostUSD, a.JobID); err != nil {
			return fmt.Errorf("add answer usage to job: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE asks SET status = ?, answered_at = ? WHERE ask_id = ?`,
		string(a.Status), ms(now), a.AskID); err != nil {
		return fmt.Errorf("close ask: %w", err)
	}
	by := ""
	if a.Attestation != nil {
		by = a.Attestation.AnsweredBy
	}
	ev := map[string]any{"askId": a.AskID, "status": a.Status, "answeredBy": by, "error": a.Error}
	if a.Attestation != nil && a.Attestation.CacheHit {
		ev["cacheHit"] = true
	}
	if a.Usage != nil {
		ev["usage"] = a.Usage
	}
	_, err = appendEvent(ctx, tx, a.JobID, relaytype.EventAnswer, ev, now)
	return err
}

// AnswerInsert implements store.Store.
func (s *Store) AnswerInsert(ctx context.Context, p *store.AnswerInsertParams) (*relaytype.AnswerRecord, bool, *relaytype.Job, error) {
	var (
		out     *relaytype.AnswerRecord
		created bool
		job     *relaytype.Job
	)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		a := p.Answer
		ask, _, err := getAsk(ctx, tx, a.AskID)
		if err != nil {
			return err
		}
		if a.JobID != ask.JobID {
			return &relaytype.RequestError{Field: "job_id", Message: fmt.Sprintf("ask %s belongs to job %s, not %s", ask.AskID, ask.JobID, a.JobID)}
		}
		existing, hash, err := scanAnswer(tx.QueryRowContext(ctx, `SELECT `+answerColumns+` FROM answers WHERE ask_id = ?`, a.AskID))
		switch {
		case err == nil:
			if hash != p.PayloadHash {
				return fmt.Errorf("ask %s was answered %s: %w", a.AskID, existing.Status, relaytype.ErrAnswerConflict)
			}
			out = existing
			job, err = getJob(ctx, tx, a.JobID)
			return err
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("get answer: %w", err)
		}
		if err := insertAnswer(ctx, tx, a, p.PayloadHash, p.Now); err != nil {
			return err
		}
		job, err = getJob(ctx, tx, a.JobID)
		if err != nil {
			return err
		}
		if job.State.Active() {
			if reason := a.Status.FailReason(); reason != "" {
				msg := fmt.Sprintf("ask %s was answered %s", a.AskID, a.Status)
				if a.Error != "" {
					msg += ": " + a.Error
				}
				job, err = transition(ctx, tx, job, &store.JobTransitionParams{ID: job.ID, To: relaytype.StateFailed, Now: p.Now, Reason: reason, Summary: msg})
				if err != nil {
					return err
				}
			} else if job.State == relaytype.StateWaitingOnAnswer {
				var pending int
				if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM asks WHERE job_id = ? AND status = 'PENDING'`, job.ID).Scan(&pending); err != nil {
					return fmt.Errorf("count pending asks: %w", err)
				}
				if pending == 0 {
					job, err = transition(ctx, tx, job, &store.JobTransitionParams{ID: job.ID, To: relaytype.StateRunning, Now: p.Now, Summary: "all asks answered"})
					if err != nil {
						return err
					}
				}
			}
		}
		out, _, err = scanAnswer(tx.QueryRowContext(ctx, `SELECT `+answerColumns+` FROM answers WHERE ask_id = ?`, a.AskID))
		created = true
		return err
	})
	if err != nil {
		return nil, false, nil, err
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

// closePendingAsks answers the pending asks of a job that just ended, so
// that no ask waits on a job that will never read its answer.
func closePendingAsks(ctx context.Context, tx *sql.Tx, j *relaytype.Job, to relaytype.JobState, now time.Time) error {
	rows, err := tx.QueryContext(ctx, `SELECT `+askColumns+` FROM asks WHERE job_id = ? AND status = 'PENDING'`, j.ID)
	if err != nil {
		return fmt.Errorf("pending asks: %w", err)
	}
	asks, err := collectAsks(rows)
	if err != nil {
		return err
	}
	for _, a := range asks {
		if err := insertAnswer(ctx, tx, &relaytype.AnswerRecord{
			AskID: a.AskID, JobID: a.JobID, StepID: a.StepID, Status: relaytype.StatusError,
			Error: fmt.Sprintf("job ended %s before the ask was answered", to),
		}, "", now); err != nil {
			return err
		}
	}
	return nil
}

// DecisionGet implements store.Store.
func (s *Store) DecisionGet(ctx context.Context, p *store.DecisionGetParams) (*relaytype.Answer, error) {
	var out *relaytype.Answer
	err := s.inTx(ctx, func(tx *sql.Tx) error {
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
	return s.inTx(ctx, func(tx *sql.Tx) error {
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
