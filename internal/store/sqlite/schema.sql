-- schema at migration 8
-- Generated from the migrations by TestSchemaMatchesMigrations (-update-schema); do not edit.

CREATE TABLE goose_db_version (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		version_id INTEGER NOT NULL,
		is_applied INTEGER NOT NULL,
		tstamp TIMESTAMP DEFAULT (datetime('now'))
	);

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
, input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0, cached_input_tokens INTEGER NOT NULL DEFAULT 0, cost_usd REAL NOT NULL DEFAULT 0, session_id TEXT, parent_job_id TEXT, project TEXT NOT NULL DEFAULT '', host TEXT NOT NULL DEFAULT '');

CREATE INDEX jobs_claim_idx ON jobs (state, priority, seq);

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
, route TEXT NOT NULL DEFAULT 'orchestrator', deadline_at INTEGER NOT NULL DEFAULT 0, payload_hash TEXT NOT NULL DEFAULT '', attempt INTEGER NOT NULL DEFAULT 0);

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
, payload_hash TEXT NOT NULL DEFAULT '', input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0);

CREATE TABLE decision_cache (
    decision_key TEXT    PRIMARY KEY,
    answer       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
, hits INTEGER NOT NULL DEFAULT 0);

CREATE INDEX asks_deadline_idx ON asks (status, deadline_at);

CREATE INDEX jobs_project_idx ON jobs (project, seq);

CREATE INDEX jobs_idempotency_idx ON jobs (project, idempotency_key, seq);

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

CREATE TABLE relays (
    id         TEXT    PRIMARY KEY,
    host       TEXT    NOT NULL,
    data_dir   TEXT    NOT NULL,
    instance   TEXT    NOT NULL,
    version    TEXT    NOT NULL,
    projects   TEXT,
    executors  TEXT,
    started_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL
);

CREATE INDEX relays_seen_idx ON relays (seen_at DESC, id);

INSERT INTO sqlite_sequence (name, seq) VALUES ('job_events', 0);
