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
ALTER TABLE asks ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;

UPDATE asks SET attempt = coalesce((
    SELECT CASE
        WHEN asks.step_id GLOB 'attempt-[1-9]*'
         AND asks.step_id NOT GLOB 'attempt-*[^0-9]*'
         AND length(asks.step_id) <= 17
         AND CAST(substr(asks.step_id, 9) AS INTEGER) BETWEEN 1 AND jobs.attempt
        THEN CAST(substr(asks.step_id, 9) AS INTEGER)
        ELSE jobs.attempt
    END
    FROM jobs WHERE jobs.id = asks.job_id), 0);

INSERT OR IGNORE INTO answers (ask_id, job_id, step_id, status, error, created_at, payload_hash)
SELECT a.ask_id, a.job_id, a.step_id, 'ERROR',
       'closed: attempt ' || a.attempt || ' of the job ended before the ask was answered',
       CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER), ''
FROM asks a JOIN jobs j ON j.id = a.job_id
WHERE a.status = 'PENDING'
  AND (j.state NOT IN ('RUNNING', 'WAITING_ON_ANSWER') OR a.attempt <> j.attempt);

INSERT INTO job_events (job_id, ts, type, payload)
SELECT a.job_id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER), 'answer',
       json_object('askId', a.ask_id, 'status', 'ERROR', 'answeredBy', '',
                   'error', 'closed: attempt ' || a.attempt || ' of the job ended before the ask was answered')
FROM asks a JOIN jobs j ON j.id = a.job_id
WHERE a.status = 'PENDING'
  AND (j.state NOT IN ('RUNNING', 'WAITING_ON_ANSWER') OR a.attempt <> j.attempt)
ORDER BY a.created_at, a.rowid;

UPDATE asks SET status = 'ERROR', answered_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
WHERE status = 'PENDING'
  AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = asks.job_id
              AND (j.state NOT IN ('RUNNING', 'WAITING_ON_ANSWER') OR asks.attempt <> j.attempt));

-- +goose Down
ALTER TABLE asks DROP COLUMN attempt;
