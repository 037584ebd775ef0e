"""What a backend (SQLite, PostgreSQL) supplies to the shared store code: its life, fleet services, transactions."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ground.times import iso
from schema.store_rows import Clock, Dialect, Executor, Leader


class StoreBackend:
    """The backend's part, overridden by each backend; the defaults are those of one daemon alone."""

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
