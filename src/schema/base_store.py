"""What every backend of the ``EventStore`` port shares: the append algorithm, the projections and
every query, written once in ``?``-placeholder SQL.

A backend (SQLite, PostgreSQL) supplies connections and transactions, the few
SQL spellings that differ (:class:`Dialect`), how a new event's position is
obtained, and how appends are serialised.  ``tests/schema/test_store_contract.py``
runs against each.
"""

from __future__ import annotations

import contextlib
import json
import threading
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from schema import projections, store_faults
from schema.errors import ConcurrencyError, JobNotFound, StaleAttempt
from schema.events import Event, job_id_of
from schema.jobs import ACTIVE, Job, JobState, apply
from schema.mapper import Recorded, decode, encode

Clock = Callable[[], datetime]


class _Any:
    """Sentinel: append at whatever version the stream is at."""

    def __repr__(self) -> str:
        return "ANY"


ANY = _Any()


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Leader:
    """Who holds a fleet's leader lock: the database session, and the daemon instance it belongs to."""

    pid: int
    instance: str | None  # None: a session that names no daemon instance


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Executor(Protocol):
    """A connection inside a transaction, speaking ``?`` SQL whatever the backend."""

    def execute(self, sql: str, args: Sequence[object] = ()) -> Cursor: ...


@dataclass(frozen=True)
class Dialect:
    """The SQL spellings that differ between backends."""

    name: str

    def json(self, column: str, key: str, kind: str = "text") -> str:
        if self.name == "sqlite":
            return f"json_extract({column}, '$.{key}')"
        cast = {"text": "", "real": "::float8", "int": "::bigint", "bool": "::boolean"}[kind]
        return f"(({column})::jsonb ->> '{key}'){cast}"

    def true(self) -> str:
        return "1" if self.name == "sqlite" else "true"


def out_key(out_stem: str | None) -> bytes | None:
    """Collision key of an outbox stem: case- and normalisation-insensitive, as bytes.

    Case-insensitive because macOS volumes are; NFC because a name typed on
    macOS (NFD) and on Linux (NFC) must not produce two transcripts that the
    user sees as one.  Bytes because non-UTF-8 names are surrogate-escaped.
    """
    if out_stem is None:
        return None
    return unicodedata.normalize("NFC", out_stem).casefold().encode("utf-8", "surrogateescape")


def intake_key(job: Job) -> str | None:
    """What makes two notices of one dropped file the same (unique while the job is unfinished).

    The file's identity only, never how it was settled: in a fleet one host may see a file's
    rename and another only see it stand still, and both notices must meet on this key.
    """
    if job.state.terminal:
        return None
    # ASCII (json.dumps escapes non-UTF-8 names): PostgreSQL text takes neither NUL nor surrogates.
    return f"{job.size}:{job.mtime_ns}:{json.dumps(job.source)}"


def hold_key(job: Job) -> str | None:
    """The inbox name an unfinished job taken in place holds (unique: one such job per name)."""
    if job.state.terminal or not job.holds_inbox_name:
        return None
    return held_key(job.source)


def held_key(source: str) -> str:
    return f"held:{json.dumps(source)}"


def write_job(x: Executor, job: Job) -> None:
    x.execute(
        "INSERT INTO jobs (id, state, version, submitted_at, updated_at, finished_at, sha256,"
        " options_key, out_key, intake_key, hold_key, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(id) DO UPDATE SET state=excluded.state, version=excluded.version,"
        " updated_at=excluded.updated_at, finished_at=excluded.finished_at,"
        " sha256=excluded.sha256, options_key=excluded.options_key,"
        " out_key=excluded.out_key, intake_key=excluded.intake_key, hold_key=excluded.hold_key,"
        " doc=excluded.doc",
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
            intake_key(job),
            hold_key(job),
            json.dumps(job.to_dict(), separators=(",", ":"), sort_keys=True),
        ),
    )


def record(row: Any) -> Recorded:
    return Recorded(
        position=int(row["position"]),
        stream=row["stream"],
        version=int(row["version"]),
        at=row["at"],
        event=decode(row["type"], int(row["class_version"]), row["data"]),
        idempotency_key=row["idempotency_key"],
    )


def _job(row: Any) -> Job:
    return Job.from_dict(json.loads(row[0]))


