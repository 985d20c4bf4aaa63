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

// attemptOver reports whether the attempt that posted an ask is over: its
// job is no longer active or runs another attempt.
func attemptOver(job *relaytype.Job, askAttempt int) bool {
	return !job.State.Active() || job.Attempt != askAttempt
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
		existing, row, err := getAsk(ctx, tx, a.AskID)
		switch {
		case err == nil:
			if existing.JobID != a.JobID {
				return fmt.Errorf("ask %s: %w", a.AskID, relaytype.ErrAskConflict)
			}
			job, err = getJob(ctx, tx, a.JobID)
			if err != nil {
				return err
			}
			if job.Attempt != row.attempt {
				// Another attempt's executor (or a leftover of the dead
				// one) must not take over the dead attempt's ask.
				return &store.AttemptOverError{AskID: a.AskID, JobID: job.ID, Attempt: row.attempt,
					JobAttempt: job.Attempt, JobState: job.State, Repost: true}
			}
			if row.payloadHash != p.PayloadHash {
				return fmt.Errorf("ask %s: %w", a.AskID, relaytype.ErrAskConflict)
			}
			out = existing
			return nil
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
			context_envelope, constraints, role_id, meta, status, route, created_at, deadline_at, payload_hash, attempt)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'PENDING', ?, ?, ?, ?, ?)`,
			a.AskID, a.JobID, a.StepID, string(a.AskType), a.Prompt, a.ContextHash, string(a.ContextEnvelope),
			constraints, nullString(a.RoleID), meta, a.Route, ms(p.Now), ms(a.DeadlineAt), p.PayloadHash, job.Attempt); err != nil {
			return fmt.Errorf("insert ask: %w", err)
		}
		if _, err := appendEvent(ctx, tx, a.JobID, relaytype.EventAsk, map[string]any{
			"askId": a.AskID, "askType": a.AskType, "stepId": a.StepID, "attempt": job.Attempt, "roleId": a.RoleID,
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

// AskDefer implements store.Store.
func (s *Store) AskDefer(ctx context.Context, p *store.AskDeferParams) (*relaytype.AskRecord, *relaytype.Job, error) {
	var (
		out *relaytype.AskRecord
		job *relaytype.Job
	)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		a, _, err := getAsk(ctx, tx, p.AskID)
		if err != nil {
			return err
		}
		if a.Status != relaytype.StatusPending {
			return fmt.Errorf("ask %s is %s, not PENDING: %w", a.AskID, a.Status, relaytype.ErrAnswerConflict)
		}
		deadline := a.DeadlineAt
		if p.DeadlineAt.After(deadline) {
			deadline = p.DeadlineAt
		}
		if _, err := tx.ExecContext(ctx, `UPDATE asks SET route = ?, deadline_at = ? WHERE ask_id = ?`,
			p.Route, ms(deadline), a.AskID); err != nil {
			return fmt.Errorf("defer ask: %w", err)
		}
		if _, err := appendEvent(ctx, tx, a.JobID, relaytype.EventAskDeferred, map[string]any{
			"askId": a.AskID, "from": a.Route, "route": p.Route, "deadlineAt": deadline, "reason": p.Reason,
		}, p.Now); err != nil {
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
		over    *store.AttemptOverError
	)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		a := p.Answer
		ask, row, err := getAsk(ctx, tx, a.AskID)
		if err != nil {
			return err
		}
		if a.JobID != ask.JobID {
			return &relaytype.RequestError{Field: "job_id", Message: fmt.Sprintf("ask %s belongs to job %s, not %s", ask.AskID, ask.JobID, a.JobID)}
		}
		job, err = getJob(ctx, tx, a.JobID)
		if err != nil {
			return err
		}
		existing, hash, err := scanAnswer(tx.QueryRowContext(ctx, `SELECT `+answerColumns+` FROM answers WHERE ask_id = ?`, a.AskID))
		switch {
		case err == nil && hash == p.PayloadHash:
			out = existing
			return nil
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("get answer: %w", err)
		}
		answered := err == nil
		if attemptOver(job, row.attempt) {
			over = &store.AttemptOverError{AskID: ask.AskID, JobID: job.ID, Attempt: row.attempt,
				JobAttempt: job.Attempt, JobState: job.State}
			if answered {
				return nil
			}
			// Only an ask stored before asks were bound to attempts can
			// still be pending here: close it as its attempt's end would
			// have, and refuse the answer all the same.
			return closeAsks(ctx, tx, []attemptAsk{{rec: ask, attempt: row.attempt}}, func(int) string {
				return fmt.Sprintf("closed: attempt %d of the job ended before the ask was answered", row.attempt)
			}, p.Now)
		}
		if answered {
			return fmt.Errorf("ask %s was answered %s: %w", a.AskID, existing.Status, relaytype.ErrAnswerConflict)
		}
		if err := insertAnswer(ctx, tx, a, p.PayloadHash, p.Now); err != nil {
			return err
		}
		if reason := a.Status.FailReason(); reason != "" {
			msg := fmt.Sprintf("ask %s was answered %s", a.AskID, a.Status)
			if a.Error != "" {
				msg += ": " + a.Error
			}
			job, err = transition(ctx, tx, job, &store.JobTransitionParams{ID: job.ID, To: relaytype.StateFailed, Now: p.Now, Reason: reason, Summary: msg})
			if err != nil {
				return err
			}
		} else {
			// insertAnswer may have added the answer's usage to the job.
			job, err = getJob(ctx, tx, a.JobID)
			if err != nil {
				return err
			}
			if job.State == relaytype.StateWaitingOnAnswer {
				var pending int
				if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM asks WHERE job_id = ? AND status = 'PENDING' AND attempt = ?`,
					job.ID, job.Attempt).Scan(&pending); err != nil {
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

// attemptAsk is an ask with the attempt that posted it.
type attemptAsk struct {
	rec     *relaytype.AskRecord
	attempt int
}

// pendingAsks returns the PENDING asks of a job, oldest first.
func pendingAsks(ctx context.Context, tx *sql.Tx, jobID string) ([]attemptAsk, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+askColumns+` FROM asks WHERE job_id = ? AND status = 'PENDING'
		ORDER BY created_at, rowid`, jobID)
	if err != nil {
		return nil, fmt.Errorf("pending asks: %w", err)
	}
	defer rows.Close()
	var out []attemptAsk
	for rows.Next() {
		a, x, err := scanAsk(rows)
		if err != nil {
			return nil, fmt.Errorf("scan ask: %w", err)
		}
		out = append(out, attemptAsk{rec: a, attempt: x.attempt})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read asks: %w", err)
	}
	return out, nil
}

