-- The outbox: messages to deliver outside the relay (webhooks), inserted
-- in the same transaction as the state change they report, delivered at
-- least once by a deliverer that claims them under a lease and retries
-- with backoff until it acknowledges or gives up on them. The payload is
-- json, kept byte for byte: it is the body the deliverer sends.

-- +goose Up
CREATE TABLE outbox (
    seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               text    NOT NULL UNIQUE,
    job_id           text,
    project          text    NOT NULL DEFAULT '',
    kind             text    NOT NULL,
    target           text    NOT NULL,
    payload          json    NOT NULL,
    status           text    NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    created_at       bigint  NOT NULL,
    updated_at       bigint  NOT NULL,
    next_attempt_at  bigint  NOT NULL,
    lease_owner      text,
    lease_expires_at bigint,
    last_error       text,
    done_at          bigint
);
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at, seq) WHERE status = 'PENDING';
CREATE INDEX outbox_job_idx ON outbox (job_id, seq);
CREATE INDEX outbox_status_idx ON outbox (status, seq);

-- +goose Down
DROP TABLE outbox;
