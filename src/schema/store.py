"""The ``EventStore`` port, by role, and how to open one.

SQLite (a file in the spool's state directory) is the embedded default;
PostgreSQL (``store = "postgresql://..."``) lets several hosts share one
log.  Both pass ``tests/schema/test_store_contract.py``, which calls every
method of every role below on both backends (``test_the_contract_covers_every_method``).

A caller that needs one role types its parameter with that role
(``JobReads`` for a read-only view), so what it may do is visible in its signature.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from ground.times import utc_now
from schema.events import Event
from schema.jobs import Job, JobState
from schema.mapper import Recorded
from schema.store_rows import ANY, Clock, Executor, Leader, _Any

__all__ = [
    "ANY",
    "EventLog",
    "EventStore",
    "FleetServices",
    "JobReads",
    "Maintenance",
    "OpsReads",
    "_Any",
    "is_postgres",
    "open_store",
]


class EventLog(Protocol):
    """The log itself: append (fenced, keyed, projected at once), read, follow, claim."""

    def append(
        self,
        stream: str,
        events: Sequence[Event],
        *,
        expected_version: int | _Any = ANY,
        idempotency_key: str | None = None,
        attempt_of: str | None = None,
    ) -> list[Recorded]: ...

    def read(self, stream: str, after_version: int = 0) -> list[Recorded]: ...

    def read_all(
        self, after_position: int = 0, limit: int | None = None, types: Sequence[str] = ()
    ) -> list[Recorded]: ...

    def follow(
        self, after_position: int = 0, poll_s: float = 0.2, stop: threading.Event | None = None
    ) -> Iterator[Recorded]: ...

    def last_position(self) -> int: ...

    def stream_version(self, stream: str) -> int: ...

    def transaction(self) -> contextlib.AbstractContextManager[Executor]: ...

    def snapshot(self) -> contextlib.AbstractContextManager[None]: ...

    def claim(self, job: Job, started: Event, *, key: str | None = None) -> Job | None: ...

    def close(self) -> None: ...


class JobReads(Protocol):
    """The job projection as the daemon, the CLI and the web face read it."""

    def job(self, job_id: str) -> Job | None: ...

    def find_job(self, ref: str) -> Job: ...

    def jobs(self, states: Sequence[JobState] = (), limit: int | None = None) -> list[Job]: ...

    def holder(self, source: str) -> Job | None: ...

    def submitted_between(self, start_iso: str, end_iso: str) -> list[Job]: ...

    def stored_jobs(self) -> dict[str, Job]: ...

    def dispatchable(self, now_iso: str, limit: int) -> list[Job]: ...

    def earliest_retry(self) -> str | None: ...

    def count_by_state(self) -> dict[str, int]: ...

    def find_duplicate(self, sha256: str, options_key: str, exclude: str) -> Job | None: ...

    def out_key_owners(self, key: bytes) -> list[Job]: ...


class FleetServices(Protocol):
    """What several daemons on one store need: leadership, sessions, the database's clock, leases."""

    def listen(self, wake: Callable[[], None], stop: threading.Event) -> threading.Thread | None: ...

    def try_lead(self) -> bool: ...

    def identify(self, host: str, instance: str) -> None: ...

    def leader_session(self) -> Leader | None: ...

    def end_session(self, pid: int) -> bool: ...

    def db_now(self) -> str: ...

    def leases(self) -> list[dict[str, Any]]: ...


class OpsReads(Protocol):
    """What ops reads: windowed counts, alerts, notifications, a consistent snapshot of every projection."""

    def window_counts(self, since_iso: str) -> dict[str, Any]: ...

    def first_event_at(self) -> str | None: ...

    def firing_alerts(self) -> list[dict[str, Any]]: ...

    def alerts(self) -> list[dict[str, Any]]: ...

    def due_notifications(self, now_iso: str, limit: int = 50) -> list[dict[str, Any]]: ...

    def notification(self, key: str) -> dict[str, Any] | None: ...

    def max_notified_position(self) -> int | None: ...

    def projection_snapshot(self) -> dict[str, list[tuple[Any, ...]]]: ...


class Maintenance(Protocol):
    """The store's life: versions, size, checks, checkpoints and compaction."""

    def size_bytes(self) -> int: ...

    def schema_version(self) -> int: ...

    def known_version(self) -> int: ...

    def high_water(self) -> int: ...

    def checkpoint(self) -> None: ...

    def quick_check(self) -> str: ...

    def integrity_check(self) -> str: ...

    def compact_heartbeats(self, finished_before: str) -> tuple[int, int]: ...

    def compact_leases(self, before: str) -> int: ...


class EventStore(EventLog, JobReads, FleetServices, OpsReads, Maintenance, Protocol):
    """Every role: what a daemon holds."""

    url: str  # what opens it again (a SQLite path or a PostgreSQL URL)
    path: Path  # the SQLite file (a placeholder for PostgreSQL)
    fleet: bool  # several daemons share this store (leases, leader, claims matter)


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def open_store(
    url: str,
    db_path: Path,
    *,
    create: bool = False,
    backup_dir: Path | None = None,
    clock: Clock | None = None,
    idle_timeout_s: float = 5.0,
    upgrade: bool | None = None,
) -> EventStore:
    """The store named by ``url`` (empty: the SQLite file ``db_path``).

    ``idle_timeout_s``: PostgreSQL ends a session left idle inside a transaction
    this long (a frozen or cut-off host), releasing its locks.
    """
    if is_postgres(url):
        from schema.pg_store import PostgresEventStore

        return PostgresEventStore(
            url, clock=clock or utc_now, create=create, upgrade=upgrade, idle_timeout_s=idle_timeout_s
        )
    from schema.sqlite_store import SQLiteEventStore

    return SQLiteEventStore(db_path, clock=clock or utc_now, create=create, backup_dir=backup_dir)