// closeAsks answers asks ERROR with the text why returns for each ask's
// attempt, appending their "answer" events, so that no ask waits on an
// attempt that will never read its answer.
func closeAsks(ctx context.Context, tx *sql.Tx, asks []attemptAsk, why func(attempt int) string, now time.Time) error {
	for _, a := range asks {
		if err := insertAnswer(ctx, tx, &relaytype.AnswerRecord{
			AskID: a.rec.AskID, JobID: a.rec.JobID, StepID: a.rec.StepID, Status: relaytype.StatusError, Error: why(a.attempt),
		}, "", now); err != nil {
			return err
		}
	}
	return nil
}

// closePendingAsks closes the PENDING asks of job j (as it was before the
// transition p, just applied) that p ends: all of them when the job ends
// or its attempt ends (STALE), and those of earlier attempts when p starts
// attempt started (0 when p is no start).
func closePendingAsks(ctx context.Context, tx *sql.Tx, j *relaytype.Job, p *store.JobTransitionParams, started int, now time.Time) error {
	var why func(attempt int) string
	switch {
	case p.To.Terminal():
		why = func(int) string { return fmt.Sprintf("job ended %s before the ask was answered", p.To) }
	case p.To == relaytype.StateStale:
		cause := p.Summary
		if cause == "" {
			cause = "its worker stopped"
		}
		next := fmt.Sprintf("the job goes back to the queue for attempt %d", j.Attempt+1)
		if j.Attempt >= j.MaxAttempts {
			next = fmt.Sprintf("the job has used all %d attempts", j.MaxAttempts)
		}
		why = func(attempt int) string {
			return fmt.Sprintf("closed: attempt %d of the job ended (%s) before the ask was answered; %s", attempt, cause, next)
		}
	case started > 0:
		why = func(attempt int) string {
			return fmt.Sprintf("closed: attempt %d of the job ended before the ask was answered; the job was retried as attempt %d", attempt, started)
		}
	default:
		return nil
	}
	asks, err := pendingAsks(ctx, tx, j.ID)
	if err != nil {
		return err
	}
	closing := asks[:0]
	for _, a := range asks {
		if started == 0 || a.attempt < started {
			closing = append(closing, a)
		}
	}
	return closeAsks(ctx, tx, closing, why, now)
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
