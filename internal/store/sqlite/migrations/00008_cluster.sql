-- Several relays on one database (the PostgreSQL store's twin; a SQLite
-- store serves one relay process, but keeps the same rows).
--
-- jobs.host binds a job to the host whose relays may claim it (a local
-- repository exists only there); '' lets any relay claim it.
--
-- relays records the relay processes sharing the database (store.Registry);
-- projects and executors are JSON arrays, NULL for "any".

-- +goose Up
ALTER TABLE jobs ADD COLUMN host TEXT NOT NULL DEFAULT '';

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

-- +goose Down
DROP TABLE relays;
ALTER TABLE jobs DROP COLUMN host;
