-- Projects: every job records the project (config directory) it was
-- submitted from; it runs only with that project's executors, lists are
-- filtered by it, and idempotency keys are scoped to it. Jobs stored before
-- this migration belong to the empty project.
--
-- At most one job per project and idempotency key is not terminal (a
-- submit returns that job instead of inserting another), so a partial
-- unique index holds that rule even for concurrent submits: the loser of
-- a race conflicts on it and returns the winner's job.

-- +goose Up
ALTER TABLE jobs ADD COLUMN project text NOT NULL DEFAULT '';
CREATE INDEX jobs_project_idx ON jobs (project, seq);
DROP INDEX jobs_idempotency_idx;
CREATE INDEX jobs_idempotency_idx ON jobs (project, idempotency_key, seq);
CREATE UNIQUE INDEX jobs_idempotency_live_idx ON jobs (project, idempotency_key)
    WHERE state NOT IN ('SUCCEEDED', 'FAILED', 'CANCELED', 'EXPIRED');

-- +goose Down
DROP INDEX jobs_idempotency_live_idx;
DROP INDEX jobs_idempotency_idx;
CREATE INDEX jobs_idempotency_idx ON jobs (idempotency_key, seq);
DROP INDEX jobs_project_idx;
ALTER TABLE jobs DROP COLUMN project;
