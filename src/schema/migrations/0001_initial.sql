-- spoolscribe event store, schema version 1.
-- events: the append-only log. position is the global order (AUTOINCREMENT so a
-- position is never reused, even after compaction deletes rows); UNIQUE(stream,
-- version) is the optimistic-concurrency guard; idempotency_key makes a retried
-- append after a lost acknowledgement a no-op.
CREATE TABLE events (
    position        INTEGER PRIMARY KEY AUTOINCREMENT,
    stream          TEXT    NOT NULL,
    version         INTEGER NOT NULL CHECK (version >= 1),
    type            TEXT    NOT NULL,
    class_version   INTEGER NOT NULL DEFAULT 1,
    data            TEXT    NOT NULL,
    at              TEXT    NOT NULL,
    idempotency_key TEXT,
    UNIQUE (stream, version)
);
CREATE UNIQUE INDEX events_idempotency ON events (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_type ON events (type, position);

-- jobs: the projection of every job-<id> stream, updated in the same
-- transaction as the append. doc holds the whole folded Job as JSON; the other
-- columns exist to be indexed.
CREATE TABLE jobs (
    id           TEXT PRIMARY KEY,
    state        TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    submitted_at TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL,
    finished_at  TEXT,
    sha256       TEXT,
    options_key  TEXT    NOT NULL,
    out_key      BLOB,
    doc          TEXT    NOT NULL
);
CREATE INDEX jobs_state ON jobs (state, submitted_at);
CREATE INDEX jobs_identity ON jobs (sha256, options_key);
CREATE INDEX jobs_out_key ON jobs (out_key);
