-- spoolscribe on PostgreSQL, schema version 1: the same tables and rules as SQLite's
-- migrations 0001-0004. Text that is compared or ordered uses the "C" collation, so
-- ISO timestamps and idempotency-key ranges sort byte-wise, as in SQLite.
CREATE TABLE events (
    position        BIGSERIAL PRIMARY KEY,
    stream          TEXT COLLATE "C" NOT NULL,
    version         INTEGER NOT NULL CHECK (version >= 1),
    type            TEXT COLLATE "C" NOT NULL,
    class_version   INTEGER NOT NULL DEFAULT 1,
    data            TEXT NOT NULL,
    at              TEXT COLLATE "C" NOT NULL,
    idempotency_key TEXT COLLATE "C",
    UNIQUE (stream, version)
);
CREATE UNIQUE INDEX events_idempotency ON events (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_type ON events (type, position);

CREATE TABLE jobs (
    id           TEXT COLLATE "C" PRIMARY KEY,
    state        TEXT COLLATE "C" NOT NULL,
    version      INTEGER NOT NULL,
    submitted_at TEXT COLLATE "C" NOT NULL,
    updated_at   TEXT COLLATE "C" NOT NULL,
    finished_at  TEXT COLLATE "C",
    sha256       TEXT,
    options_key  TEXT NOT NULL,
    out_key      BYTEA,
    intake_key   TEXT,
    doc          TEXT NOT NULL
);
CREATE INDEX jobs_state ON jobs (state, submitted_at);
CREATE INDEX jobs_identity ON jobs (sha256, options_key);
CREATE INDEX jobs_out_key ON jobs (out_key);
CREATE INDEX jobs_finished ON jobs (finished_at);
CREATE INDEX jobs_queue ON jobs (state, submitted_at, id);
CREATE UNIQUE INDEX jobs_intake ON jobs (intake_key);

CREATE TABLE alerts (
    rule        TEXT COLLATE "C" PRIMARY KEY,
    level       TEXT COLLATE "C" NOT NULL,
    firing      INTEGER NOT NULL,
    metric      TEXT NOT NULL,
    value       DOUBLE PRECISION NOT NULL,
    threshold   DOUBLE PRECISION NOT NULL,
    message     TEXT NOT NULL,
    raised_at   TEXT COLLATE "C" NOT NULL,
    resolved_at TEXT COLLATE "C"
);

CREATE TABLE notifications (
    key         TEXT COLLATE "C" PRIMARY KEY,
    target      TEXT NOT NULL,
    payload     TEXT NOT NULL,
    state       TEXT COLLATE "C" NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    not_before  TEXT COLLATE "C",
    last_error  TEXT,
    queued_at   TEXT COLLATE "C" NOT NULL,
    updated_at  TEXT COLLATE "C" NOT NULL
);
CREATE INDEX notifications_due ON notifications (state, not_before);

CREATE TABLE leases (
    instance   TEXT COLLATE "C" PRIMARY KEY,
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    until      TEXT COLLATE "C" NOT NULL,
    renewed_at TEXT COLLATE "C" NOT NULL
);
