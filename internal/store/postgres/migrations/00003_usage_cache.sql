-- Token accounting of runner answers, summed per job, and the decision
-- cache's cache-hit bookkeeping.

-- +goose Up
ALTER TABLE answers ADD COLUMN input_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE answers ADD COLUMN output_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN input_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN output_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE decision_cache ADD COLUMN hits bigint NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE decision_cache DROP COLUMN hits;
ALTER TABLE jobs DROP COLUMN output_tokens;
ALTER TABLE jobs DROP COLUMN input_tokens;
ALTER TABLE answers DROP COLUMN output_tokens;
ALTER TABLE answers DROP COLUMN input_tokens;
