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
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ground.times import utc_now
from schema import migrate
from schema.base_store import (  # re-exported: the rest of the code imports them from here
    BaseEventStore,
    Clock,
    Dialect,
    Executor,
    out_key,
    write_job,
)
from schema.errors import AlreadySubmitted, StoreBusy

__all__ = ["SQLiteEventStore", "out_key", "write_job"]


class SQLiteEventStore(BaseEventStore):
    """Event log + projections in one SQLite file (WAL, synchronous=FULL)."""

    dialect = Dialect("sqlite")

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
        super().__init__(clock)
        self.path = Path(path)
        self.url = str(self.path)
        self._retry_deadline_s = retry_deadline_s
        self._conn = migrate.open_database(
            self.path, create=create, busy_timeout_s=busy_timeout_s, backup_dir=backup_dir
        )

    @contextlib.contextmanager
    def _write(self) -> Iterator[Executor]:
        with self._lock:
            conn = self._conn
            self._begin_immediate(conn)
            try:
                yield conn
                conn.execute("COMMIT")
            except sqlite3.IntegrityError as e:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if "intake_key" in str(e) or "hold_key" in str(e):
                    raise AlreadySubmitted(str(e)) from e
                raise migrate.translate(e, self.path) from e
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

    def _inject_refusal(self) -> None:
        raise StoreBusy(str(self.path), self._retry_deadline_s)  # what a lock held past the deadline gives

    def _inject_lost_ack(self) -> None:
        raise StoreBusy(str(self.path), self._retry_deadline_s)

    def _read(self, sql: str, args: Sequence[object] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.Error as e:
                raise migrate.translate(e, self.path) from e

    def _begin_snapshot(self) -> None:
        try:
            self._conn.execute("BEGIN")  # deferred: WAL pins the snapshot at the first read
        except sqlite3.Error as e:
            raise migrate.translate(e, self.path) from e

    def _end_snapshot(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("COMMIT")

    def _reader(self) -> Executor:
        return self._conn

    def _insert_event(self, x: Executor, row: tuple[object, ...]) -> int:
        cur = x.execute(
            "INSERT INTO events (stream, version, type, class_version, data, at, idempotency_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            row,
        )
        return int(cur.lastrowid or 0)  # type: ignore[attr-defined]

    # --- the file ----------------------------------------------------------------------

    def schema_version(self) -> int:
        return int(self._read("PRAGMA user_version")[0][0])

    def known_version(self) -> int:
        return migrate.code_version()

    def high_water(self) -> int:
        """The highest position ever assigned (AUTOINCREMENT's counter: compaction cannot lower it)."""
        rows = self._read("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)")
        return int(rows[0][0])

    def size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                total += Path(str(self.path) + suffix).stat().st_size
        return total

    def checkpoint(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def quick_check(self) -> str:
        return "; ".join(str(r[0]) for r in self._read("PRAGMA quick_check"))

    def integrity_check(self) -> str:
        return "; ".join(str(r[0]) for r in self._read("PRAGMA integrity_check"))

    @property
    def _raw(self) -> sqlite3.Connection:
        """The connection itself (tests that tamper with the projection on purpose)."""
        return self._conn

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA optimize")
            self._conn.close()
