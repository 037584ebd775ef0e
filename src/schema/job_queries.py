"""The job projection's queries (the read side the daemon, the CLI and the web face use), written once."""

from __future__ import annotations

from collections.abc import Sequence

from schema.errors import JobNotFound
from schema.jobs import Job, JobState
from schema.store_backend import StoreBackend
from schema.store_rows import Executor, _job, held_key


class JobQueries(StoreBackend):
    """Jobs by id, prefix, state, held name, submission time, content; what may start now."""

    @staticmethod
    def _job_in(x: Executor, job_id: str) -> Job | None:
        row = x.execute("SELECT doc FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def job(self, job_id: str) -> Job | None:
        rows = self._read("SELECT doc FROM jobs WHERE id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def find_job(self, ref: str) -> Job:
        """A job by id or unique id prefix (what users type)."""
        exact = self.job(ref)
        if exact is not None:
            return exact
        escaped = ref.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
        rows = self._read("SELECT doc FROM jobs WHERE id LIKE ? ESCAPE '\\' LIMIT 2", (escaped + "%",))
        if len(rows) != 1 or not ref:
            raise JobNotFound(ref, len(rows))
        return _job(rows[0])

    def jobs(self, states: Sequence[JobState] = (), limit: int | None = None) -> list[Job]:
        sql = "SELECT doc FROM jobs"
        args: list[object] = []
        if states:
            sql += f" WHERE state IN ({','.join('?' * len(states))})"
            args += [s.value for s in states]
        sql += " ORDER BY submitted_at, id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [_job(r) for r in self._read(sql, args)]

    def holder(self, source: str) -> Job | None:
        """The unfinished job that holds this inbox name (a file written in place), if any."""
        rows = self._read("SELECT doc FROM jobs WHERE hold_key = ?", (held_key(source),))
        return _job(rows[0]) if rows else None

    def submitted_between(self, start_iso: str, end_iso: str) -> list[Job]:
        """Jobs submitted in [start, end], newest first (one index range per state: no full scan)."""
        found: list[Job] = []
        for state in JobState:
            rows = self._read(
                "SELECT doc FROM jobs WHERE state = ? AND submitted_at >= ? AND submitted_at <= ?",
                (state.value, start_iso, end_iso),
            )
            found += [_job(r) for r in rows]
        return sorted(found, key=lambda j: (j.submitted_at, j.id), reverse=True)

    def stored_jobs(self) -> dict[str, Job]:
        return {j.id: j for j in self.jobs()}

    def _due_sql(self) -> str:
        return f"COALESCE({self.dialect.json('doc', 'not_before')}, '') <= ?"

    def dispatchable(self, now_iso: str, limit: int) -> list[Job]:
        """Jobs that may start now, oldest first: queued, or waiting for a retry whose time has come.

        Two index range reads (jobs_queue) merged here, so the cost does not grow with the backlog.
        """
        queued = self._read("SELECT doc FROM jobs WHERE state = 'queued' ORDER BY submitted_at, id LIMIT ?", (limit,))
        due = self._read(
            f"SELECT doc FROM jobs WHERE state = 'retry_wait' AND {self._due_sql()} ORDER BY submitted_at, id LIMIT ?",
            (now_iso, limit),
        )
        jobs = [_job(r) for r in [*queued, *due]]
        return sorted(jobs, key=lambda j: (j.submitted_at, j.id))[:limit]

    def earliest_retry(self) -> str | None:
        rows = self._read(f"SELECT MIN({self.dialect.json('doc', 'not_before')}) FROM jobs WHERE state = 'retry_wait'")
        return rows[0][0] if rows and rows[0][0] else None

    def count_by_state(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self._read("SELECT state, COUNT(*) FROM jobs GROUP BY state")}

    def find_duplicate(self, sha256: str, options_key: str, exclude: str) -> Job | None:
        """A succeeded job with the same content and transcript-relevant options."""
        rows = self._read(
            "SELECT doc FROM jobs WHERE sha256 = ? AND options_key = ? AND state = ? AND id != ?"
            " ORDER BY finished_at LIMIT 1",
            (sha256, options_key, JobState.succeeded.value, exclude),
        )
        return _job(rows[0]) if rows else None

    def out_key_owners(self, key: bytes) -> list[Job]:
        return [_job(r) for r in self._read("SELECT doc FROM jobs WHERE out_key = ?", (key,))]
