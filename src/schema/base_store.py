"""What every backend of the ``EventStore`` port shares: the append algorithm and the projections,
written once in ``?``-placeholder SQL; the queries live beside it by role (job_queries, ops_queries).

A backend (SQLite, PostgreSQL) supplies connections and transactions, the few
SQL spellings that differ (:class:`Dialect`), how a new event's position is
obtained, and how appends are serialised (:mod:`schema.store_backend`).
``tests/schema/test_store_contract.py`` runs against each.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from ground.times import iso
from schema import projections, store_faults
from schema.errors import ConcurrencyError, StaleAttempt
from schema.events import Event, job_id_of
from schema.job_queries import JobQueries
from schema.jobs import ACTIVE, Job, apply
from schema.mapper import Recorded, encode
from schema.ops_queries import OpsQueries
from schema.store_rows import (
    ANY,
    Clock,
    Dialect,
    Executor,
    Leader,
    _Any,
    held_key,
    hold_key,
    intake_key,
    out_key,
    record,
    write_job,
)

__all__ = [
    "ANY",
    "BaseEventStore",
    "Clock",
    "Dialect",
    "Executor",
    "Leader",
    "_Any",
    "held_key",
    "hold_key",
    "intake_key",
    "out_key",
    "write_job",
]


class BaseEventStore(JobQueries, OpsQueries):
    """The event log: append (fenced, keyed, projected in the same transaction), read, follow, claim."""

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

    def projection_snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        with self.snapshot():
            return projections.snapshot(self._reader())
