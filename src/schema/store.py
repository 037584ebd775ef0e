"""The ``EventStore`` port and how to open one.

SQLite (a file in the spool's state directory) is the embedded default;
PostgreSQL (``store = "postgresql://..."``) lets several hosts share one
log.  Both pass ``tests/schema/test_store_contract.py``.
"""

from __future__ import annotations

from pathlib import Path

from schema.base_store import ANY, Clock, _Any, utc_now
from schema.base_store import BaseEventStore as EventStore

__all__ = ["ANY", "EventStore", "_Any", "is_postgres", "open_store"]


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
