-- Asks are bound to the attempt of their job that posted them: an attempt
-- that ends (STALE, terminal, or a new attempt started) closes its pending
-- asks, and an answer to an ask of an attempt that is over is refused, so
-- that a leftover ask can neither fail nor hold up a retried job.
--
-- Asks stored before this migration take the attempt their step id names
-- ("attempt-N", as the relay sets it) when that is an attempt the job has
-- made, else the job's current attempt. Pending asks of an attempt that is
-- over are closed here as the relay now closes them when an attempt ends:
-- answered ERROR, with their "answer" event.

-- +goose Up
ALTER TABLE asks ADD COLUMN attempt integer NOT NULL DEFAULT 0;

UPDATE asks SET attempt = CASE
        WHEN asks.step_id ~ '^attempt-[1-9][0-9]{0,8}$'
         AND substr(asks.step_id, 9)::integer <= jobs.attempt
        THEN substr(asks.step_id, 9)::integer
        ELSE jobs.attempt
    END
FROM jobs WHERE jobs.id = asks.job_id;

INSERT INTO answers (ask_id, job_id, step_id, status, error, created_at, payload_hash)
SELECT a.ask_id, a.job_id, a.step_id, 'ERROR',
       'closed: attempt ' || a.attempt || ' of the job ended before the ask was answered',
       (extract(epoch FROM clock_timestamp()) * 1000)::bigint, ''
FROM asks a JOIN jobs j ON j.id = a.job_id
WHERE a.status = 'PENDING'
  AND (j.state NOT IN ('RUNNING', 'WAITING_ON_ANSWER') OR a.attempt <> j.attempt)
ON CONFLICT (ask_id) DO NOTHING;

INSERT INTO job_events (job_id, ts, type, payload)
SELECT a.job_id, (extract(epoch FROM clock_timestamp()) * 1000)::bigint, 'answer',
       json_build_object('askId', a.ask_id, 'status', 'ERROR', 'answeredBy', '',
                         'error', 'closed: attempt ' || a.attempt || ' of the job ended before the ask was answered')
FROM asks a JOIN jobs j ON j.id = a.job_id
WHERE a.status = 'PENDING'
  AND (j.state NOT IN ('RUNNING', 'WAITING_ON_ANSWER') OR a.attempt <> j.attempt)
ORDER BY a.created_at, a.seq;

UPDATE asks SET status = 'ERROR', answered_at = (extract(epoch FROM clock_timestamp()) * 1000)::bigint
FROM jobs j
WHERE j.id = asks.job_id AND asks.status = 'PENDING'
  AND (j.state NOT IN ('RUNNING', 'WAITING_ON_ANSWER') OR asks.attempt <> j.attempt);

CREATE INDEX asks_pending_attempt_idx ON asks (job_id, attempt) WHERE status = 'PENDING';

-- +goose Down
DROP INDEX asks_pending_attempt_idx;
ALTER TABLE asks DROP COLUMN attempt;
