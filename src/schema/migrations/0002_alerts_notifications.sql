-- Schema version 2: projections of the daemon-level streams.
-- alerts: one row per rule, firing or not; maintained from alert.raised/resolved.
CREATE TABLE alerts (
    rule        TEXT PRIMARY KEY,
    level       TEXT NOT NULL,
    firing      INTEGER NOT NULL,
    metric      TEXT NOT NULL,
    value       REAL NOT NULL,
    threshold   REAL NOT NULL,
    message     TEXT NOT NULL,
    raised_at   TEXT NOT NULL,
    resolved_at TEXT
);

-- notifications: the outbox of deliveries to webhooks and commands.
CREATE TABLE notifications (
    key         TEXT PRIMARY KEY,
    target      TEXT NOT NULL,
    payload     TEXT NOT NULL,
    state       TEXT NOT NULL,          -- pending | delivered | failed
    attempts    INTEGER NOT NULL DEFAULT 0,
    not_before  TEXT,
    last_error  TEXT,
    queued_at   TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX notifications_due ON notifications (state, not_before);

-- Windowed metrics read finished jobs by time.
CREATE INDEX jobs_finished ON jobs (finished_at);