class BaseEventStore:
    dialect = Dialect("sqlite")
    fleet = False  # several daemons share this store (leases, leader, claims matter)
    url: str  # what opens it again (a SQLite path or a PostgreSQL URL)
    path: Path  # the SQLite file (a placeholder for PostgreSQL)

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._snapshot_depth = 0

    # --- the backend's life -----------------------------------------------------------------

    def close(self) -> None:
        raise NotImplementedError

    def size_bytes(self) -> int:
        raise NotImplementedError

    def schema_version(self) -> int:
        raise NotImplementedError

    def known_version(self) -> int:
        raise NotImplementedError

    def high_water(self) -> int:
        raise NotImplementedError

    def checkpoint(self) -> None:
        return None

    def quick_check(self) -> str:
        return "ok"

    def integrity_check(self) -> str:
        return "ok"

    # --- fleet services (one daemon alone: always the leader, nothing to listen for) ---------

    def listen(self, wake: Callable[[], None], stop: threading.Event) -> threading.Thread | None:
        return None

    def try_lead(self) -> bool:
        return True

    def identify(self, host: str, instance: str) -> None:
        """Name this daemon's database sessions (a fleet's store; nothing to name in a file)."""

    def leader_session(self) -> Leader | None:
        """The session holding the leader lock: none in a file, where this daemon is alone."""
        return None

    def end_session(self, pid: int) -> bool:
        return False

    def db_now(self) -> str:
        """The clock leases are judged by: the database's in a fleet, this machine's alone."""
        return iso(self._clock())

    # --- what a backend provides ----------------------------------------------------

    def _write(self) -> contextlib.AbstractContextManager[Executor]:
        raise NotImplementedError

    def _read(self, sql: str, args: Sequence[object] = ()) -> list[Any]:
        raise NotImplementedError

    def _insert_event(self, x: Executor, row: tuple[object, ...]) -> int:
        """Insert (stream, version, type, class_version, data, at, idempotency_key); return the position."""
        raise NotImplementedError

    def _serialise(self, x: Executor) -> None:
        """Make concurrent appends commit in position order (a no-op where writers are exclusive)."""

    def _lock_job_row(self, x: Executor, job_id: str) -> None:
        """Lock the job's row before the append lock: one lock order everywhere, so no deadlock with a claim."""

    def _lock_for_claim(self, x: Executor, job_id: str) -> int | None:
        """The job's version, its row locked against other claimers; None when another holds it."""
        rows = x.execute("SELECT version FROM jobs WHERE id = ?", (job_id,)).fetchall()
        return int(rows[0][0]) if rows else None

    def _begin_snapshot(self) -> None:
        """Start a read-only transaction whose reads all see one moment of the database."""
        raise NotImplementedError

    def _end_snapshot(self) -> None:
        raise NotImplementedError

    def _reader(self) -> Executor:
        """The connection as an executor, for multi-table reads inside :meth:`snapshot`."""
        raise NotImplementedError

    def _inject_refusal(self) -> None:
        """Test-only (:mod:`schema.store_faults`): make the coming write fail as this backend fails."""
        raise NotImplementedError

    def _inject_lost_ack(self) -> None:
        """Test-only: the write just committed; fail as a connection lost before its acknowledgement."""
        raise NotImplementedError

    def _raise_translated(self, e: Exception) -> None:
        """Turn a backend error into ours (a unique violation on intake_key, a full disk ...)."""

    # --- writing -----------------------------------------------------------------------

    def append(
        self,
        stream: str,
        events: Sequence[Event],
        *,
        expected_version: int | _Any = ANY,
        idempotency_key: str | None = None,
        attempt_of: str | None = None,
    ) -> list[Recorded]:
        """Append ``events`` to ``stream`` atomically and update the projections.

        With an ``idempotency_key`` already stored, nothing is written and the
        records of the first append are returned: a caller killed between commit
        and acknowledgement can simply append again.  ``attempt_of`` fences an
        attempt: the append is refused (:class:`StaleAttempt`) unless the job is
        still running or publishing on that worker - a host that was cut off
        while its job moved elsewhere cannot record a second result.
        """
        if not events:
            return []
        fault = store_faults.take(events[0].type)
        if fault == "refuse":
            self._inject_refusal()
        with self._write() as x:
            records = self._append_in(x, stream, events, expected_version, idempotency_key, attempt_of)
        if fault == "lost_ack":
            self._inject_lost_ack()
        return records

    def _append_in(
        self,
        x: Executor,
        stream: str,
        events: Sequence[Event],
        expected_version: int | _Any,
        idempotency_key: str | None,
        attempt_of: str | None,
    ) -> list[Recorded]:
        at = iso(self._clock())
        job_id = job_id_of(stream)
        if job_id is not None:
            self._lock_job_row(x, job_id)
        self._serialise(x)
        if attempt_of is not None:  # first: a stale attempt records nothing, not even an idempotent replay
            self._fence(x, stream, attempt_of)
        if idempotency_key is not None:
            done = self._by_key(x, idempotency_key)
            if done:
                return done
        current = self._stream_version(x, stream)
        if not isinstance(expected_version, _Any) and expected_version != current:
            raise ConcurrencyError(stream, expected_version, current)
        records = []
        for i, event in enumerate(events):
            key = None
            if idempotency_key is not None:
                key = idempotency_key if i == 0 else f"{idempotency_key}#{i}"
            records.append(self._insert(x, stream, current + i + 1, event, at, key))
        return records

    def _fence(self, x: Executor, stream: str, worker: str) -> None:
        job = self._job_in(x, job_id_of(stream) or "")
        if job is None or job.worker != worker or job.state not in ACTIVE:
            holder = f"{job.state.value} on {job.worker}" if job else "absent"
            raise StaleAttempt(job_id_of(stream) or stream, worker, holder)

    def _insert(self, x: Executor, stream: str, version: int, event: Event, at: str, key: str | None) -> Recorded:
        type_, class_version, data = encode(event)
        position = self._insert_event(x, (stream, version, type_, class_version, data, at, key))
        rec = Recorded(position, stream, version, at, event, key)
        job_id = job_id_of(rec.stream)
        if job_id is None:
            projections.apply(x, rec)
        else:
            write_job(x, apply(self._job_in(x, job_id), rec.event, at=rec.at, version=rec.version))
        return rec

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Executor]:
        """A raw write transaction for maintenance code in :mod:`schema` (compaction)."""
        with self._write() as x:
            yield x

    # --- reading -----------------------------------------------------------------------

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Make every read in the block see the same committed state.

        ``replay --verify`` reads the whole log and then the projection; with
        daemons still appending (lease renewals every few seconds) two separate
        reads would compare different moments and report a difference that
        does not exist.  Nested blocks share the outer snapshot.
        """
        with self._lock:
            if self._snapshot_depth == 0:
                self._begin_snapshot()
            self._snapshot_depth += 1
            try:
                yield
            finally:
                self._snapshot_depth -= 1
                if self._snapshot_depth == 0:
                    self._end_snapshot()

    def read(self, stream: str, after_version: int = 0) -> list[Recorded]:
        rows = self._read(
            "SELECT * FROM events WHERE stream = ? AND version > ? ORDER BY version", (stream, after_version)
        )
        return [record(r) for r in rows]

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
        return [record(r) for r in self._read(sql, args)]

    def follow(
        self, after_position: int = 0, poll_s: float = 0.2, stop: threading.Event | None = None
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

    def last_position(self) -> int:
        return int(self._read("SELECT COALESCE(MAX(position), 0) FROM events")[0][0])

    def stream_version(self, stream: str) -> int:
        return int(self._read("SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = ?", (stream,))[0][0])

    @staticmethod
    def _stream_version(x: Executor, stream: str) -> int:
        return int(x.execute("SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = ?", (stream,)).fetchone()[0])

    def _by_key(self, x: Executor, key: str) -> list[Recorded]:
        # The first event of a batch holds the key itself, the others key#1, key#2, ...:
        # '#' < '$' in every collation, so the range is an index scan.
        rows = x.execute(
            "SELECT * FROM events WHERE idempotency_key = ?"
            " OR (idempotency_key > ? AND idempotency_key < ?) ORDER BY position",
            (key, key + "#", key + "$"),
        ).fetchall()
        return [record(r) for r in rows]

    # --- the job projection --------------------------------------------------------------

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

    def claim(self, job: Job, started: Event, *, key: str | None = None) -> Job | None:
        """Start ``job`` if it is still waiting at the version seen; None if someone else took it first.

        The job's projection row is locked for the transaction that appends
        ``job.started`` (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so a host
        racing for the same job skips it at once and tries its next candidate
        instead of queueing behind the winner.
        """
        fault = store_faults.take(started.type)
        if fault == "refuse":
            self._inject_refusal()
        with self._write() as x:
            if self._lock_for_claim(x, job.id) != job.version:
                return None
            try:
                self._append_in(x, f"job-{job.id}", [started], job.version, key, None)
            except ConcurrencyError:
                return None
            claimed = self._job_in(x, job.id)
        if fault == "lost_ack":
            self._inject_lost_ack()
        return claimed

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

    def window_counts(self, since_iso: str) -> dict[str, Any]:
        """Numbers the metrics need, over jobs and events since ``since_iso`` (one read each, indexed)."""
        d = self.dialect

        def one(sql: str, *args: object) -> Any:
            return self._read(sql, args)[0][0]

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
                    f" AND {d.json('data', 'final', 'bool')} = {d.true()}",
                    since_iso,
                )
            ),
            "attempt_failures": int(
                one("SELECT COUNT(*) FROM events WHERE type = 'job.failed' AND at >= ?", since_iso)
            ),
            "audio_s": float(
                one(
                    f"SELECT COALESCE(SUM({d.json('doc', 'duration_s', 'real')}), 0) FROM jobs"
                    " WHERE state = 'succeeded' AND finished_at >= ?",
                    since_iso,
                )
            ),
            "submitted": int(one("SELECT COUNT(*) FROM jobs WHERE submitted_at >= ?", since_iso)),
            "folders_recreated": int(
                one("SELECT COUNT(*) FROM events WHERE type = 'daemon.folder_recreated' AND at >= ?", since_iso)
            ),
            "finished": finished,
        }

    def first_event_at(self) -> str | None:
        rows = self._read("SELECT at FROM events ORDER BY position LIMIT 1")
        return rows[0][0] if rows else None

    # --- the daemon-level projections -------------------------------------------------------

    def firing_alerts(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._read("SELECT * FROM alerts WHERE firing = 1 ORDER BY level, rule")]

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
        rows = self._read(f"SELECT MAX({self.dialect.json('payload', 'position', 'int')}) FROM notifications")
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def leases(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._read("SELECT * FROM leases ORDER BY instance")]

    def projection_snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        with self.snapshot():
            return projections.snapshot(self._reader())

    # --- maintenance ---------------------------------------------------------------------

    def compact_heartbeats(self, finished_before: str) -> tuple[int, int]:
        """Heartbeats of jobs finished before ``finished_before``: first and last kept, the count recorded.

        The fold counts ``1 + compacted`` per heartbeat and stamps the time of the
        last, so the projection - and ``spool replay --verify`` - are unchanged.
        """
        jobs = removed = 0
        with self._write() as x:
            self._serialise(x)
            streams = x.execute(
                "SELECT e.stream FROM events e JOIN jobs j ON e.stream = 'job-' || j.id"
                " WHERE e.type = 'job.heartbeat' AND j.finished_at IS NOT NULL AND j.finished_at < ?"
                " GROUP BY e.stream HAVING COUNT(*) > 2",
                (finished_before,),
            ).fetchall()
            for (stream,) in [tuple(r) for r in streams]:
                beats = [
                    tuple(r)
                    for r in x.execute(
                        "SELECT position, data FROM events WHERE stream = ? AND type = 'job.heartbeat'"
                        " ORDER BY version",
                        (stream,),
                    ).fetchall()
                ]
                middle, last = beats[1:-1], beats[-1]
                weight = sum(1 + int(json.loads(d).get("compacted", 0)) for _, d in middle)
                data = json.loads(last[1])
                data["compacted"] = int(data.get("compacted", 0)) + weight
                x.execute(
                    "UPDATE events SET data = ? WHERE position = ?",
                    (json.dumps(data, separators=(",", ":"), sort_keys=True), last[0]),
                )
                for position, _ in middle:
                    x.execute("DELETE FROM events WHERE position = ?", (position,))
                jobs += 1
                removed += len(middle)
        return jobs, removed

    def compact_leases(self, before: str) -> int:
        """Lease renewals older than ``before`` except each instance's last: the projection needs no more."""
        with self._write() as x:
            self._serialise(x)
            cur = x.execute(
                "DELETE FROM events WHERE type = 'daemon.lease' AND at < ? AND position NOT IN"
                " (SELECT MAX(position) FROM events WHERE type = 'daemon.lease'"
                f" GROUP BY {self.dialect.json('data', 'instance')})",
                (before,),
            )
            return int(cur.rowcount or 0)
