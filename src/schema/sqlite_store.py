"""The SQLite event store: the embedded default backend of the ``EventStore`` port.

Every append runs in one ``BEGIN IMMEDIATE`` transaction that also updates the
projections, so the projection can never disagree with the log.  A deferred
transaction that later upgrades to a write lock fails at once with SQLITE_BUSY
whatever the busy timeout, hence IMMEDIATE.  ``busy_timeout`` waits inside
SQLite; on top of it we retry with backoff until ``retry_deadline_s`` so a
writer holding the lock for longer (an open ``sqlite3`` shell) delays us but
does not lose an event.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schema import migrate, projections
from schema.errors import (
    ConcurrencyError,
    JobNotFound,
    StoreBusy,
)
from schema.events import Event, job_id_of
from schema.jobs import Job, JobState, apply
from schema.mapper import Recorded, decode, encode
from schema.store import ANY, _Any

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="microseconds")


class SQLiteEventStore:
    """Event log + job projection in one SQLite file (WAL, synchronous=FULL)."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Clock = utc_now,
        create: bool = False,
        busy_timeout_s: float = 5.0,
        retry_deadline_s: float = 60.0,
        backup_dir: Path | None = None,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._retry_deadline_s = retry_deadline_s
        self._lock = threading.RLock()
        self._conn = migrate.open_database(
            self.path, create=create, busy_timeout_s=busy_timeout_s, backup_dir=backup_dir
        )

    # --- writing -------------------------------------------------------------

    def append(
        self,
        stream: str,
        events: Sequence[Event],
        *,
        expected_version: int | _Any = ANY,
        idempotency_key: str | None = None,
    ) -> list[Recorded]:
        """Append ``events`` to ``stream`` atomically and update the projections.

        With an ``idempotency_key`` already stored, nothing is written and the
        records of the first append are returned: a caller killed between commit
        and acknowledgement can simply append again.
        """
        if not events:
            return []
        at = iso(self._clock())
        with self._write() as conn:
            if idempotency_key is not None:
                done = self._by_key(conn, idempotency_key)
                if done:
                    return done
            current = self._stream_version(conn, stream)
            if not isinstance(expected_version, _Any) and expected_version != current:
                raise ConcurrencyError(stream, expected_version, current)
            records = []
            for i, event in enumerate(events):
                key = None
                if idempotency_key is not None:
                    key = idempotency_key if i == 0 else f"{idempotency_key}#{i}"
                records.append(self._insert(conn, stream, current + i + 1, event, at, key))
            return records

    def _insert(
        self, conn: sqlite3.Connection, stream: str, version: int, event: Event, at: str, key: str | None
    ) -> Recorded:
        type_, class_version, data = encode(event)
        cur = conn.execute(
            "INSERT INTO events (stream, version, type, class_version, data, at, idempotency_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (stream, version, type_, class_version, data, at, key),
        )
        rec = Recorded(cur.lastrowid or 0, stream, version, at, event, key)
        self._project(conn, rec)
        return rec

    def _project(self, conn: sqlite3.Connection, rec: Recorded) -> None:
        job_id = job_id_of(rec.stream)
        if job_id is None:
            projections.apply(conn, rec)
            return
        job = self._job(conn, job_id)
        new = apply(job, rec.event, at=rec.at, version=rec.version)
        write_job(conn, new)

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._conn
            self._begin_immediate(conn)
            try:
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as e:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise migrate.translate(e, self.path) from e
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        start = time.monotonic()
        delay = 0.01
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as e:
                waited = time.monotonic() - start
                if not migrate.is_busy(e):
                    raise migrate.translate(e, self.path) from e
                if waited >= self._retry_deadline_s:
                    raise StoreBusy(str(self.path), waited) from e
                time.sleep(delay)  # backoff between busy-timeout rounds, not a test wait
                delay = min(delay * 2, 0.5)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A raw write transaction for maintenance code in :mod:`schema` (compaction)."""
        with self._write() as conn:
            yield conn

    # --- reading -------------------------------------------------------------

    def _read(self, sql: str, args: Sequence[object] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.Error as e:
                raise migrate.translate(e, self.path) from e

    def read(self, stream: str, after_version: int = 0) -> list[Recorded]:
        rows = self._read(
            "SELECT * FROM events WHERE stream = ? AND version > ? ORDER BY version",
            (stream, after_version),
        )
        return [_record(r) for r in rows]

    def read_all(self, after_position: int = 0, limit: int | None = None, types: Sequence[str] = ()) -> list[Recorded]:
        sql = "SELECT * FROM events WHERE position > ?"
        args: list[object] = [after_position]
        if types:
            sql += f" AND type IN ({','.join('?' * len(types))})"
            args += list(types)
        sql += " ORDER BY position"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [_record(r) for r in self._read(sql, args)]

    def follow(
        self,
        after_position: int = 0,
        poll_s: float = 0.2,
        stop: threading.Event | None = None,
    ) -> Iterator[Recorded]:
        """Yield events after ``after_position`` as they are appended, until ``stop`` is set."""
        stop = stop or threading.Event()
        while not stop.is_set():
            batch = self.read_all(after_position, limit=500)
            for rec in batch:
                after_position = rec.position
                yield rec
            if not batch:
                stop.wait(poll_s)

    def high_water(self) -> int:
        """The highest position ever assigned (AUTOINCREMENT's counter: compaction cannot lower it)."""
        rows = self._read("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)")
        return int(rows[0][0])

    def last_position(self) -> int:
        rows = self._read("SELECT COALESCE(MAX(position), 0) FROM events")
        return int(rows[0][0])

    def stream_version(self, stream: str) -> int:
        with self._lock:
            return self._stream_version(self._conn, stream)

    @staticmethod
    def _stream_version(conn: sqlite3.Connection, stream: str) -> int:
        row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = ?", (stream,)).fetchone()
        return int(row[0])

    def _by_key(self, conn: sqlite3.Connection, key: str) -> list[Recorded]:
        # The first event of a batch holds the key itself, the others key#1, key#2, ...:
        # '#' < '$' in every collation, so the range is an index scan.
        rows = conn.execute(
            "SELECT * FROM events WHERE idempotency_key = ?"
            " OR (idempotency_key > ? AND idempotency_key < ?) ORDER BY position",
            (key, key + "#", key + "$"),
        ).fetchall()
        return [_record(r) for r in rows]

    # --- the job projection -------------------------------------------------

    @staticmethod
    def _job(conn: sqlite3.Connection, job_id: str) -> Job | None:
        row = conn.execute("SELECT doc FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_dict(json.loads(row[0])) if row else None

    def job(self, job_id: str) -> Job | None:
        rows = self._read("SELECT doc FROM jobs WHERE id = ?", (job_id,))
        return Job.from_dict(json.loads(rows[0][0])) if rows else None

    def find_job(self, ref: str) -> Job:
        """A job by id or unique id prefix (what users type)."""
        exact = self.job(ref)
        if exact is not None:
            return exact
        escaped = ref.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
        rows = self._read("SELECT doc FROM jobs WHERE id LIKE ? ESCAPE '\\' LIMIT 2", (escaped + "%",))
        if len(rows) != 1 or not ref:
            raise JobNotFound(ref, len(rows))
        return Job.from_dict(json.loads(rows[0][0]))

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
        return [Job.from_dict(json.loads(r[0])) for r in self._read(sql, args)]

    def dispatchable(self, now_iso: str, limit: int) -> list[Job]:
        """Jobs that may start now, oldest first: queued, or waiting for a retry whose time has come.

        Two index range reads (jobs_queue) merged here, so the cost does not grow with the backlog.
        """
        queued = self._read("SELECT doc FROM jobs WHERE state = 'queued' ORDER BY submitted_at, id LIMIT ?", (limit,))
        due = self._read(
            "SELECT doc FROM jobs WHERE state = 'retry_wait'"
            " AND COALESCE(json_extract(doc, '$.not_before'), '') <= ? ORDER BY submitted_at, id LIMIT ?",
            (now_iso, limit),
        )
        jobs = [Job.from_dict(json.loads(r[0])) for r in [*queued, *due]]
        return sorted(jobs, key=lambda j: (j.submitted_at, j.id))[:limit]

    def earliest_retry(self) -> str | None:
        rows = self._read("SELECT MIN(json_extract(doc, '$.not_before')) FROM jobs WHERE state = 'retry_wait'")
        return rows[0][0] if rows and rows[0][0] else None

    def firing_alerts(self) -> list[dict[str, Any]]:
        rows = self._read("SELECT * FROM alerts WHERE firing = 1 ORDER BY level, rule")
        return [dict(r) for r in rows]

    def alerts(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._read("SELECT * FROM alerts ORDER BY rule")]

    def due_notifications(self, now_iso: str, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT * FROM notifications WHERE state = 'pending' AND COALESCE(not_before, '') <= ?"
            " ORDER BY queued_at LIMIT ?",
            (now_iso, limit),
        )
        return [{**dict(r), "payload": json.loads(r["payload"])} for r in rows]

    def notification(self, key: str) -> dict[str, Any] | None:
        rows = self._read("SELECT * FROM notifications WHERE key = ?", (key,))
        return {**dict(rows[0]), "payload": json.loads(rows[0]["payload"])} if rows else None

    def max_notified_position(self) -> int | None:
        """The last event position already turned into notifications (the notifier's cursor)."""
        rows = self._read("SELECT MAX(json_extract(payload, '$.position')) FROM notifications")
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def projection_snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        with self._lock:
            return projections.snapshot(self._conn)

    def window_counts(self, since_iso: str) -> dict[str, Any]:
        """Numbers the metrics need, over jobs and events since ``since_iso`` (one read each, indexed)."""
        one = lambda sql, *args: self._read(sql, args)[0][0]  # noqa: E731 - local shorthand
        finished = {
            r[0]: int(r[1])
            for r in self._read("SELECT state, COUNT(*) FROM jobs WHERE finished_at >= ? GROUP BY state", (since_iso,))
        }
        return {
            "oldest_queued_at": one("SELECT MIN(submitted_at) FROM jobs WHERE state IN ('queued', 'retry_wait')"),
            "orphaned": int(one("SELECT COUNT(*) FROM events WHERE type = 'job.orphaned' AND at >= ?", since_iso)),
            "final_failures": int(
                one(
                    "SELECT COUNT(*) FROM events WHERE type = 'job.failed' AND at >= ?"
                    " AND json_extract(data, '$.final') = 1",
                    since_iso,
                )
            ),
            "attempt_failures": int(
                one("SELECT COUNT(*) FROM events WHERE type = 'job.failed' AND at >= ?", since_iso)
            ),
            "audio_s": float(
                one(
                    "SELECT COALESCE(SUM(json_extract(doc, '$.duration_s')), 0) FROM jobs"
                    " WHERE state = 'succeeded' AND finished_at >= ?",
                    since_iso,
                )
            ),
            "submitted": int(one("SELECT COUNT(*) FROM jobs WHERE submitted_at >= ?", since_iso)),
            "finished": finished,
        }

    def first_event_at(self) -> str | None:
        rows = self._read("SELECT at FROM events ORDER BY position LIMIT 1")
        return rows[0][0] if rows else None

    def count_by_state(self) -> dict[str, int]:
        rows = self._read("SELECT state, COUNT(*) FROM jobs GROUP BY state")
        return {r[0]: int(r[1]) for r in rows}

    def find_duplicate(self, sha256: str, options_key: str, exclude: str) -> Job | None:
        """A succeeded job with the same content and transcript-relevant options."""
        rows = self._read(
            "SELECT doc FROM jobs WHERE sha256 = ? AND options_key = ? AND state = ? "
            "AND id != ? ORDER BY finished_at LIMIT 1",
            (sha256, options_key, JobState.succeeded.value, exclude),
        )
        return Job.from_dict(json.loads(rows[0][0])) if rows else None

    def out_key_owners(self, out_key: bytes) -> list[Job]:
        rows = self._read("SELECT doc FROM jobs WHERE out_key = ?", (out_key,))
        return [Job.from_dict(json.loads(r[0])) for r in rows]

    def stored_jobs(self) -> dict[str, Job]:
        return {j.id: j for j in self.jobs()}

    def size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(self.path) + suffix)
            with contextlib.suppress(FileNotFoundError):
                total += p.stat().st_size
        return total

    def checkpoint(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def quick_check(self) -> str:
        rows = self._read("PRAGMA quick_check")
        return "; ".join(str(r[0]) for r in rows)

    def integrity_check(self) -> str:
        rows = self._read("PRAGMA integrity_check")
        return "; ".join(str(r[0]) for r in rows)

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA optimize")
            self._conn.close()


def out_key(out_stem: str | None) -> bytes | None:
    """Collision key of an outbox stem: case- and normalisation-insensitive, as bytes.

    Case-insensitive because macOS volumes are; NFC because a name typed on
    macOS (NFD) and on Linux (NFC) must not produce two transcripts that the
    user sees as one.  Bytes because non-UTF-8 names are surrogate-escaped.
    """
    if out_stem is None:
        return None
    import unicodedata

    return unicodedata.normalize("NFC", out_stem).casefold().encode("utf-8", "surrogateescape")


def write_job(conn: sqlite3.Connection, job: Job) -> None:
    conn.execute(
        "INSERT INTO jobs (id, state, version, submitted_at, updated_at, finished_at, sha256,"
        " options_key, out_key, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(id) DO UPDATE SET state=excluded.state, version=excluded.version,"
        " updated_at=excluded.updated_at, finished_at=excluded.finished_at,"
        " sha256=excluded.sha256, options_key=excluded.options_key,"
        " out_key=excluded.out_key, doc=excluded.doc",
        (
            job.id,
            job.state.value,
            job.version,
            job.submitted_at,
            job.updated_at,
            job.finished_at,
            job.sha256,
            job.options_key,
            out_key(job.out_stem),
            json.dumps(job.to_dict(), separators=(",", ":"), sort_keys=True),
        ),
    )


def _record(row: sqlite3.Row) -> Recorded:
    return Recorded(
        position=row["position"],
        stream=row["stream"],
        version=row["version"],
        at=row["at"],
        event=decode(row["type"], row["class_version"], row["data"]),
        idempotency_key=row["idempotency_key"],
    )
