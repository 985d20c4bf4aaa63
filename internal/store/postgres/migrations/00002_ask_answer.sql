-- Ask/Answer protocol: the router's choice, the ask's deadline, and a hash
-- of each posted payload so that a repeated POST is recognised as the same
-- request (idempotent) or a different one (conflict).

-- +goose Up
ALTER TABLE asks ADD COLUMN route text NOT NULL DEFAULT 'orchestrator';
ALTER TABLE asks ADD COLUMN deadline_at bigint NOT NULL DEFAULT 0;
ALTER TABLE asks ADD COLUMN payload_hash text NOT NULL DEFAULT '';
ALTER TABLE answers ADD COLUMN payload_hash text NOT NULL DEFAULT '';
-- Only PENDING asks have a deadline that matters.
CREATE INDEX asks_deadline_idx ON asks (deadline_at) WHERE status = 'PENDING';

-- +goose Down
DROP INDEX asks_deadline_idx;
ALTER TABLE answers DROP COLUMN payload_hash;
ALTER TABLE asks DROP COLUMN payload_hash;
ALTER TABLE asks DROP COLUMN deadline_at;
ALTER TABLE asks DROP COLUMN route;
