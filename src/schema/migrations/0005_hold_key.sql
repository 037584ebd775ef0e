-- Schema version 5: a held inbox name is its own key, beside the file's identity.
-- intake_key is now the file's identity for every unfinished job, however it was settled (two
-- hosts may settle one file differently: one saw its rename, the other saw it stand still).
-- hold_key: the name an unfinished job taken in place holds. Jobs held before this version get
-- their identity key when their next event is written.
ALTER TABLE jobs ADD COLUMN hold_key TEXT;
UPDATE jobs SET hold_key = intake_key, intake_key = NULL WHERE intake_key LIKE 'held:%';
CREATE UNIQUE INDEX jobs_hold ON jobs (hold_key);
