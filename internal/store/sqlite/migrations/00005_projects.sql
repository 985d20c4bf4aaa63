-- Projects: every job records the project (config directory) it was
-- submitted from; it runs only with that project's executors, lists are
-- filtered by it, and idempotency keys are scoped to it. Jobs stored before
-- this migration belong to the empty project.

-- +goose Up
ALTER TABLE jobs ADD COLUMN project TEXT NOT NULL DEFAULT '';
CREATE INDEX jobs_project_idx ON jobs (project, seq);
DROP INDEX jobs_idempotency_idx;
CREATE INDEX jobs_idempotency_idx ON jobs (project, idempotency_key, seq);

-- +goose Down
DROP INDEX jobs_idempotency_idx;
CREATE INDEX jobs_idempotency_idx ON jobs (idempotency_key, seq);
DROP INDEX jobs_project_idx;
ALTER TABLE jobs DROP COLUMN project;
