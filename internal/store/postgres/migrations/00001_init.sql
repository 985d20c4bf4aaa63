-- Initial schema, the PostgreSQL twin of the SQLite store's. Times are Unix
-- milliseconds (bigint) so that both stores share one representation and
-- one set of comparisons. JSON read back as data is jsonb; JSON handed back
-- byte for byte (event payloads, the context envelope whose hash callers
-- verify) is json, which PostgreSQL stores verbatim.

-- +goose Up
CREATE TABLE jobs (
    -- seq gives FIFO order within a priority; id is the public job id.
    seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               text    NOT NULL UNIQUE,
    idempotency_key  text    NOT NULL,
    state            text    NOT NULL,
    state_version    bigint  NOT NULL,
    priority         integer NOT NULL,
    attempt          integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL,
    executor         text    NOT NULL,
    baseline_commit  text    NOT NULL,
    spec             jsonb   NOT NULL,
    created_at       bigint  NOT NULL,
    updated_at       bigint  NOT NULL,
    started_at       bigint,
    finished_at      bigint,
    expires_at       bigint  NOT NULL,
    lease_owner      text,
    lease_expires_at bigint,
    heartbeat_at     bigint,
    reason_code      text,
    summary          text
);
-- Claims scan QUEUED jobs only; rescue scans active and STALE ones.
CREATE INDEX jobs_claim_idx ON jobs (priority, seq) WHERE state = 'QUEUED';
CREATE INDEX jobs_queue_ttl_idx ON jobs (expires_at) WHERE state = 'QUEUED';
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE state IN ('RUNNING', 'WAITING_ON_ANSWER');
CREATE INDEX jobs_stale_idx ON jobs (updated_at) WHERE state = 'STALE';
CREATE INDEX jobs_state_idx ON jobs (state, seq);
CREATE INDEX jobs_idempotency_idx ON jobs (idempotency_key, seq);

CREATE TABLE job_events (
    -- Ids are global; a job's events are appended only under the job's
    -- row lock, so they become visible in id order (see the package doc).
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id  text   NOT NULL REFERENCES jobs (id),
    ts      bigint NOT NULL,
    type    text   NOT NULL,
    payload json
);
CREATE INDEX job_events_job_idx ON job_events (job_id, id);

CREATE TABLE artifacts (
    job_id     text   NOT NULL REFERENCES jobs (id),
    kind       text   NOT NULL,
    uri        text   NOT NULL,
    digest     text   NOT NULL,
    size       bigint NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (job_id, kind)
);

CREATE TABLE asks (
    -- seq orders asks created in the same millisecond.
    seq              bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    ask_id           text   PRIMARY KEY,
    job_id           text   NOT NULL REFERENCES jobs (id),
    step_id          text   NOT NULL,
    ask_type         text   NOT NULL,
    prompt           text   NOT NULL,
    context_hash     text   NOT NULL,
    context_envelope json   NOT NULL,
    constraints      jsonb,
    role_id          text,
    meta             jsonb,
    status           text   NOT NULL,
    created_at       bigint NOT NULL,
    answered_at      bigint
);
CREATE INDEX asks_job_idx ON asks (job_id, created_at, seq);
CREATE INDEX asks_status_idx ON asks (status, created_at, seq);

CREATE TABLE answers (
    ask_id       text    PRIMARY KEY REFERENCES asks (ask_id),
    job_id       text    NOT NULL,
    step_id      text    NOT NULL,
    status       text    NOT NULL,
    answer_text  text,
    answer_json  jsonb,
    attestation  jsonb,
    policy_trace jsonb,
    cacheable    boolean,
    ask_back     text,
    error        text,
    created_at   bigint  NOT NULL
);

CREATE TABLE decision_cache (
    decision_key text   PRIMARY KEY,
    answer       jsonb  NOT NULL,
    created_at   bigint NOT NULL,
    expires_at   bigint NOT NULL
);

-- +goose Down
DROP TABLE decision_cache;
DROP TABLE answers;
DROP TABLE asks;
DROP TABLE artifacts;
DROP TABLE job_events;
DROP TABLE jobs;
