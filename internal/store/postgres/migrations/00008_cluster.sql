-- Several relays on one database.
--
-- jobs.host binds a job to the host whose relays may claim it (a local
-- repository exists only there); '' lets any relay claim it. Claims keep
-- walking jobs_claim_idx and filter on host and executor.
--
-- relays records the relay processes sharing the database (store.Registry);
-- projects and executors are JSON arrays, NULL for "any".
--
-- artifact_chunks keeps the bytes of artifacts (store.ArtifactContents) in
-- chunks of 256 KiB, numbered from 0, so that any relay can stream an
-- artifact another relay produced without holding all of it in memory. An
-- artifact stored without bytes has no chunks; replacing an artifact
-- replaces its chunks.

-- +goose Up
ALTER TABLE jobs ADD COLUMN host text NOT NULL DEFAULT '';

CREATE TABLE relays (
    id         text   PRIMARY KEY,
    host       text   NOT NULL,
    data_dir   text   NOT NULL,
    instance   text   NOT NULL,
    version    text   NOT NULL,
    projects   jsonb,
    executors  jsonb,
    started_at bigint NOT NULL,
    seen_at    bigint NOT NULL
);
CREATE INDEX relays_seen_idx ON relays (seen_at DESC, id);

CREATE TABLE artifact_chunks (
    job_id text    NOT NULL,
    kind   text    NOT NULL,
    seq    integer NOT NULL,
    data   bytea   NOT NULL,
    PRIMARY KEY (job_id, kind, seq),
    FOREIGN KEY (job_id, kind) REFERENCES artifacts (job_id, kind) ON DELETE CASCADE
);

-- +goose Down
DROP TABLE artifact_chunks;
DROP TABLE relays;
ALTER TABLE jobs DROP COLUMN host;
