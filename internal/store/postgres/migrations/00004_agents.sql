-- Coding-agent executors: their token usage and cost add to the job's, the
-- agent session id is kept for follow-ups, and a follow-up names its
-- parent job.

-- +goose Up
ALTER TABLE jobs ADD COLUMN cached_input_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN cost_usd double precision NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN session_id text;
ALTER TABLE jobs ADD COLUMN parent_job_id text;

-- +goose Down
ALTER TABLE jobs DROP COLUMN parent_job_id;
ALTER TABLE jobs DROP COLUMN session_id;
ALTER TABLE jobs DROP COLUMN cost_usd;
ALTER TABLE jobs DROP COLUMN cached_input_tokens;
