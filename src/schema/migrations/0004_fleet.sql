-- Schema version 4: what several daemons sharing one store need (also harmless alone).
-- intake_key: one unfinished job per dropped file, however many hosts notice it.
ALTER TABLE jobs ADD COLUMN intake_key TEXT;
CREATE UNIQUE INDEX jobs_intake ON jobs (intake_key);

-- leases: each daemon's "alive until", from daemon.lease / daemon.stopped.
CREATE TABLE leases (
    instance   TEXT PRIMARY KEY,
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    until      TEXT NOT NULL,
    renewed_at TEXT NOT NULL
);
