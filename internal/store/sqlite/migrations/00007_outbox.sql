-- The outbox: messages to deliver outside the relay (webhooks), inserted
-- in the same transaction as the state change they report, delivered at
-- least once by a deliverer that claims them under a lease and retries
-- with backoff until it acknowledges or gives up on them.

-- +goose Up
CREATE TABLE outbox (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT    NOT NULL UNIQUE,
    job_id           TEXT,
    project          TEXT    NOT NULL DEFAULT '',
    kind             TEXT    NOT NULL,
    target           TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    last_error       TEXT,
    done_at          INTEGER
);
CREATE INDEX outbox_due_idx ON outbox (status, next_attempt_at);
CREATE INDEX outbox_job_idx ON outbox (job_id, seq);

-- +goose Down
DROP TABLE outbox;
