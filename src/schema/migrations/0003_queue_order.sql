-- Schema version 3: dispatch reads the queue in order without sorting it.
-- (state, submitted_at, id) lets "the next N queued jobs" be an index range
-- read: with a 10k backlog the old plan sorted every queued job per dispatch.
CREATE INDEX jobs_queue ON jobs (state, submitted_at, id);
