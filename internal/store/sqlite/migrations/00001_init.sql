-- Initial schema. Times are Unix milliseconds (INTEGER) so that the SQLite
-- and PostgreSQL stores share one representation.

-- +goose Up
CREATE TABLE jobs (
    -- seq gives FIFO order within a priority; id is the public job id.
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT    NOT NULL UNIQUE,
    idempotency_key  TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    state_version    INTEGER NOT NULL,
    priority         INTEGER NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    executor         TEXT    NOT NULL,
    baseline_commit  TEXT    NOT NULL,
    spec             TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    expires_at       INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    heartbeat_at     INTEGER,
    reason_code      TEXT,
    summary          TEXT
);
CREATE INDEX jobs_claim_idx ON jobs (state, priority, seq);
CREATE INDEX jobs_idempotency_idx ON jobs (idempotency_key, seq);
CREATE INDEX jobs_lease_idx ON jobs (state, lease_expires_at);

CREATE TABLE job_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  TEXT    NOT NULL REFERENCES jobs (id),
    ts      INTEGER NOT NULL,
    type    TEXT    NOT NULL,
    payload TEXT
);
CREATE INDEX job_events_job_idx ON job_events (job_id, id);

CREATE TABLE artifacts (
    job_id     TEXT    NOT NULL REFERENCES jobs (id),
    kind       TEXT    NOT NULL,
    uri        TEXT    NOT NULL,
    digest     TEXT    NOT NULL,
    size       INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, kind)
);

-- Ask/Answer protocol (used from the Ask/Answer issue on).
CREATE TABLE asks (
    ask_id           TEXT    PRIMARY KEY,
    job_id           TEXT    NOT NULL REFERENCES jobs (id),
    step_id          TEXT    NOT NULL,
    ask_type         TEXT    NOT NULL,
    prompt           TEXT    NOT NULL,
    context_hash     TEXT    NOT NULL,
    context_envelope TEXT    NOT NULL,
    constraints      TEXT,
    role_id          TEXT,
    meta             TEXT,
    status           TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    answered_at      INTEGER
);
CREATE INDEX asks_job_idx ON asks (job_id, created_at);
CREATE INDEX asks_status_idx ON asks (status, created_at);

CREATE TABLE answers (
    ask_id       TEXT    PRIMARY KEY REFERENCES asks (ask_id),
    job_id       TEXT    NOT NULL,
    step_id      TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    answer_text  TEXT,
    answer_json  TEXT,
    attestation  TEXT,
    policy_trace TEXT,
    cacheable    INTEGER,
    ask_back     TEXT,
    error        TEXT,
    created_at   INTEGER NOT NULL
);

CREATE TABLE decision_cache (
    decision_key TEXT    PRIMARY KEY,
    answer       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);

-- +goose Down
DROP TABLE decision_cache;
DROP TABLE answers;
DROP TABLE asks;
DROP TABLE artifacts;
DROP TABLE job_events;
DROP TABLE jobs;
